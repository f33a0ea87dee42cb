"""bench/data_curve.py on tiny settings: one training run per (fraction, augmentation)
point, nested row counts, augmented rows counted apart, JSON and PNG written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))


def test_curve_on_tiny_settings(
    zenml_env: Path, tiny_model_dir: Path, viggo_subset: Path, tmp_path: Path
) -> None:
    import data_curve

    sets = [
        f"model.base_model_id={tiny_model_dir}", "model.dtype=float32", "lora.r=4",
        "training.max_steps=1", "training.batch_size=2", "evaluation.max_samples=2",
        "evaluation.max_new_tokens=4", "evaluation.rerank=null",
        "dataset.max_validation_samples=2",
    ]  # fmt: skip
    argv = ["--data-dir", str(viggo_subset), "--fractions", "0.25,1", "--augment",
            "none,substitute", "--out-dir", str(tmp_path), "--name", "tiny"]  # fmt: skip
    for s in sets:
        argv += ["--set", s]
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
