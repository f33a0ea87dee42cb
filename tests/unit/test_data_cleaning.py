"""Opt-in cleaning removes exactly the planted rows and says which; augmentation is seeded,
consistent in MR and sentence, checker-clean and training-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_data_report import A, B, C, _data_to_text, _row
from utils.config import DatasetSection
from utils.config.base import ConfigError
from utils.data.augment import augment_rows, permute, substitute
from utils.data.cleaning import clean_train
from utils.data.mr_rows import split_mr
from utils.viggo import parse_mr, slot_errors


def _clean(**keys: bool) -> tuple[list[dict], dict]:
    splits = _data_to_text()
    return clean_train(splits["train"], splits["test"], DatasetSection(**keys))


def test_nothing_is_cleaned_by_default() -> None:
    rows, done = _clean()
    assert len(rows) == 5 and done == {}


def test_each_cleaning_step_removes_its_planted_row() -> None:
    rows, done = _clean(dedupe=True, drop_unfaithful=True, drop_test_leaks=True)
    assert [r["row"] for r in done["dedupe"]["rows"]] == [1]
    assert [r["row"] for r in done["drop_unfaithful"]["rows"]] == [4]
    assert "missing release_year" in done["drop_unfaithful"]["rows"][0]["why"]
    # Row numbers stay those of the uncleaned split, after earlier steps removed rows.
    assert [r["row"] for r in done["drop_test_leaks"]["rows"]] == [3]
    assert done["drop_test_leaks"]["rows"][0]["input"] == C
    assert [r["input"] for r in rows] == [A, B]
    assert {k: v["removed"] for k, v in done.items()} == {
        "dedupe": 1, "drop_unfaithful": 1, "drop_test_leaks": 1,
    }  # fmt: skip


def test_substitution_is_consistent_in_mr_and_sentence() -> None:
    import random

    mr = split_mr("inform(name[Tetris], release_year[1984], genres[puzzle])")
    pool = {"name": ["Portal 2", "Tetris"], "release_year": ["1984", "2011"]}
    for seed in range(10):
        (_, slots), text = substitute(
            mr, "Tetris, from 1984, is a puzzle game.", pool, random.Random(seed)
        )
        new = dict(slots)
        assert (new["name"], new["release_year"]) in (
            (["Portal 2"], ["1984"]),
            (["Tetris"], ["2011"]),
        )
        assert new["name"][0] in text and new["release_year"][0] in text
        assert new["genres"] == ["puzzle"]  # genres are phrased, never swapped


def test_permutation_keeps_the_meaning() -> None:
    import random

    from utils.data.mr_rows import join_mr

    mr = "inform(name[Tetris], release_year[1984], genres[puzzle, strategy])"
    shuffled = permute(split_mr(mr), random.Random(1))
    assert shuffled is not None and join_mr(shuffled) != mr
    assert parse_mr(join_mr(shuffled)) == parse_mr(mr)
    assert permute(split_mr("request_attribute(esrb[])"), random.Random(0)) is None


def _viggo_like_train() -> list[dict]:
    names = ["Tetris", "Portal 2", "Max Payne", "Half-Life 2"]
    years = ["1984", "2011", "2001", "2004"]
    return [
        _row(
            f"inform(name[{n}], release_year[{y}], genres[puzzle])",
            f"{n} is a puzzle game from {y}.",
        )
        for n, y in zip(names, years, strict=True)
    ]


@pytest.mark.parametrize("task", ["data_to_text", "text_to_mr"])
def test_augmentation_is_seeded_checked_and_marked(task: str) -> None:
    train = _viggo_like_train()
    if task == "text_to_mr":
        train = [_row(r["target"], r["input"]) for r in train]
    kinds = ["substitute", "permute"] if task == "data_to_text" else ["substitute"]
    cfg = DatasetSection(task=task, augment=kinds, augment_factor=2.0, augment_seed=3)
    added, summary = augment_rows(train, cfg)
    assert len(added) == summary["added"] == summary["requested"] == 8
    assert augment_rows(train, cfg)[0] == added  # same seed, same rows
    assert augment_rows(train, cfg.model_copy(update={"augment_seed": 4}))[0] != added
    originals = {(r["input"], r["target"]) for r in train}
    for row in added:
        assert row["augmented"] == "+".join(kinds) and 0 <= row["source_row"] < 4
        assert (row["input"], row["target"]) not in originals
        mr, text = (
            (row["input"], row["target"])
            if task == "data_to_text"
            else (row["target"], row["input"])
        )
        assert slot_errors(mr, text).errors == 0
        assert row["references"] == [row["target"]]


def test_unfaithful_rows_are_never_augmentation_sources() -> None:
    train = [
        *_viggo_like_train(),
        _row("inform(name[Tetris], release_year[1984])", "Tetris is fun."),
    ]
    added, summary = augment_rows(train, DatasetSection(augment=["substitute"], augment_factor=3.0))
    assert summary["faithful_sources"] == 4 and all(r["source_row"] != 4 for r in added)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"augment": ["shuffle"]}, "unknown augmentation 'shuffle'; valid: substitute, permute"),
        ({"augment_factor": 0}, "greater than 0"),
        ({"augment_factor": -1.5}, "greater than 0"),
        ({"train_fraction": 0}, "greater than 0"),
        ({"train_fraction": 1.5}, "less than or equal to 1"),
        ({"task": "text_to_text", "augment": ["substitute"]}, "augment needs a ViGGO task"),
        ({"task": "text_to_text", "drop_unfaithful": True}, "drop_unfaithful needs a ViGGO task"),
        ({"task": "text_to_mr", "augment": ["permute"]}, "use 'substitute'"),
        ({"near_duplicate_similarity": 0}, "greater than 0"),
    ],
)
def test_bad_keys_fail_in_one_line(keys: dict, message: str) -> None:
    from utils.config import load_config

    overrides = [f"dataset.{k}={json.dumps(v)}" for k, v in keys.items()]
    with pytest.raises(ConfigError) as err:
        load_config(Path("configs/smollm2_cpu.yaml"), overrides, None)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_augmented_rows_reach_train_only(tmp_path: Path, smollm2_dir: Path) -> None:
    from utils.data.jsonl import read_jsonl
    from utils.data.prepare import DATA_REPORT_FILE, prepare_dataset
    from utils.modeling.loader import load_tokenizer

    rows = _viggo_like_train()
    for split in ("train", "validation", "test"):
        with (tmp_path / f"{split}.jsonl").open("w") as f:
            for r in rows:
                f.write(
                    json.dumps({"meaning_representation": r["input"], "target": r["target"]}) + "\n"
                )
    cfg = DatasetSection(data_dir=str(tmp_path), augment=["substitute"], train_fraction=0.5)
    prepare_dataset(cfg, load_tokenizer(str(smollm2_dir)), tmp_path / "out")
    train = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert len(train) == 4 and sum("augmented" in r for r in train) == 2
    for split in ("validation", "test"):
        assert not any("augmented" in r for r in read_jsonl(tmp_path / "out" / f"{split}.jsonl"))
    report = json.loads((tmp_path / "out" / DATA_REPORT_FILE).read_text())
    assert report["augmentation"]["added"] == 2 and len(report["augmentation"]["examples"]) == 2
