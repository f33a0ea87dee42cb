"""What the steps hand an experiment tracker: metric rows per logging step, flattened
parameters, prefixed metrics; and the W&B backend against a real (offline) W&B run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


def _state(step: int, rank0: bool = True) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, is_world_process_zero=rank0)


def test_metric_log_keeps_one_row_per_logging_step_and_the_validation_checks() -> None:
    from utils.training.metric_log import MetricLog

    sunk: list[tuple[dict, int]] = []
    log = MetricLog(lambda metrics, step: sunk.append((metrics, step)))
    validation = SimpleNamespace(history=[])
    log.watch(validation)
    train = {"loss": 2.5, "grad_norm": 1.5, "learning_rate": 1e-3, "epoch": 0.1}
    log.on_log(None, _state(1), None, logs={**train, "num_input_tokens_seen": 400})
    validation.history.append({"ser": 0.5, "rougeL": 0.25, "seconds": 1.0, "step": 1})
    log.on_step_end(None, _state(1), None)
    log.on_step_end(None, _state(2), None)  # no new check: nothing
    log.on_log(None, _state(2), None, logs={"eval_loss": 2.0, "eval_runtime": 0.3, "epoch": 0.2})
    # The Trainer's closing line (run totals) is no logging step.
    final = {"train_loss": 2.4, "train_runtime": 9.0, "num_input_tokens_seen": 800, "epoch": 0.2}
    log.on_log(None, _state(2), None, logs=final)
    log.on_log(None, _state(2, rank0=False), None, logs={"loss": 9.9})  # another rank
    assert log.rows == [
        {
            "step": 1,
            "metrics": {
                "train_loss": 2.5,
                "learning_rate": 1e-3,
                "grad_norm": 1.5,
                "tokens_seen": 400.0,
                "epoch": 0.1,
            },
        },
        {"step": 1, "metrics": {"validation_ser": 0.5, "validation_rougeL": 0.25}},
        {"step": 2, "metrics": {"eval_loss": 2.0}},
    ]
    assert sunk == [(r["metrics"], r["step"]) for r in log.rows]


def test_flat_params_and_prefixed_metrics() -> None:
    from utils.config import PipelineConfig
    from utils.zenml_ops.tracker_logging import MAX_PARAM_CHARS, flat_params, prefixed_metrics

    params = flat_params(PipelineConfig().model_dump(include={"training", "lora"}))
    assert params["training.learning_rate"] == "0.0002"
    assert params["lora.target_modules"] == "null"
    assert flat_params({"a": {"b": [1, 2]}, "s": "x" * 900}) == {
        "a.b": "[1, 2]",
        "s": "x" * (MAX_PARAM_CHARS - 3) + "...",
    }
    metrics = {"rougeL": 0.5, "num_rows": 6, "engine": "continuous", "greedy": {"ser": 0.25}}
    metrics |= {"promoted": True, "rows_per_second": None}
    assert prefixed_metrics("finetuned", metrics) == {
        "finetuned_rougeL": 0.5,
        "finetuned_num_rows": 6.0,
        "finetuned_greedy_ser": 0.25,
    }


def test_wandb_backend_logs_into_the_active_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    from utils.zenml_ops.tracker_logging import WandbStepTracker

    monkeypatch.setenv("WANDB_MODE", "offline")  # nothing leaves the machine
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="viggo-test", dir=str(tmp_path), group="tiny-test-model")
    try:
        tracker = WandbStepTracker()
        tracker.set_tags({"zenml_model_version": "3"})
        tracker.log_params({"training.learning_rate": "0.001"})
        tracker.log_metrics({"train_loss": 2.5}, step=1)
        tracker.log_metrics({"train_loss": 2.0}, step=2)
        tracker.log_metrics({"finetuned_rougeL": 0.5})  # no step: commits step 2's row
        tracker.log_artifact("finetuned_report.html", b"<html>report</html>")
        assert "zenml_model_version:3" in run.tags
        assert run.config["training.learning_rate"] == "0.001"
        assert run.summary["train_loss"] == 2.0 and run.summary["finetuned_rougeL"] == 0.5
    finally:
        run.finish()
