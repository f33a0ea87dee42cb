"""A trained adapter in use: generate with it, or write it merged into its base model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import PipelineConfig
from utils.core.freed_memory import release_freed_memory
from utils.data.prompts import build_prompt, system_prompt_for
from utils.inference.decoder import Decoder
from utils.inference.rerank import Reranked
from utils.inference.rolling import Take, decode_rolling, rolling_problem
from utils.modeling.loader import load_model
from utils.zenml_ops.model_versions import evaluated_max_new_tokens, extracted_adapter

logger = logging.getLogger(__name__)

# Where neither the caller, the config nor the version's evaluation says (a version scored
# before the evaluation recorded its `max_new_tokens`).
FALLBACK_MAX_NEW_TOKENS = 128


@dataclass
class AdapterGenerator:
    """Base + adapter loaded once, decoding any number of batches the way the evaluation of
    `cfg` did: its prompt, stop rules, engine and (unless `rerank` is turned off) reranking."""

    cfg: PipelineConfig
    decoder: Decoder
    max_new_tokens: int

    @classmethod
    def load(
        cls,
        cfg: PipelineConfig,
        adapter: Path,
        max_new_tokens: int | None = None,
        rerank: bool = True,
    ) -> AdapterGenerator:
        """`max_new_tokens` None: the config's `evaluation.max_new_tokens`."""
        ds = cfg.dataset
        decoder = Decoder.load(cfg.model.source(), cfg.evaluation, ds.task, adapter, rerank)
        max_new = max_new_tokens or cfg.evaluation.max_new_tokens or FALLBACK_MAX_NEW_TOKENS
        return cls(cfg, decoder, max_new)

    @property
    def tokenizer(self) -> Any:
        return self.decoder.engine.tokenizer

    def prompts(self, inputs: list[str]) -> list[str]:
        """The prompts of task `inputs`, as training and evaluation wrote them."""
        ds = self.cfg.dataset
        system = system_prompt_for(ds.task, ds.system_prompt)
        return [build_prompt(self.tokenizer, t, system, ds.enable_thinking) for t in inputs]

    def decode(self, inputs: list[str], batch_size: int | None = None) -> Reranked:
        """Completions of task `inputs` with what decoding them cost (`stats`)."""
        return self.decoder.decode(self.prompts(inputs), inputs, self.max_new_tokens, batch_size)

    def generate(self, inputs: list[str], batch_size: int | None = None) -> list[str]:
        """Completions of task `inputs` (MRs, sentences, ...), in order."""
        return self.decode(inputs, batch_size).generations.texts

    def rolling(self) -> Callable[[Take], None] | None:
        """A decode that requests join while it runs (`utils.inference.rolling`), with the
        outputs `generate` gives; None (logged) where this decode cannot take them."""
        problem = rolling_problem(self.decoder)
        if problem is not None:
            logger.info("requests are decoded batch by batch: %s", problem)
            return None

        def decode(take: Take) -> None:
            decode_rolling(self.decoder, take, self.prompts, self.max_new_tokens)

        return decode


def generate_with_adapter(
    cfg: PipelineConfig,
    adapter: Path,
    inputs: list[str],
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
) -> list[str]:
    """Completions of task `inputs` (MRs, sentences, ...) with the adapter trained by `cfg`,
    prompted exactly as in training, decoded as its evaluation was (greedy, or reranked when
    `evaluation.rerank` is set); `max_new_tokens` and `batch_size` default to the config's."""
    return AdapterGenerator.load(cfg, adapter, max_new_tokens).generate(inputs, batch_size)


def export_merged(cfg: PipelineConfig, adapter: Path, out_dir: Path) -> Path:
    """A plain transformers folder (safetensors + tokenizer): LoRA merged into the base."""
    # Merging needs full-precision base weights, so exports never load a quantized base.
    source = cfg.model.source().model_copy(update={"quantization": "none"})
    model, tokenizer = load_model(source, adapter=adapter)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(out_dir)
    return out_dir


def version_decode(mv: Any, cfg: PipelineConfig) -> Callable[[list[str]], list[str]]:
    """A function decoding inputs with the version's adapter: the model is loaded when it
    is called and gone when it returns, so generator and parser are never both loaded."""

    def decode(inputs: list[str]) -> list[str]:
        with extracted_adapter(mv) as adapter:
            loaded = AdapterGenerator.load(cfg, adapter, evaluated_max_new_tokens(mv))
            texts = loaded.generate(inputs)
        del loaded
        release_freed_memory()  # before the next version's model loads
        return texts

    return decode
