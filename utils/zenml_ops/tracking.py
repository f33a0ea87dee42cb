"""The active stack's experiment tracker: which steps run with it and how (chosen when the
pipeline is built), and whether it can be used at all (checked before any step runs)."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from utils.config import PipelineConfig
from utils.core.errors import UserError, one_line
from utils.core.names import EVALUATE_BASE, EVALUATE_FINETUNED, FINETUNE

logger = logging.getLogger(__name__)

# Flavor -> the package it needs (requirements-tracking.txt, `make install-tracking`).
TRACKED_FLAVORS = {"mlflow": "mlflow", "wandb": "wandb"}
TRACKED_STEPS = (FINETUNE, EVALUATE_BASE, EVALUATE_FINETUNED)
# The reachability check must not hang a run for minutes on a dead server (MLflow retries
# with backoff by default).
CHECK_TIMEOUT_S = 10
OPT_OUT = "or set tracking.required: false to run without it"


class TrackerError(UserError, RuntimeError):
    """The stack's experiment tracker is misconfigured, missing its package or unreachable."""


@dataclass(frozen=True)
class StackTracker:
    name: str
    flavor: str


def stack_tracker() -> StackTracker | None:
    """The active stack's (default) experiment tracker, read from the stack's record: no
    tracker package is imported."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    components = Client().active_stack_model.components.get(StackComponentType.EXPERIMENT_TRACKER)
    if not components:
        return None
    return StackTracker(components[0].name, components[0].flavor_name)


def tracker_step_options(cfg: PipelineConfig, tracker: StackTracker) -> dict[str, dict[str, Any]]:
    """`with_options(steps=...)` entries that run finetune and both evaluations with the
    tracker: one experiment (MLflow) or group (W&B) per `model.name`. None for a flavor
    this project does not log to."""
    if tracker.flavor not in TRACKED_FLAVORS:
        return {}
    key = f"experiment_tracker:{tracker.name}"
    options = {}
    for step in TRACKED_STEPS:
        if tracker.flavor == "mlflow":
            settings = {"experiment_name": cfg.model.name, "nested": True}
        else:
            settings = {"group": cfg.model.name, "job_type": step}
        options[step] = {"experiment_tracker": tracker.name, "settings": {key: settings}}
    return options


def add_tracker_options(
    steps: dict[str, dict[str, Any]], cfg: PipelineConfig, tracker: StackTracker
) -> None:
    """Merge `tracker_step_options` into `steps` (settings the `remote:` section gives a
    step win)."""
    for step, options in tracker_step_options(cfg, tracker).items():
        current = steps.setdefault(step, {})
        current["experiment_tracker"] = options["experiment_tracker"]
        current["settings"] = {**options["settings"], **current.get("settings", {})}


def check_tracker(cfg: PipelineConfig) -> bool:
    """Whether the run logs to the stack's tracker. A tracker that cannot be used raises
    TrackerError (one line naming it), or with `tracking.required: false` is left out with a
    warning; a flavor this project does not log to is left out with a warning."""
    tracker = stack_tracker()
    if tracker is None:
        return False
    if tracker.flavor not in TRACKED_FLAVORS:
        logger.warning(
            "experiment tracker %r: flavor %r is not logged to (only %s)",
            tracker.name, tracker.flavor, ", ".join(TRACKED_FLAVORS),
        )  # fmt: skip
        return False
    try:
        _check(tracker)
    except TrackerError as e:
        if cfg.tracking.required:
            raise
        logger.warning("%s; running without it (tracking.required: false)", e)
        return False
    return True


def _check(tracker: StackTracker) -> None:
    label = f"experiment tracker {tracker.name!r} ({tracker.flavor})"
    package = TRACKED_FLAVORS[tracker.flavor]
    if importlib.util.find_spec(package) is None:
        raise TrackerError(
            f"{label} needs the {package} package: run `make install-tracking`, {OPT_OUT}"
        )
    from zenml.client import Client

    component = None
    try:
        component = Client().active_stack.experiment_trackers[tracker.name]
        if tracker.flavor == "mlflow":
            _check_mlflow(component, label)
        else:
            _check_wandb(component)
    except TrackerError:
        raise
    except Exception as e:  # whatever a misconfigured component or dead server raises
        reason = one_line(e, limit=300)
        for secret in _secret_values(component):
            reason = reason.replace(secret, "***")
        raise TrackerError(f"{label} cannot be used: {reason}; fix it, {OPT_OUT}") from e


def _secret_values(component: Any) -> list[str]:
    """The component's credentials, never to be printed."""
    keys = ("tracking_password", "tracking_token", "api_key", "databricks_client_secret")
    values = []
    for key in keys:
        try:
            value = getattr(component.config, key, None)
        except Exception:  # a secret reference that cannot be resolved
            value = None
        if isinstance(value, str) and value:
            values.append(value)
    return values


def _check_mlflow(component: Any, label: str) -> None:
    import mlflow
    from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
        is_remote_mlflow_tracking_uri,
    )

    from utils.zenml_ops.remote_options import runs_locally

    uri = component.get_tracking_uri()
    if not is_remote_mlflow_tracking_uri(uri) and not runs_locally():
        raise TrackerError(
            f"{label} stores runs on this machine ({uri.split('://')[0]}), but the steps run "
            f"elsewhere: give it a remote tracking_uri (an MLflow server), {OPT_OUT}"
        )
    with _environment_kept():
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(CHECK_TIMEOUT_S)
        component.configure_mlflow()  # credentials, from ZenML secrets where referenced
        try:
            mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        finally:
            mlflow.set_tracking_uri("")


def _check_wandb(component: Any) -> None:
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return  # nothing to reach: runs are written locally or not at all
    import wandb

    wandb.Api(api_key=component.config.api_key, timeout=CHECK_TIMEOUT_S).viewer  # noqa: B018


@contextmanager
def _environment_kept() -> Iterator[None]:
    """What a check puts into os.environ (credentials included) is gone afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)
