"""What an experiment tracker gets from training, per logging step: the Trainer's losses,
learning rate, grad norm and tokens seen, and the generative validation scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

if TYPE_CHECKING:
    from utils.training.validation import GenerativeValidation

# The Trainer's log keys -> the tracker's metric names. Only these: the Trainer's last log
# line repeats some of them (tokens seen, epoch) with run totals that are no logging step.
TRAIN_LOG_KEYS = {
    "loss": "train_loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "num_input_tokens_seen": "tokens_seen",
    "epoch": "epoch",
}
EVAL_LOG_KEYS = {"eval_loss": "eval_loss"}
# validation_<metric>, e.g. validation_ser, validation_rougeL.
VALIDATION_PREFIX = "validation_"

MetricSink = Callable[[dict[str, float], int], None]


class MetricLog(TrainerCallback):
    """Rank 0's tracker metrics as `rows` ({"step", "metrics"}), and to `sink` as they come.

    The sink is the step's tracker when the Trainer runs in the step's process; Accelerate's
    children have none, so their rows travel back to the parent step, which logs them.
    """

    def __init__(self, sink: MetricSink | None = None) -> None:
        self.sink = sink
        self.rows: list[dict[str, Any]] = []
        self.validation: GenerativeValidation | None = None
        self._validated = 0  # validation checks already emitted

    def watch(self, validation: GenerativeValidation | None) -> None:
        """Also emit `validation`'s checks (a callback that runs before this one)."""
        self.validation = validation

    def _emit(self, metrics: dict[str, float], step: int) -> None:
        if not metrics:
            return
        self.rows.append({"step": int(step), "metrics": metrics})
        if self.sink is not None:
            self.sink(metrics, int(step))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any):
        if not state.is_world_process_zero or not logs:
            return
        keys = TRAIN_LOG_KEYS if "loss" in logs else EVAL_LOG_KEYS
        self._emit(
            {
                name: float(logs[k])
                for k, name in keys.items()
                if isinstance(logs.get(k), int | float)
            },
            state.global_step,
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any):
        if not state.is_world_process_zero or self.validation is None:
            return
        for check in self.validation.history[self._validated :]:
            scores = {
                VALIDATION_PREFIX + k: float(v)
                for k, v in check.items()
                if k not in ("step", "seconds")
            }
            self._emit(scores, check["step"])
        self._validated = len(self.validation.history)
