"""docs/config.md is the schema's: every key, type, default and meaning, never stale."""

from __future__ import annotations

from utils.config.key_docs import MEANINGS
from utils.config.reference import PAGE, keys, render


def test_the_page_is_up_to_date() -> None:
    assert PAGE.read_text() == render(), "docs/config.md is stale: run `make docs`"


def test_every_key_has_a_meaning() -> None:
    # Top-level sections are the page's headings.
    missing = [k.path for k in keys() if not k.meaning and (k.type != "section" or "." in k.path)]
    assert not missing, f"add a line to utils/config/key_docs.py for: {missing}"


def test_every_documented_key_exists() -> None:
    schema = {k.path for k in keys()}
    assert not set(MEANINGS) - schema, "key_docs.py documents keys the schema no longer has"


def test_the_page_lists_every_key_with_type_and_default() -> None:
    page = PAGE.read_text()
    for key in keys():
        assert f"| `{key.path}` |" in page or key.path.count(".") == 0
    row = next(line for line in page.splitlines() if line.startswith("| `training.max_steps`"))
    # Schema default 100, the default config's 360, the type, the meaning.
    assert row.strip("| ").split(" | ")[1:5] == [
        "int",
        "`100`",
        "`360`",
        "optimizer steps to train",
    ]
