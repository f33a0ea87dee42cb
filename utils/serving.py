"""Use a trained adapter from the Model Control Plane: generate with it, or export it merged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.config import PipelineConfig
from utils.generation import generate
from utils.models import load_model, load_tokenizer, resolve_model_path
from utils.prompts import build_prompt, system_prompt_for
from utils.secrets import hf_token


class ServingError(ValueError):
    """The requested model version or its artifacts do not exist."""


def find_version(model_name: str, version: str) -> Any:
    """A model version by stage (staging, production, latest) or number/name."""
    from zenml.client import Client

    key: int | str = int(version) if version.isdigit() else version
    try:
        return Client().get_model_version(model_name, key)
    except KeyError:
        raise ServingError(f"model {model_name!r} has no version {version!r}") from None


def version_config(mv: Any) -> PipelineConfig:
    config = mv.run_metadata.get("config")
    if not isinstance(config, dict):
        raise ServingError(f"model version {mv.name} has no 'config' metadata (not trained?)")
    return PipelineConfig.model_validate(config)


def adapter_dir(mv: Any) -> Path:
    try:
        return Path(mv.get_artifact("adapter").load())
    except (KeyError, AttributeError):
        raise ServingError(f"model version {mv.name} has no 'adapter' artifact") from None


def load_adapter_model(mv: Any, merge: bool) -> tuple[Any, Any, PipelineConfig]:
    from peft import PeftModel

    cfg = version_config(mv)
    adapter = adapter_dir(mv)
    tokenizer = load_tokenizer(str(adapter), cfg.model.trust_remote_code, padding_side="left")
    # Merging needs full-precision base weights, so exports never load a quantized base.
    quantization = "none" if merge else cfg.model.quantization
    base = load_model(
        resolve_model_path(cfg.model.base_model_id),
        quantization,
        cfg.model.dtype,
        trust_remote_code=cfg.model.trust_remote_code,
        token=hf_token(cfg.model.hf_token_secret),
        allow_pickle_weights=cfg.model.allow_pickle_weights,
    )
    model = PeftModel.from_pretrained(base, str(adapter))
    return (model.merge_and_unload() if merge else model), tokenizer, cfg


def generate_with_version(
    mv: Any, inputs: list[str], max_new_tokens: int = 128, batch_size: int = 16
) -> list[str]:
    model, tokenizer, cfg = load_adapter_model(mv, merge=False)
    system = system_prompt_for(cfg.dataset.task, cfg.dataset.system_prompt)
    prompts = [build_prompt(tokenizer, text, system) for text in inputs]
    return generate(model, tokenizer, prompts, batch_size, max_new_tokens, "generate").texts


def export_merged(mv: Any, out_dir: Path) -> Path:
    """A plain transformers folder (safetensors + tokenizer): LoRA merged into the base."""
    model, tokenizer, _ = load_adapter_model(mv, merge=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(out_dir)
    return out_dir
