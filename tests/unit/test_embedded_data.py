"""The ViGGO files shipped in data/viggo/: checksummed, the default source, GEM's layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import utils.data.embedded as embedded
from utils.config import ConfigError, DatasetSection, load_config
from utils.data.errors import DataError
from utils.data.sources import load_raw_splits

COUNTS = {"train": (5103, 1675), "validation": (714, 238), "test": (1083, 359)}


def test_the_shipped_files_match_their_checksums_and_the_published_counts() -> None:
    assert embedded.verified_embedded_dir() == embedded.EMBEDDED_DIR
    for split, (rows, distinct) in COUNTS.items():
        got = embedded.gem_rows(split)
        assert len(got) == rows
        assert len({r["meaning_representation"] for r in got}) == distinct


def test_the_default_config_reads_the_embedded_files() -> None:
    cfg = load_config(Path(__file__).parents[2] / "configs" / "smollm2_cpu.yaml")
    assert cfg.dataset.source == "embedded" and cfg.dataset.data_dir is None
    raw, origin = load_raw_splits(cfg.dataset)
    assert "embedded" in origin
    assert {s: len(v) for s, v in raw.items()} == {s: n for s, (n, _) in COUNTS.items()}
    # The original columns mr/ref arrive under GEM's names, the text untouched.
    first = embedded.gem_rows("train")[0]
    assert raw["train"][0] == {
        "meaning_representation": first["meaning_representation"],
        "target": first["target"],
    }
    assert first["gem_id"] == "viggo-train-0" and first["references"] == [first["target"]]


@pytest.fixture
def copy_of_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "viggo"
    shutil.copytree(embedded.EMBEDDED_DIR, folder)
    monkeypatch.setattr(embedded, "EMBEDDED_DIR", folder)
    return folder


def test_an_edited_file_is_refused_naming_it(copy_of_embedded: Path) -> None:
    path = copy_of_embedded / "viggo-test.csv"
    path.write_bytes(path.read_bytes().replace(b"Little Big Adventure", b"Little Big Adventurf", 1))
    with pytest.raises(DataError, match=r"viggo-test\.csv has sha256 [0-9a-f]{64}, expected e052"):
        load_raw_splits(DatasetSection())


def test_a_missing_file_is_refused_naming_it(copy_of_embedded: Path) -> None:
    (copy_of_embedded / "viggo-validation.csv").unlink()
    with pytest.raises(DataError, match=r"viggo-validation\.csv is missing"):
        load_raw_splits(DatasetSection())


def test_a_data_dir_wins_over_the_embedded_files(tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.csv").write_text("mr,ref\ninform(name[A]),A is a game.\n")
    raw, origin = load_raw_splits(DatasetSection(data_dir=str(tmp_path)))
    assert origin == str(tmp_path) and len(raw["train"]) == 1


def test_the_hub_stays_a_source(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_load_dataset(name: str) -> dict:
        calls.append(name)
        return {s: [{"meaning_representation": "inform(name[A])", "target": "A."}] for s in COUNTS}

    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    raw, origin = load_raw_splits(DatasetSection(source="hub"))
    assert calls == ["GEM/viggo"] and origin == "GEM/viggo" and len(raw["test"]) == 1


def test_embedded_holds_viggo_only() -> None:
    with pytest.raises(ConfigError, match=r"set dataset\.source: hub"):
        load_config(None, ["dataset.name=org/other"])
    assert (
        load_config(None, ["dataset.name=org/other", "dataset.source=hub"]).dataset.source == "hub"
    )
