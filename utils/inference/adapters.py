"""A trained adapter in use: generate with it, or write it merged into its base model."""

from __future__ import annotations

from pathlib import Path

from utils.config import PipelineConfig
from utils.data.prompts import build_prompt, system_prompt_for
from utils.inference.rerank import decode_outputs
from utils.modeling.loader import load_model


def generate_with_adapter(
    cfg: PipelineConfig,
    adapter: Path,
    inputs: list[str],
    max_new_tokens: int = 128,
    batch_size: int = 16,
) -> list[str]:
    """Completions of task `inputs` (MRs, sentences, ...) with the adapter trained by `cfg`,
    prompted exactly as in training, decoded as its evaluation was (greedy, or reranked when
    `evaluation.rerank` is set)."""
    model, tokenizer = load_model(cfg.model.source(), adapter=adapter, padding_side="left")
    system = system_prompt_for(cfg.dataset.task, cfg.dataset.system_prompt)
    thinking = cfg.dataset.enable_thinking
    prompts = [build_prompt(tokenizer, text, system, thinking) for text in inputs]
    ev = cfg.evaluation
    return decode_outputs(
        model, tokenizer, prompts, inputs, cfg.dataset.task, ev.rerank, batch_size=batch_size,
        max_new_tokens=max_new_tokens, engine=ev.engine, stop_at_newline=ev.stop_at_newline,
    ).generations.texts  # fmt: skip


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
