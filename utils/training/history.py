"""The Trainer's log lines (loss, learning rate, eval loss) and checkpoint saves, kept for
the loss curve and the step's metadata, in-process or across an Accelerate launch."""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

from utils.core.names import LOSS_HISTORY
from utils.zenml_ops.step_context import in_zenml_step

logger = logging.getLogger(__name__)


def _entry(step: int, logs: dict[str, Any]) -> dict[str, float]:
    entry = {"step": int(step)}
    entry.update({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})
    return entry


class LossHistory(TrainerCallback):
    """Keeps every train/eval log line; logs them as step metadata when a step context exists.

    Under `run_with_accelerate` the training runs in child processes without a step context,
    so the history is also returned to the caller (and logged by the parent step) instead of
    being silently dropped.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.checkpoint_steps: list[int] = []

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any):
        if state.is_world_process_zero:
            self.checkpoint_steps.append(int(state.global_step))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any):
        if not state.is_world_process_zero or not logs:
            return
        self.history.append(_entry(state.global_step, logs))

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any):
        # A resumed run starts from the checkpoint's log history: keep the whole curve.
        if state.is_world_process_zero and not self.history:
            self.history = [_entry(e.get("step", 0), e) for e in state.log_history]

    def losses(self) -> dict[str, list[list[float]]]:
        """`{"train_loss": [[step, value], ...], "eval_loss": [...]}` for plots and metadata."""
        out: dict[str, list[list[float]]] = {"train_loss": [], "eval_loss": []}
        for e in self.history:
            if "loss" in e:
                out["train_loss"].append([e["step"], e["loss"]])
            if "eval_loss" in e:
                out["eval_loss"].append([e["step"], e["eval_loss"]])
        return out

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any):
        if state.is_world_process_zero and in_zenml_step():
            from zenml import log_metadata

            log_metadata(metadata={LOSS_HISTORY: self.losses()})
