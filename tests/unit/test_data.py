import json
from pathlib import Path

import pandas as pd
import pytest

from utils.data.rows import load_splits, to_task_rows
from utils.data.sources import DataError, load_local_splits


def _write(dir_: Path, fmt: str, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    for split in ("train", "validation", "test"):
        path = dir_ / f"{split}.{fmt}"
        if fmt == "jsonl":
            frame.to_json(path, orient="records", lines=True)
        elif fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path)


ROWS = [
    {"meaning_representation": "inform(name[A], rating[good])", "target": "A is good."},
    {"meaning_representation": "request(specifier[fun])", "target": "What is fun?"},
]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_local_formats(tmp_path: Path, fmt: str) -> None:
    _write(tmp_path, fmt, ROWS)
    splits = load_splits("ignored", str(tmp_path), "data_to_text")
    assert splits["test"][0] == {
        "input": "inform(name[A], rating[good])",
        "target": "A is good.",
        "references": ["A is good."],
    }


def test_original_csv_names_are_mapped(tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        pd.DataFrame([{"mr": "inform(name[A])", "ref": "A."}]).to_csv(
            tmp_path / f"viggo-{split}.csv", index=False
        )
    splits = load_splits("x", str(tmp_path), "text_to_mr")
    assert splits["train"][0]["input"] == "A." and splits["train"][0]["target"] == "inform(name[A])"


def test_shared_viggo_counts(viggo_subset: Path) -> None:
    from tests.conftest import VIGGO_DIR

    splits = load_local_splits(VIGGO_DIR)
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 5103,
        "validation": 714,
        "test": 1083,
    }


def test_missing_split_named(tmp_path: Path) -> None:
    _write(tmp_path, "jsonl", ROWS)
    (tmp_path / "validation.jsonl").unlink()
    with pytest.raises(DataError, match="'validation'"):
        load_local_splits(tmp_path)


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_local_splits(tmp_path / "nope")


def test_wrong_columns_listed(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"found columns \['a', 'b'\]"):
        to_task_rows([{"a": 1, "b": 2}], "data_to_text", "split 'train'")


def test_empty_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        to_task_rows([], "data_to_text", "split 'test'")


def test_multi_references_kept(tmp_path: Path) -> None:
    row = dict(ROWS[0], references=["A is good.", "A is a good game."])
    (out,) = to_task_rows([row], "data_to_text", "x")
    assert out["references"] == ["A is good.", "A is a good game."]
    assert json.dumps(out)
