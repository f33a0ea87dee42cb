"""bench/data_curve.py on tiny settings: one training run per (fraction, augmentation)
point, nested row counts, augmented rows counted apart, JSON and PNG written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))


def _tiny(model_dir: Path) -> list[str]:
    """`--set` arguments: one training step and two decoded rows of a tiny random model."""
    sets = [
        f"model.base_model_id={model_dir}", "model.dtype=float32", "lora.r=4",
        "training.max_steps=1", "training.batch_size=2", "evaluation.max_samples=2",
        "evaluation.max_new_tokens=4", "evaluation.rerank=null",
        "dataset.max_validation_samples=2",
    ]  # fmt: skip
    return [arg for s in sets for arg in ("--set", s)]


def test_curve_on_tiny_settings(
    zenml_env: Path, tiny_model_dir: Path, viggo_subset: Path, tmp_path: Path
) -> None:
    import data_curve

    argv = ["--data-dir", str(viggo_subset), "--fractions", "0.25,1", "--augment",
            "none,substitute", "--out-dir", str(tmp_path), "--name", "tiny"]  # fmt: skip
    argv += _tiny(tiny_model_dir)
    results = data_curve.main(argv)
    assert [(r["augment"], r["fraction"], r["train_rows"]) for r in results] == [
        ("none", 0.25, 10), ("none", 1.0, 40), ("substitute", 0.25, 10), ("substitute", 1.0, 40),
    ]  # fmt: skip
    assert all(r["augmented_rows"] == 0 for r in results[:2])
    assert all(r["augmented_rows"] > 0 for r in results[2:])
    assert all(r["steps"] == 1 and r["split"] == "test:2" for r in results)
    assert all(0.0 <= r["rougeL"] <= 1.0 and r["ser"] >= 0.0 for r in results)
    record = json.loads((tmp_path / "tiny.json").read_text())
    assert record["points"] == results
    assert (tmp_path / "tiny.png").read_bytes()[:4] == b"\x89PNG"


def test_a_curve_with_synthetic_rows_counts_them_and_refuses_missing_sources_first(
    zenml_env: Path, tiny_model_dir: Path, viggo_subset: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import data_curve
    import pytest

    from utils.data.synthetic import synthesize

    argv = ["--data-dir", str(viggo_subset), "--fractions", "0.5", "--augment", "none",
            "--out-dir", str(tmp_path), "--name", "tiny_synthetic"]  # fmt: skip
    argv += _tiny(tiny_model_dir)
    argv += [
        "--set",
        "dataset.synthetic={generator: {model: gen}, parser: {model: parser}, rows: 3}",
    ]
    # No such versions in this store: one line, exit 2, before any training.
    with pytest.raises(SystemExit) as stop:
        data_curve.main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: dataset.synthetic.generator: model 'gen' has no version 'staging'"
    )
    assert not (tmp_path / "tiny_synthetic.json").exists()

    # Stand-in versions (the real ones: test_synthetic_pipeline.py): the "sentence" is the MR
    # in brackets, parsed back by stripping them, and the slot checker passes everything;
    # what matters here is that the point composes from its own rows and counts what it kept.
    seen = {}

    def from_versions(dataset):
        from utils.data.prepare import chosen_training_rows
        from utils.data.rows import load_task_splits
        from utils.data.synthetic import mrs_of

        splits = {s: loaded.rows for s, loaded in load_task_splits(dataset).items()}
        train, _ = chosen_training_rows(splits, dataset)
        seen["train"] = len(train)
        rows, summary = synthesize(
            train, mrs_of(splits, dataset.task), dataset.task, dataset.synthetic.rows, 0,
            generate=lambda mrs: [f"<{m}>" for m in mrs],
            parse=lambda texts: [t[1:-1] for t in texts],
        )  # fmt: skip
        return {"rows": rows, "summary": summary}

    monkeypatch.setattr(data_curve, "check_sources", lambda dataset: None)
    monkeypatch.setattr(data_curve, "synthesize_from_versions", from_versions)
    monkeypatch.setattr("utils.data.synthetic._slot_problems", lambda mr, text: None)
    (point,) = data_curve.main(argv)
    assert seen["train"] == point["train_rows"] == 20
    assert 0 < point["synthetic_rows"] <= 3 and point["augmented_rows"] == 0
    record = json.loads((tmp_path / "tiny_synthetic.json").read_text())
    assert record["points"] == [point]
