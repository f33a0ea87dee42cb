"""The README cannot drift: each command in its code blocks that runs offline on a CPU in
seconds is run as written (training commands with --dry-run), every other one is named here
with the reason it is not, and its tables name real config keys and every shipped config."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, viggo_rows
from utils.config.reference import keys

README = ROOT / "README.md"
# Commands that need a trained model version, a long run or a network, by README line.
NOT_RUN = {
    "git clone <this repository> && cd <its folder>": "a placeholder for the clone",
    "make run": "the default run (minutes); its arguments are checked by the lines below",
    "make test": "the test suite itself",
    "make test-fast": "the unit tests, part of the suite",
    "zenml login --local": "starts ZenML's dashboard server (scripts/dashboard_smoke.py)",
    "zenml model version list --model=viggo-smollm2-135m-lora": "ZenML's own CLI",
    'python run.py generate --stage staging --input "inform(name[Portal 2], rating[excellent])"': (
        "needs a trained version (tests/integration/test_serve.py)"
    ),
    "python run.py serve --stage staging": "needs a trained version (test_serve.py)",
    "python run.py serve --stop": "needs a deployment (test_serve.py)",
    "python run.py export --stage staging --out merged/": "needs a trained version",
}


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


def readme_commands() -> list[str]:
    out = []
    for lang, body in code_blocks(README.read_text()):
        if lang != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()  # a comment after the command
            if line and not line.startswith("#"):
                out.append(line.removeprefix(". .venv/bin/activate && "))
    return out


def _argv(command: str) -> list[str] | None:
    """The command as this test runs it, or None for one of NOT_RUN."""
    if command in NOT_RUN:
        return None
    words = shlex.split(command)
    if words[:2] == ["make", "run"]:
        (args,) = [w.removeprefix("ARGS=") for w in words[2:] if w.startswith("ARGS=")]
        words = ["python", "run.py", *shlex.split(args)]
    assert words[:2] == ["python", "run.py"], f"classify this README command: {command!r}"
    argv = [sys.executable, str(ROOT / "run.py"), *words[2:]]
    if len(words) == 2 or not (words[2] in ("score", "compare") or "--help" in words):
        argv.append("--dry-run")  # a training command: validated exactly as written
    return argv


RUNNABLE = [c for c in readme_commands() if c not in NOT_RUN]


def test_every_readme_command_is_run_or_named_here() -> None:
    commands = readme_commands()
    assert set(NOT_RUN) <= set(commands), f"stale: {set(NOT_RUN) - set(commands)}"
    assert RUNNABLE, "the README has runnable commands"
    for command in RUNNABLE:
        _argv(command)


def _own_data(cwd: Path) -> None:
    """my_data/train.csv: the README's example rows, repeated to a carvable size."""
    (block,) = [b for lang, b in code_blocks(README.read_text()) if b.startswith("question,")]
    header, *rows = block.strip().splitlines()
    (cwd / "my_data").mkdir()
    (cwd / "my_data" / "train.csv").write_text("\n".join([header, *rows * 20]) + "\n")


def _predictions(cwd: Path) -> None:
    import json

    rows = viggo_rows("test")[:5]
    lines = [
        {
            "input": r["meaning_representation"],
            "prediction": r["target"],
            "references": [r["target"]],
        }
        for r in rows
    ]
    (cwd / "preds.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.mark.parametrize("command", RUNNABLE)
def test_readme_command_runs(command: str, zenml_env: Path) -> None:
    (zenml_env / "configs").symlink_to(ROOT / "configs")
    _own_data(zenml_env)
    _predictions(zenml_env)
    argv = _argv(command)
    done = subprocess.run(argv, cwd=zenml_env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    if command.split()[:3] == ["python", "run.py", "compare"]:
        # An empty store: the one-line answer, not a usage error.
        assert done.returncode == 2 and "no such model in the ZenML store" in out, out[-2000:]
        return
    assert done.returncode == 0, out[-3000:]
    assert "Traceback" not in out


def _table_after(heading: str) -> str:
    text = README.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start:end]


def test_the_config_keys_table_names_real_keys() -> None:
    table = _table_after("## The config keys you will change")
    named = set(re.findall(r"`([a-z_]+\.[a-z_.]+)`", table))
    assert len(named) > 10
    assert not named - {k.path for k in keys()}


def test_the_support_matrix_lists_every_shipped_config() -> None:
    table = _table_after("## Support matrix")
    listed = set(re.findall(r"^\| `([\w.]+\.yaml)`", table, flags=re.M))
    assert listed == {p.name for p in (ROOT / "configs").glob("*.yaml")}


def test_the_readme_is_a_ten_minute_read() -> None:
    assert len(README.read_text().splitlines()) <= 300
