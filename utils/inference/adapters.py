"""A trained adapter in use: generate with it, or write it merged into its base model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import PipelineConfig, RerankSection
from utils.data.prompts import build_prompt, system_prompt_for
from utils.inference.rerank import decode_outputs
from utils.modeling.loader import load_model

# Where neither the config nor the version's evaluation says (a version scored before the
# evaluation recorded its `max_new_tokens`).
FALLBACK_MAX_NEW_TOKENS = 128


@dataclass
class AdapterGenerator:
    """Base + adapter loaded once, decoding any number of batches the way the evaluation of
    `cfg` did: its prompt, stop rules, engine and (unless `rerank` is turned off) reranking."""

    cfg: PipelineConfig
    model: Any
    tokenizer: Any
    max_new_tokens: int
    rerank: RerankSection | None

    @classmethod
    def load(
        cls,
        cfg: PipelineConfig,
        adapter: Path,
        max_new_tokens: int | None = None,
        rerank: bool = True,
    ) -> AdapterGenerator:
        model, tokenizer = load_model(cfg.model.source(), adapter=adapter, padding_side="left")
        return cls(
            cfg,
            model,
            tokenizer,
            max_new_tokens or cfg.evaluation.max_new_tokens or FALLBACK_MAX_NEW_TOKENS,
            cfg.evaluation.rerank if rerank else None,
        )

    def generate(self, inputs: list[str], batch_size: int | None = None) -> list[str]:
        """Completions of task `inputs` (MRs, sentences, ...), in order."""
        ds, ev = self.cfg.dataset, self.cfg.evaluation
        system = system_prompt_for(ds.task, ds.system_prompt)
        prompts = [build_prompt(self.tokenizer, t, system, ds.enable_thinking) for t in inputs]
        return decode_outputs(
            self.model, self.tokenizer, prompts, inputs, ds.task, self.rerank,
            batch_size=batch_size or ev.batch_size, max_new_tokens=self.max_new_tokens,
            engine=ev.engine, stop_at_newline=ev.stop_at_newline,
        ).generations.texts  # fmt: skip


def generate_with_adapter(
    cfg: PipelineConfig,
    adapter: Path,
    inputs: list[str],
    max_new_tokens: int | None = 128,
    batch_size: int = 16,
) -> list[str]:
    """Completions of task `inputs` (MRs, sentences, ...) with the adapter trained by `cfg`,
    prompted exactly as in training, decoded as its evaluation was (greedy, or reranked when
    `evaluation.rerank` is set)."""
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
