"""The one precision policy: which device a model runs on and in which number formats.

Every place that used to decide a dtype (`from_pretrained(dtype=)`, the 4-bit compute
dtype, the Trainer's `bf16` autocast, `accelerate launch --mixed_precision`) reads it here.
"""

from __future__ import annotations

import importlib.util
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


def autocast_for(dtype: torch.dtype, quantization: str, device: str) -> str:
    """The one autocast decision ("bf16", "fp16" or "no"), for 1 process and N alike.

    On a GPU the compute runs in the weights' dtype, quantized or not: 4-bit layers
    dequantize to it and the LoRA layers (float32, as peft keeps them) are autocast to it.
    On a CPU only unquantized bf16 autocasts: bitsandbytes' CPU kernels are what they are,
    and fp16 matmuls there are emulated.
    """
    if device.startswith("cuda"):
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")
    if dtype == torch.bfloat16 and quantization == "none":
        return "bf16"
    return "no"


@dataclass(frozen=True)
class Precision:
    device: str
    # Weights as loaded; also the compute dtype of 4-bit layers.
    dtype: torch.dtype
    # Autocast for training and validation: "bf16", "fp16" or "no" (`autocast_for`).
    autocast: str
    # `from_pretrained(attn_implementation=)`; None = transformers' default (sdpa).
    attn_implementation: str | None = None

    @property
    def trainer_bf16(self) -> bool:
        """`TrainingArguments(bf16=)`."""
        return self.autocast == "bf16"

    @property
    def trainer_fp16(self) -> bool:
        """`TrainingArguments(fp16=)`."""
        return self.autocast == "fp16"

    @property
    def launcher_mixed_precision(self) -> str:
        """`accelerate launch --mixed_precision`: the same decision as the Trainer's flags.

        The launcher exports it as ACCELERATE_MIXED_PRECISION, which TrainingArguments
        reads only when neither `bf16` nor `fp16` is set; so it must never say more than
        they do. CPU ranks get "no": the Trainer's own `bf16` decides there.
        """
        return self.autocast if self.device.startswith("cuda") else "no"


def precision_for(source: ModelSource, device: str | None = None) -> Precision:
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
        autocast=autocast_for(dtype, source.quantization, device),
        attn_implementation=attention,
    )


def attention_problem(source: ModelSource, device: str | None = None) -> str | None:
    """Why `model.attn_implementation` cannot run on `device` (default: this machine's), or
    None. Only flash_attention_2 has requirements of its own: the flash_attn package, a CUDA
    GPU and 16-bit weights."""
    if source.attn_implementation != "flash_attention_2":
        return None
    key = "model.attn_implementation=flash_attention_2"
    device = device or default_device()
    if not device.startswith("cuda"):
        return f"{key} needs a CUDA GPU, and this machine has {device} only: use sdpa or auto"
    if importlib.util.find_spec("flash_attn") is None:
        return f"{key} needs the flash_attn package (pip install flash-attn): use sdpa or auto"
    if resolve_dtype(source.dtype, device) not in (torch.bfloat16, torch.float16):
        return f"{key} needs 16-bit weights, not model.dtype={source.dtype}: use bfloat16"
    return None
