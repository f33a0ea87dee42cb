"""The data report finds what was planted in a tiny hand-made dataset, section by section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import VIGGO_DIR, needs_data
from utils.data.report import build_report, length_histogram, report_summary
from utils.data.report_html import data_report_html

A = "inform(name[Tetris], release_year[1984], genres[puzzle])"
B = "inform(name[Portal 2], developer[Valve Corporation], rating[excellent])"
C = "request(genres[puzzle], specifier[relaxing])"
D = "inform(name[Max Payne], esrb[M (for Mature)], genres[shooter])"


def _row(inp: str, target: str) -> dict:
    return {"input": inp, "target": target, "references": [target]}


def _data_to_text() -> dict[str, list[dict]]:
    train = [
        _row(A, "Tetris is a puzzle game from 1984."),
        _row(A, "Tetris is a puzzle game from 1984."),  # planted duplicate of row 0
        _row(B, "Portal 2 is an excellent game by Valve Corporation."),
        _row(C, "What is a relaxing puzzle game?"),
        # Planted unfaithful reference: the year is missing, a platform is invented.
        _row(A, "Tetris is a puzzle game for the Xbox."),
    ]
    validation = [_row(B, "Valve Corporation made Portal 2, an excellent game.")]
    test = [
        _row(D, "Max Payne is a shooter rated M (for Mature)."),  # slot values unseen in train
        _row(C, "Which puzzle games are relaxing?"),  # planted leak: C is a training input
    ]
    return {"train": train, "validation": validation, "test": test}


def test_each_section_finds_its_planted_row() -> None:
    report = build_report(_data_to_text(), "data_to_text", 0.9)
    assert report["splits"]["train"] == {"rows": 5, "distinct_inputs": 3}
    assert report["duplicates"]["train"]["count"] == 1
    assert report["duplicates"]["train"]["examples"][0] == {
        "row": 1, "first_row": 0, "input": A, "target": "Tetris is a puzzle game from 1984.",
    }  # fmt: skip
    assert report["duplicates"]["test"]["count"] == 0
    # Several references per MR are data_to_text's normal case, not a conflict.
    assert report["conflicts"]["train"] == {"count": 0, "multi_reference_inputs": 1, "examples": []}
    faith = report["faithfulness"]["train"]
    assert faith["unfaithful"] == 1 and faith["rows"] == 5
    worst = faith["worst"][0]
    assert worst["row"] == 4 and "release_year" in worst["missing"]
    assert any("platforms" in h for h in worst["hallucinated"])
    assert report["faithfulness"]["test"]["unfaithful"] == 0
    assert report["leaks"]["exact"] == 1 and report["leaks"]["near"] == 0
    leak = report["leaks"]["examples"][0]
    assert (leak["test_row"], leak["train_row"], leak["similarity"]) == (1, 3, 1.0)
    unseen = {(v["slot"], v["value"]) for v in report["unseen_test_values"]["values"]}
    assert unseen == {("name", "Max Payne"), ("esrb", "M (for Mature)"), ("genres", "shooter")}
    assert report["acts"]["inform"] == {"train": 4, "validation": 1, "test": 1}
    assert report["slots"]["specifier"] == {"train": 1, "validation": 0, "test": 1}


def test_text_to_mr_conflict_is_one_sentence_two_mrs() -> None:
    rows = [
        _row("Tetris is a puzzle game.", "inform(name[Tetris], genres[puzzle])"),
        # The same MR in another slot order is the same label: no conflict.
        _row("Tetris is a puzzle game.", "inform(genres[puzzle], name[Tetris])"),
        _row("Tetris is a puzzle game.", "inform(name[Tetris], genres[strategy])"),  # planted
    ]
    splits = {"train": rows, "validation": rows[:1], "test": rows[:1]}
    conflict = build_report(splits, "text_to_mr", 0.9)["conflicts"]["train"]
    assert conflict["count"] == 1
    assert conflict["examples"][0]["rows"] == [0, 2]


def test_text_to_text_duplicates_conflicts_and_near_leaks() -> None:
    train = [
        _row("What is the capital of France?", "Paris"),
        _row("What is the capital of France?", "Paris"),  # duplicate
        _row("Name the largest planet in the solar system.", "Jupiter"),
        _row("Name the largest planet in the solar system.", "Saturn"),  # conflict
        _row("Who wrote the novel Moby Dick in the year 1851 exactly?", "Herman Melville"),
    ]
    test = [
        # Near-duplicate: one word of eleven differs (Jaccard 10/12 < 0.9, 10/11 with 0.8).
        _row("Who wrote the novel Moby Dick in the year 1851 precisely?", "Melville"),
        _row("How many legs has a spider?", "Eight"),
    ]
    report = build_report({"train": train, "validation": test, "test": test}, "text_to_text", 0.8)
    assert report["duplicates"]["train"]["count"] == 1
    assert report["conflicts"]["train"]["count"] == 1
    assert report["conflicts"]["train"]["examples"][0]["targets"] == ["Jupiter", "Saturn"]
    assert report["leaks"]["exact"] == 0 and report["leaks"]["near"] == 1
    assert report["leaks"]["examples"][0]["train_row"] == 4
    assert "faithfulness" not in report and "slots" not in report
    assert (
        build_report({"train": train, "validation": test, "test": test}, "text_to_text", 0.95)[
            "leaks"
        ]["near"]
        == 0
    )


def test_length_histogram_marks_truncated_rows() -> None:
    h = length_histogram([10, 20, 64, 30, 64], max_length=64)
    assert h["truncated"] == 2 and h["truncated_rows"] == [2, 4]
    assert sum(n for _, _, n in h["bins"]) == 5


def test_html_escapes_and_summary_has_no_rows() -> None:
    splits = _data_to_text()
    splits["train"].append(_row(A, "<script>alert(1)</script> Tetris."))
    report = build_report(splits, "data_to_text", 0.9)
    page = data_report_html(report)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "Reference faithfulness, train" in page and "Test inputs repeating" in page
    summary = report_summary(report)
    assert summary["faithfulness"]["train"] == {"rows": 6, "unfaithful": 2, "errors": 4}
    assert "examples" not in summary["leaks"]
    json.dumps(summary)


@needs_data
def test_viggo_train_unfaithful_references_listed() -> None:
    from utils.data.rows import load_splits

    splits = load_splits("GEM/viggo", str(VIGGO_DIR), "data_to_text")
    faith = build_report(splits, "data_to_text", 0.9)["faithfulness"]["train"]
    # The slot checker's module docstring: ~0.6% corpus SER on the training references.
    assert 50 <= faith["unfaithful"] <= 400
    assert faith["worst"][0]["errors"] >= faith["worst"][-1]["errors"] >= 1


@pytest.mark.parametrize("task", ["data_to_text", "text_to_mr"])
def test_prepared_folder_holds_the_report(tmp_path: Path, smollm2_dir: Path, task: str) -> None:
    from utils.config import DatasetSection
    from utils.data.prepare import DATA_REPORT_FILE, prepare_dataset
    from utils.modeling.loader import load_tokenizer

    for split, rows in _data_to_text().items():
        with (tmp_path / f"{split}.jsonl").open("w") as f:
            for r in rows:
                f.write(
                    json.dumps({"meaning_representation": r["input"], "target": r["target"]}) + "\n"
                )
    cfg = DatasetSection(data_dir=str(tmp_path), task=task, max_length=16)
    meta = prepare_dataset(cfg, load_tokenizer(str(smollm2_dir)), tmp_path / "out")
    report = json.loads((tmp_path / "out" / DATA_REPORT_FILE).read_text())
    assert report["lengths"]["train"]["truncated"] == 5  # every row is longer than 16
    assert meta["data_report"]["duplicates"]["train"]["count"] == 1
