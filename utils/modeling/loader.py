"""The one model loader: base model (+ LoRA adapter) and tokenizer, for training,
evaluation, generation and export alike.

Where the files come from is `utils.modeling.resolve`; the dtype, device and quantization
come from `ModelSource` through the precision policy; the hub token from
`model.hf_token_secret` (or HF_TOKEN), read here, where the model is loaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from utils.config import ModelSource
from utils.modeling.precision import Precision, precision_for
from utils.modeling.quantization import (
    cpu_4bit_kernel_note,
    cpu_4bit_problem,
    quantization_config,
)
from utils.modeling.resolve import ModelLoadError, resolve_model_path
from utils.modeling.safety import use_safetensors_for
from utils.zenml_ops.secrets import hf_token

logger = logging.getLogger(__name__)


def load_tokenizer(
    path: str,
    trust_remote_code: bool = False,
    padding_side: str = "right",
    token: str | None = None,
) -> Any:
    """`token`: for gated hub models; None = huggingface_hub's default."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, token=token)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_weights(
    path: str, source: ModelSource, precision: Precision, token: str | None, fsdp: bool = False
) -> Any:
    """The base model from `path`, quantized and placed as `source` and `precision` say;
    `fsdp`: to be sharded by accelerate's FSDP (4-bit weights stored shardably)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": precision.dtype,
        "trust_remote_code": source.trust_remote_code,
        "token": token,
    }
    if precision.attn_implementation is not None:
        kwargs["attn_implementation"] = precision.attn_implementation
    qconfig = quantization_config(source.quantization, precision.dtype, fsdp=fsdp)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    on_gpu = precision.device.startswith("cuda")
    if on_gpu or qconfig is not None:
        # Straight onto this process's device (bitsandbytes also quantizes there): no full
        # copy in host memory first, and under `accelerate launch` each rank on its own GPU
        # (a bare "cuda" is GPU 0 for all of them).
        kwargs["device_map"] = {"": placement(precision.device)}
    model = AutoModelForCausalLM.from_pretrained(
        path, use_safetensors=use_safetensors_for(path, source.allow_pickle_weights), **kwargs
    )
    if "device_map" not in kwargs and precision.device != "cpu":
        # from_pretrained loads onto the CPU; under FSDP's CPU-efficient loading the ranks
        # other than 0 hold meta tensors there, which cannot be moved (nor need to be).
        model.to(precision.device)
    contiguous_head_input(model)
    if source.quantization == "4bit" and not on_gpu:
        # Here, not at the first forward pass deep inside a step: one line saying what to do.
        problem = cpu_4bit_problem(model)
        if problem:
            raise ModelLoadError(f"{path}: {problem}")
        note = cpu_4bit_kernel_note()
        if note:
            logger.info(note)
    return model


def contiguous_head_input(model: Any) -> None:
    """Hand the LM head a contiguous input.

    Decoding asks for the last position's logits only (`logits_to_keep=1`), so the head
    gets a strided view of the prompt's hidden states. On a CPU, torch's bf16 matmul with
    that view took 36 s instead of 0.18 s for 128 rows of SmolLM2, and inside the first
    prefill of the evaluation it held several GB while it ran (the 11 GB spike at the start
    of `evaluate_finetuned`). A copy of the rows it needs costs nothing.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        return

    def _contiguous(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if args and isinstance(args[0], torch.Tensor) and not args[0].is_contiguous():
            return (args[0].contiguous(), *args[1:])
        return None

    head.register_forward_pre_hook(_contiguous)


def load_model(
    source: ModelSource,
    *,
    adapter: Path | None = None,
    padding_side: str = "right",
    precision: Precision | None = None,
    fsdp: bool = False,
) -> tuple[Any, Any]:
    """(model, tokenizer) of `source`, with `adapter` on top when given.

    The adapter folder carries the tokenizer it was trained with. On an unquantized base the
    adapter is merged (generation at base-model speed, and what `export` writes); on a
    quantized base it stays a PeftModel.
    """
    path = resolve_model_path(source.base_model_id)
    token = hf_token(source.hf_token_secret)
    precision = precision or precision_for(source)
    tokenizer = load_tokenizer(
        str(adapter or path), source.trust_remote_code, padding_side, token=token
    )
    model = load_weights(path, source, precision, token, fsdp=fsdp)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if source.quantization == "none":
            model = model.merge_and_unload()
    return model, tokenizer


def placement(device: str) -> Any:
    """Where this process's model lives: on a GPU the one of its LOCAL_RANK (set by
    `accelerate launch`; 0 in a single process), elsewhere `device` itself."""
    if device.startswith("cuda"):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device
