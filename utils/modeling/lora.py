"""LoRA on a loaded model: which layers it adapts, and the peft wrapper for training."""

from __future__ import annotations

import logging
from typing import Any

from utils.config import LoraSection

logger = logging.getLogger(__name__)

_LINEAR_CLASSES = ("Linear", "Linear4bit", "Linear8bitLt")

# Activation checkpointing without reentrant autograd: the recomputed blocks pass gradients
# to the LoRA weights inside them even though the block inputs (frozen embeddings) need no
# gradient. Reentrant checkpointing would drop them unless the inputs were made to require
# grad (`enable_input_require_grads`). Passed to peft and to the Trainer alike.
CHECKPOINTING_KWARGS = {"use_reentrant": False}


def lora_target_modules(model: Any) -> list[str]:
    """Leaf names of every linear layer in the transformer blocks (not the LM head)."""
    output = model.get_output_embeddings()
    names = set()
    for name, module in model.named_modules():
        if module is output or type(module).__name__ not in _LINEAR_CLASSES:
            continue
        names.add(name.rsplit(".", 1)[-1])
    if not names:
        raise ValueError(f"no linear layers found in {type(model).__name__} for LoRA")
    return sorted(names)


def apply_lora(
    model: Any, lora_cfg: LoraSection, quantization: str, gradient_checkpointing: bool
) -> Any:
    """A peft model with trainable LoRA weights on `lora_cfg`'s targets and blocks."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantization != "none":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs=dict(CHECKPOINTING_KWARGS),
        )
    targets = lora_cfg.target_modules or lora_target_modules(model)
    layers = None
    if lora_cfg.last_n_layers is not None:
        total = model.config.num_hidden_layers
        layers = list(range(max(0, total - lora_cfg.last_n_layers), total))
    lora = LoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=targets,
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )
    logger.info("LoRA r=%d on %s, layers %s", lora_cfg.r, targets, layers or "all")
    return get_peft_model(model, lora)
