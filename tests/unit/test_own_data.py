"""Bring your own dataset: column mapping, carved splits, malformed rows."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from utils.config import ColumnMap, DatasetSection, SplitRatio
from utils.data.rows import load_task_splits, normalize_rows
from utils.data.sources import DataError

QA = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(100)]


def _qa_train_only(tmp_path: Path) -> Path:
    pd.DataFrame(QA).to_csv(tmp_path / "train.csv", index=False)
    return tmp_path


def _own(tmp_path: Path, **kw) -> DatasetSection:
    return DatasetSection(
        data_dir=str(tmp_path),
        task="text_to_text",
        columns=ColumnMap(input="question", target="answer"),
        **kw,
    )


def test_columns_map_any_csv(tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        pd.DataFrame(QA[:5]).to_csv(tmp_path / f"{split}.csv", index=False)
    splits = load_task_splits(_own(tmp_path))
    assert splits["test"].rows[1] == {
        "input": "What is 1 + 1?",
        "target": "2",
        "references": ["2"],
    }


def test_split_ratio_is_seeded_disjoint_and_sized(tmp_path: Path) -> None:
    cfg = _own(_qa_train_only(tmp_path), split_ratio=SplitRatio(validation=0.1, test=0.2))
    first = load_task_splits(cfg)
    sizes = {k: len(v.rows) for k, v in first.items()}
    assert sizes == {"train": 70, "validation": 10, "test": 20}
    seen = [r["input"] for split in first.values() for r in split.rows]
    assert sorted(seen) == sorted(r["question"] for r in QA)  # disjoint and complete
    assert load_task_splits(cfg)["test"].rows == first["test"].rows  # deterministic
    other = load_task_splits(cfg.model_copy(update={"split_ratio": SplitRatio(test=0.2, seed=1)}))
    assert other["test"].rows != first["test"].rows  # the seed decides


def test_split_ratio_only_fills_missing_splits(tmp_path: Path) -> None:
    _qa_train_only(tmp_path)
    pd.DataFrame(QA[:3]).to_csv(tmp_path / "validation.csv", index=False)
    splits = load_task_splits(_own(tmp_path, split_ratio=SplitRatio(validation=0.5, test=0.1)))
    assert len(splits["validation"].rows) == 3
    assert len(splits["test"].rows) == 10 and len(splits["train"].rows) == 90


def test_missing_split_without_ratio_points_at_split_ratio(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'validation' split.*dataset\.split_ratio"):
        load_task_splits(_own(_qa_train_only(tmp_path)))


def test_split_ratio_of_zero_rows_is_an_error(tmp_path: Path) -> None:
    pd.DataFrame(QA[:4]).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match=r"split_ratio\.validation=0\.1 of 4 train rows"):
        load_task_splits(_own(tmp_path, split_ratio=SplitRatio()))


MR_ROWS = [
    {"meaning_representation": f"inform(name[Game {i}], rating[good])", "target": f"G{i} is good."}
    for i in range(200)
]


def test_malformed_mrs_are_skipped_and_counted() -> None:
    rows = [*MR_ROWS, {"meaning_representation": "infrm(name[X])", "target": "X."}]
    out = normalize_rows(rows, "data_to_text", "split 'train'", max_malformed_fraction=0.01)
    assert len(out.rows) == 200
    assert out.skipped == [(201, out.skipped[0][1])]
    assert "unknown dialogue act 'infrm'" in out.skipped[0][1]


def test_too_many_malformed_rows_stop_with_count_and_key() -> None:
    rows = [*MR_ROWS[:10], {"meaning_representation": "name[X]", "target": "X."}]
    with pytest.raises(DataError) as err:
        normalize_rows(rows, "data_to_text", "split 'train'", max_malformed_fraction=0.05)
    message = str(err.value)
    assert "1 of 11 rows" in message and "dataset.max_malformed_fraction=0.05" in message
    assert "row 11" in message


def test_text_to_mr_checks_the_target_mr() -> None:
    rows = [{"meaning_representation": "oops", "target": "A sentence."}]
    with pytest.raises(DataError, match="malformed meaning representation"):
        normalize_rows(rows, "text_to_mr", "split 'test'")


def test_own_data_is_not_held_to_viggo_mrs() -> None:
    out = normalize_rows(
        [{"input": "not an MR at all", "target": "fine"}], "text_to_text", "split 'train'"
    )
    assert out.rows[0]["input"] == "not an MR at all" and not out.skipped


def test_empty_targets_are_malformed_rows() -> None:
    rows = [{"input": "a", "target": "b"}] * 99 + [{"input": "a", "target": float("nan")}]
    out = normalize_rows(rows, "text_to_text", "s", max_malformed_fraction=0.01)
    assert len(out.rows) == 99 and "empty target column 'target'" in out.skipped[0][1]


def test_wrong_columns_say_what_was_found_and_how_to_map() -> None:
    with pytest.raises(DataError, match=r"found columns \['q', 'x'\].*dataset\.columns"):
        normalize_rows([{"q": 1, "x": 2}], "text_to_text", "split 'train'")


def test_reference_lists_from_parquet_arrays() -> None:
    row = {"input": "a", "target": "b", "refs": np.array(["b", "c"])}
    out = normalize_rows(
        [row],
        "text_to_text",
        "s",
        columns=ColumnMap(input="input", target="target", references="refs"),
    )
    assert out.rows[0]["references"] == ["b", "c"]


def test_text_to_text_metrics_and_report_need_no_mr() -> None:
    from utils.evaluation.report import predictions_report_html
    from utils.metrics.task_metrics import compute_metrics, per_row_scores

    inputs = ["What is 2 + 2?", "What is 2 + 2?", "Capital of France?"]
    preds = ["4", "4", "Lyon"]
    refs = ["4", "four", "Paris"]
    metrics = compute_metrics("text_to_text", inputs, preds, refs)
    assert "ser" not in metrics and "slot_f1" not in metrics
    assert metrics["rougeL"] == pytest.approx(1 / 3)
    assert metrics["multiref_rougeL"] == pytest.approx(1 / 2)  # "4" matches one of 2 refs
    assert metrics["num_distinct_inputs"] == 2 and 0.0 <= metrics["bleu"] <= 1.0
    assert [s["rougeL"] for s in per_row_scores("text_to_text", inputs, preds, refs)] == [1, 0, 0]
    rows = [
        {"input": i, "reference": r, "references": [r], "prediction": p}
        for i, p, r in zip(inputs, preds, refs, strict=True)
    ]
    page = predictions_report_html("text_to_text", rows, metrics, "own data")
    assert "Capital of France?" in page and "lowest ROUGE-L first" in page
