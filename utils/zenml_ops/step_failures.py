"""What a failed pipeline run's own exception does not say: which step failed, and why.

ZenML's local orchestrator (continue-on-failure, 0.98's default) ends a failed run with
`RuntimeError("Pipeline run has failed due to failure in step(s): finetune")`; the step's
exception lives in the store, as the step run's `exception_info` (its class path and
message), for any orchestrator.
"""

from __future__ import annotations

import importlib
from typing import Any

from utils.core.errors import UserError


class StepFailed(UserError, RuntimeError):
    """A step of the run failed; the message names the step and its error, in one line."""


def _is_user_error(source: str | None) -> bool:
    module, _, name = (source or "").rpartition(".")
    try:
        kind = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(kind, type) and issubclass(kind, UserError)


def failed_step_error(run_ids: list[Any]) -> str | None:
    """ "step NAME: message" of the first failed step ("step NAME: Type: message" when it is
    not one of the project's user errors, i.e. a bug or a library's error), or None."""
    from zenml.client import Client

    for run_id in run_ids:
        for name, step in Client().get_pipeline_run(run_id).steps.items():
            info = step.exception_info if step.status.value == "failed" else None
            if info is not None:
                message = " ".join((info.message or "").split())
                if _is_user_error(info.source):
                    return f"step {name}: {message}"
                kind = (info.source or "").rpartition(".")[2] or "error"
                return f"step {name}: {kind}: {message}"
    return None


def latest_run_failure(model_name: str) -> str | None:
    """`failed_step_error` of the runs of `model_name`'s newest version: the version a run
    that just failed had created."""
    from zenml.client import Client

    client = Client()
    try:
        mv = client.get_model_version(model_name)  # the latest
    except KeyError:
        return None
    return failed_step_error([r.id for r in client.list_pipeline_runs(model_version_id=mv.id)])
