"""Writing to the experiment tracker a step runs with: MLflow or W&B, one interface.

ZenML starts the tracker's run before the step and ends it after (for MLflow a nested run
per step inside the pipeline run's, in the experiment named after `model.name`); the steps
only log into it. Nothing here runs on a stack without a tracker: `step_tracker()` is None.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from utils.zenml_ops.step_context import in_zenml_step

# A parameter value longer than this is cut (MLflow refuses values over 6,000 characters).
MAX_PARAM_CHARS = 500
# Tags of every tracked run, so runs of one model version are found together.
MODEL_TAG = "zenml_model"
MODEL_VERSION_TAG = "zenml_model_version"


class StepTracker(Protocol):
    def log_params(self, params: Mapping[str, str]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, file_name: str, data: bytes) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class MlflowStepTracker:
    """The active MLflow run (the step's nested run) and, for tags, its parent."""

    def log_params(self, params: Mapping[str, str]) -> None:
        import mlflow

        mlflow.log_params(dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics(dict(metrics), step=step)

    def log_artifact(self, file_name: str, data: bytes) -> None:
        import mlflow

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / file_name
            path.write_bytes(data)
            mlflow.log_artifact(str(path))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        run = mlflow.active_run()
        mlflow.set_tags(dict(tags))
        # The pipeline run's (parent) run too: the experiment's top-level view filters on it.
        parent = run.data.tags.get("mlflow.parentRunId") if run else None
        if parent:
            client = mlflow.MlflowClient()
            for key, value in tags.items():
                client.set_tag(parent, key, value)


class WandbStepTracker:
    """The step's W&B run (ZenML's `wandb.init`), grouped by model name."""

    def log_params(self, params: Mapping[str, str]) -> None:
        import wandb

        wandb.config.update(dict(params), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import wandb

        wandb.log(dict(metrics), step=step)

    def log_artifact(self, file_name: str, data: bytes) -> None:
        import wandb

        artifact = wandb.Artifact(name=Path(file_name).stem, type="report")
        with artifact.new_file(file_name, mode="wb") as f:
            f.write(data)
        wandb.run.log_artifact(artifact)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import wandb

        wandb.run.tags = tuple(wandb.run.tags or ()) + tuple(f"{k}:{v}" for k, v in tags.items())


BACKENDS: dict[str, type] = {"mlflow": MlflowStepTracker, "wandb": WandbStepTracker}


def step_tracker() -> StepTracker | None:
    """The tracker this step runs with, its run tagged with the model version; None when
    the step has none (a stack without a tracker, Accelerate's children, no step)."""
    if not in_zenml_step():
        return None
    from zenml import get_step_context
    from zenml.client import Client

    context = get_step_context()
    name = context.step_run.config.experiment_tracker
    if not name:
        return None
    stack = Client().active_stack
    component = stack.experiment_trackers.get(name) if isinstance(name, str) else None
    component = component or stack.experiment_tracker
    backend = BACKENDS.get(component.flavor) if component is not None else None
    if backend is None:
        return None
    tracker = backend()
    version = context.model_version
    tracker.set_tags({MODEL_TAG: version.model.name, MODEL_VERSION_TAG: str(version.number)})
    return tracker


def flat_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"training": {"learning_rate": 1e-3}}` -> `{"training.learning_rate": "0.001"}`."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, name + "."))
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        out[name] = text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."
    return out


def prefixed_metrics(prefix: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a metrics dict as `<prefix>_<name>` (a nested dict, e.g. `greedy`:
    `<prefix>_greedy_<name>`); flags, strings and None are not metrics."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update(prefixed_metrics(f"{prefix}_{key}", value))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}_{key}"] = float(value)
    return out


def replay(tracker: StepTracker, rows: Iterable[Mapping[str, Any]]) -> None:
    """Log metric rows (`{"step", "metrics"}`) collected where no tracker was."""
    for row in rows:
        tracker.log_metrics(row["metrics"], step=int(row["step"]))


def log_training_result(tracker: StepTracker, summary: Mapping[str, Any], curve_png: bytes) -> None:
    """The training summary's figures (`training_steps`, `training_tokens_seen`, ...) and
    the loss curve, once training is over."""
    tracker.log_metrics(prefixed_metrics("training", summary))
    tracker.log_artifact("loss_curve.png", curve_png)


def log_evaluation(
    tracker: StepTracker,
    stage: str,
    metrics: Mapping[str, Any],
    report_html: str,
    params: Mapping[str, Any],
) -> None:
    """`<stage>_<metric>` (base_rougeL, finetuned_ser, ...), the evaluation's settings and
    the HTML report (`<stage>_report.html`)."""
    tracker.log_params(flat_params(params))
    tracker.log_metrics(prefixed_metrics(stage, metrics))
    tracker.log_artifact(f"{stage}_report.html", report_html.encode())
