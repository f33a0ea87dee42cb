"""The one precision policy: which device a model runs on and in which number formats.

Every place that used to decide a dtype (`from_pretrained(dtype=)`, the 4-bit compute
dtype, the Trainer's `bf16` autocast, `accelerate launch --mixed_precision`) reads it here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from utils.config import ModelSource


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls at about twice the float32 speed (measured 417 vs
    194 GFLOP/s on a 2-core Zen 4). Without them bf16 is emulated and slower."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """`model.dtype`; `auto` is bf16 on GPUs and CPUs that compute it natively, else float32."""
    if name != "auto":
        return getattr(torch, name)
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


@dataclass(frozen=True)
class Precision:
    device: str
    # Weights as loaded; also the compute dtype of 4-bit layers.
    dtype: torch.dtype
    # The Trainer's bf16 autocast (unquantized bf16 models).
    trainer_bf16: bool
    # `accelerate launch --mixed_precision` for multi-process training.
    launcher_mixed_precision: str
    # `from_pretrained(attn_implementation=)`; None = transformers' default (sdpa).
    attn_implementation: str | None = None


def precision_for(
    source: ModelSource, mixed_precision: str = "no", device: str | None = None
) -> Precision:
    """The precision of `source` on `device` (default: the best this machine has)."""
    device = device or default_device()
    dtype = resolve_dtype(source.dtype, device)
    attention = None if source.attn_implementation == "auto" else source.attn_implementation
    if attention is None and device == "cpu" and dtype == torch.bfloat16:
        # PyTorch's CPU flash attention is slow in bf16, its backward most of all: a
        # SmolLM2 training step took 5.3 s with sdpa, 4.1 s eager (float32: 6.9 s).
        attention = "eager"
    return Precision(
        device=device,
        dtype=dtype,
        trainer_bf16=dtype == torch.bfloat16 and source.quantization == "none",
        # Autocast through the launcher exists only on GPUs.
        launcher_mixed_precision=mixed_precision if device == "cuda" else "no",
        attn_implementation=attention,
    )
