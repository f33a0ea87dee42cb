"""The model a deployment serves: loaded once by the inference pipeline's init hook, shared by
every request's step, and decoding the inputs of concurrent requests together.

ZenML runs each `/invoke` as a pipeline run in a thread of the service's pool; the steps hand
their inputs to one decoding thread, so the model is never used by two threads at once, and
inputs that queued up while a batch decoded go into the next batch together.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from utils.core.tasks import TaskName
from utils.inference.adapters import AdapterGenerator
from utils.viggo import slot_report, try_parse_mr

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    inputs: list[str]
    done: Future = field(default_factory=Future)


class Batcher:
    """Runs `decode(inputs) -> outputs` on one thread, over the inputs of whatever requests
    are waiting (up to `max_inputs`; a larger request still goes whole, alone)."""

    def __init__(self, decode: Any, max_inputs: int, window_s: float = 0.0) -> None:
        self._decode = decode
        self._max_inputs = max_inputs
        self._window_s = window_s
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._held: _Request | None = None
        self.batches = 0
        threading.Thread(target=self._run, name="decode", daemon=True).start()

    def submit(self, inputs: list[str]) -> list[str]:
        request = _Request(list(inputs))
        self._queue.put(request)
        return request.done.result()

    def _next_batch(self) -> list[_Request]:
        first = self._held or self._queue.get()
        self._held = None
        batch, size = [first], len(first.inputs)
        deadline = time.monotonic() + self._window_s
        while size < self._max_inputs:
            try:
                wait = deadline - time.monotonic()
                nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if size + len(nxt.inputs) > self._max_inputs:
                self._held = nxt  # first in the next batch: arrival order is kept
                break
            batch.append(nxt)
            size += len(nxt.inputs)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            inputs = [text for r in batch for text in r.inputs]
            try:
                outputs = self._decode(inputs)
            except Exception as e:  # every waiting request learns of it; the thread lives on
                logger.exception("decoding a batch of %d inputs failed", len(inputs))
                for r in batch:
                    r.done.set_exception(e)
                continue
            self.batches += 1
            start = 0
            for r in batch:
                r.done.set_result(outputs[start : start + len(r.inputs)])
                start += len(r.inputs)


def slot_error_report(mr: str, sentence: str) -> dict[str, Any] | None:
    """Which slots of `mr` the sentence misses, gets wrong or invents (ViGGO's SER rules), or
    None for an input that is not an MR."""
    parsed = try_parse_mr(mr)
    if parsed is None:
        return None
    per_slot, invented = slot_report(parsed, sentence)
    missing = [s for s, (m, _, _) in per_slot.items() if m]
    wrong = [s for s, (_, w, _) in per_slot.items() if w]
    hallucinated = [s for s, (_, _, h) in per_slot.items() if h] + invented
    errors = sum(m + w + h for m, w, h in per_slot.values()) + len(invented)
    return {"missing": missing, "wrong": wrong, "hallucinated": hallucinated, "errors": errors}


class ServedModel:
    """One model version's adapter on its base, as the deployment serves it."""

    def __init__(
        self,
        generator: AdapterGenerator,
        description: str,
        max_batch_inputs: int,
        batch_window_ms: int = 0,
    ) -> None:
        self.generator = generator
        self.task = generator.cfg.dataset.task
        self.description = description
        self._batcher = Batcher(generator.generate, max_batch_inputs, batch_window_ms / 1000)

    def generate(self, inputs: list[str]) -> list[str]:
        return self._batcher.submit(inputs)

    def slot_errors(self, inputs: list[str], outputs: list[str]) -> list[dict[str, Any]] | None:
        """Per output, its slot-error report (data_to_text); None for the other tasks."""
        if self.task != TaskName.DATA_TO_TEXT:
            return None
        return [slot_error_report(mr, text) for mr, text in zip(inputs, outputs, strict=True)]


def _list_packages_once() -> None:
    """ZenML stores `pip freeze` with every pipeline run, in a subprocess (1.6 s of CPU on a
    2-core machine); a deployment runs one pipeline per request, and its packages cannot
    change while it runs, so the list is taken once per process."""
    import functools

    from zenml.environment import Environment

    if not hasattr(Environment.get_python_packages, "cache_info"):
        Environment.get_python_packages = staticmethod(
            functools.cache(Environment.get_python_packages)
        )


def load_served_model(model: str, version: str, serving: dict[str, Any]) -> ServedModel:
    """The inference pipeline's init hook: runs once per process (at deployment start-up;
    once per run for a plain `run`), before any request. Its JSON kwargs are fixed when
    the pipeline is deployed, so a deployment keeps serving the version it was started with
    even when the stage moves on."""
    from utils.config import ServingSection
    from utils.zenml_ops.model_versions import (
        evaluated_max_new_tokens,
        extracted_adapter,
        find_version,
        version_config,
    )

    limits = ServingSection.model_validate(serving)
    _list_packages_once()
    mv = find_version(model, version)
    start = time.perf_counter()
    with extracted_adapter(mv) as adapter:  # loaded into memory, the copy can go
        generator = AdapterGenerator.load(
            version_config(mv), adapter, evaluated_max_new_tokens(mv), limits.rerank
        )
    description = f"{model} version {mv.name}"
    logger.info("loaded %s in %.1f s", description, time.perf_counter() - start)
    return ServedModel(generator, description, limits.max_batch_inputs, limits.batch_window_ms)
