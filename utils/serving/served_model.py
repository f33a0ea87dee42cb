"""The model a deployment serves: loaded once by the inference pipeline's init hook, then
shared by the fast `/invoke` path, the OpenAI route and the recorded runs' `generate` step,
all of which decode through one Batcher."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from utils.core.tasks import TaskName
from utils.inference.adapters import AdapterGenerator
from utils.inference.rolling import Take
from utils.serving.batcher import Batcher
from utils.serving.env_capture import list_packages_once
from utils.serving.slot_report import slot_error_report

logger = logging.getLogger(__name__)


class ServedModel:
    """One model version's adapter on its base, as the deployment serves it."""

    def __init__(
        self,
        load: Callable[[], AdapterGenerator],
        description: str,
        max_batch_inputs: int,
        batch_window_ms: int = 0,
        max_queued_inputs: int | None = None,
        name: str = "",
        continuous_batching: bool = True,
    ) -> None:
        """`load` builds the generator on the decoding thread (see `Batcher`: the model is
        loaded and decoded on one thread); its errors are raised here. Requests join the
        running decode where the generator can take them (`AdapterGenerator.rolling`) and
        `continuous_batching` is on, else they are decoded batch by batch."""
        loaded: list[AdapterGenerator] = []

        def setup() -> Callable[[Take], None] | None:
            loaded.append(load())
            return loaded[0].rolling() if continuous_batching else None

        self.batcher = Batcher(
            lambda inputs: loaded[0].generate(inputs), max_batch_inputs,
            batch_window_ms / 1000, max_queued_inputs, setup=setup,
        )  # fmt: skip
        self.batcher.ready()
        self.generator = loaded[0]
        self.task = self.generator.cfg.dataset.task
        self.description = description
        self.name = name or description
        # Outputs the fast path already answered, for the run that records them: outputs
        # depend on the input only, so the recorded step reuses them instead of decoding.
        self._answered: dict[tuple[str, ...], list[str]] = {}
        self._lock = threading.Lock()

    def generate(self, inputs: list[str]) -> list[str]:
        with self._lock:
            answered = self._answered.pop(tuple(inputs), None)
        return answered if answered is not None else self.batcher(inputs)

    def remember(self, inputs: list[str], outputs: list[str]) -> None:
        """Keep one request's outputs for the run that records it (`generate` takes them)."""
        with self._lock:
            self._answered[tuple(inputs)] = list(outputs)

    def forget(self, inputs: list[str]) -> None:
        with self._lock:
            self._answered.pop(tuple(inputs), None)

    def slot_errors(self, inputs: list[str], outputs: list[str]) -> list[dict[str, Any]] | None:
        """Per output, its slot-error report (data_to_text); None for the other tasks."""
        if self.task != TaskName.DATA_TO_TEXT:
            return None
        return [slot_error_report(mr, text) for mr, text in zip(inputs, outputs, strict=True)]

    def prompt_tokens(self, text: str) -> int:
        """Tokens of the prompt `text` becomes (the version's chat template and system
        prompt, as the generator builds it)."""
        from utils.data.prompts import build_prompt, system_prompt_for

        ds = self.generator.cfg.dataset
        system = system_prompt_for(ds.task, ds.system_prompt)
        prompt = build_prompt(self.generator.tokenizer, text, system, ds.enable_thinking)
        return self.count_tokens(prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.generator.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate_tokens(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """`text` cut to its first `max_tokens` tokens, and whether it was cut."""
        tok = self.generator.tokenizer
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_tokens:
            return text, False
        return tok.decode(ids[:max_tokens], skip_special_tokens=True), True


def set_torch_threads(threads: int | None) -> int:
    """torch's intra-op threads for the service: `threads`, or one per core (the decoding
    thread is the only one doing tensor work)."""
    import os

    import torch

    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    n = threads or cores
    torch.set_num_threads(n)
    return n


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
    list_packages_once()
    mv = find_version(model, version)
    description = f"{model} version {mv.name}"

    def load() -> AdapterGenerator:
        start = time.perf_counter()
        threads = set_torch_threads(limits.torch_threads)
        with extracted_adapter(mv) as adapter:  # loaded into memory, the copy can go
            generator = AdapterGenerator.load(
                version_config(mv), adapter, evaluated_max_new_tokens(mv), limits.rerank
            )
        logger.info(
            "loaded %s in %.1f s (%d torch threads, on the decoding thread)",
            description, time.perf_counter() - start, threads,
        )  # fmt: skip
        return generator

    return ServedModel(
        load,
        description,
        limits.max_batch_inputs,
        limits.batch_window_ms,
        limits.max_queued_inputs,
        name=model,
        continuous_batching=limits.continuous_batching,
    )
