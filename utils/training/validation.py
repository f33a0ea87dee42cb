"""Generative validation during training: every N steps, decode a validation sample and
score it, so a longer run cannot get worse unseen; optionally keep the best weights.

The loss says little about slot errors: a model can lower its loss and still drop slots.
This callback decodes what evaluation decodes (greedy, the same prompts and stop rules) on
a fixed sample of distinct validation inputs and records the task's validation metric
(SER for data_to_text) and ROUGE-L. With `select_best`, the LoRA weights of the best check
are put back at the end of training, before the adapter is saved.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import nullcontext
from typing import Any

import torch
from transformers import TrainerCallback

from utils.core.tasks import ROUGE_L, get_task
from utils.inference.transformers_engine import generate
from utils.metrics.task_metrics import compute_metrics

logger = logging.getLogger(__name__)


def validation_sample(rows: list[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Up to `n` rows with distinct inputs (each scored against its own reference), seeded."""
    by_input: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_input.setdefault(row["input"], row)
    distinct = list(by_input.values())
    if len(distinct) <= n:
        return distinct
    return random.Random(seed).sample(distinct, n)


class GenerativeValidation(TrainerCallback):
    def __init__(
        self,
        tokenizer: Any,
        rows: list[dict[str, Any]],
        task: str,
        every: int,
        max_new_tokens: int,
        batch_size: int,
        select_best: bool = False,
        autocast_bf16: bool = False,
    ) -> None:
        self.tokenizer, self.rows, self.task, self.every = tokenizer, rows, task, every
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.select_best, self.autocast_bf16 = select_best, autocast_bf16
        self.metric = get_task(task).validation_metric
        self.history: list[dict[str, float]] = []
        self.best: tuple[int, float, float] | None = None  # (step, metric value, ROUGE-L)
        self._best_weights: dict[str, torch.Tensor] | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        step = state.global_step
        if step % self.every and step != state.max_steps:
            return
        scores = self.score(model)
        scores["step"] = step
        self.history.append(scores)
        value = scores[self.metric.name]
        logger.info(
            "validation at step %d: %s=%.4f, rougeL=%.4f (%d inputs, %.1f s)",
            step, self.metric.name, value, scores[ROUGE_L.name], len(self.rows),
            scores["seconds"],
        )  # fmt: skip
        if self._improves(value, scores[ROUGE_L.name]):
            self.best = (step, value, scores[ROUGE_L.name])
            if self.select_best:
                self._best_weights = {
                    n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
                }

    def _improves(self, value: float, rouge_l: float) -> bool:
        # On 48 inputs SER often ties (0.0 late in a run): a tie goes to ROUGE-L, and a full
        # tie to the later, longer-trained step.
        if self.best is None or self.metric.better(value, self.best[1]):
            return True
        return value == self.best[1] and rouge_l >= self.best[2]

    def score(self, model: Any) -> dict[str, float]:
        start = time.perf_counter()
        was_training = model.training
        device = next(model.parameters()).device
        autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16)
            if self.autocast_bf16
            else nullcontext()
        )
        try:
            with autocast:
                texts = generate(
                    model,
                    self.tokenizer,
                    [r["prompt"] for r in self.rows],
                    self.batch_size,
                    self.max_new_tokens,
                    "validation",
                    stop_at_newline=True,
                ).texts
        finally:
            model.train(was_training)
        metrics = compute_metrics(
            self.task, [r["input"] for r in self.rows], texts, [r["target"] for r in self.rows]
        )
        out = {m.name: float(metrics[m.name]) for m in {self.metric, ROUGE_L}}
        out["seconds"] = round(time.perf_counter() - start, 2)
        return out

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        if not self.select_best or self._best_weights is None:
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self._best_weights.items():
                params[name].copy_(value)
        step, value, _ = self.best
        name = self.metric.name
        logger.info("select_best: kept the weights of step %d (%s=%.4f)", step, name, value)

    def summary(self) -> dict[str, Any]:
        return {
            "validation_metric": self.metric.name,
            "validation_history": self.history,
            "best_validation_step": self.best[0] if self.best else None,
            "selected_step": self.best[0] if self.best and self.select_best else None,
        }
