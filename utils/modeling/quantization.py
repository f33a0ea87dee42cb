"""bitsandbytes quantization: the `BitsAndBytesConfig` for `model.quantization`, and which
layer shapes its CPU kernels can run."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from utils.modeling.precision import default_device
from utils.modeling.resolve import ModelLoadError


def quantization_config(quantization: str, compute_dtype: torch.dtype, fsdp: bool = False) -> Any:
    """`fsdp`: the weights will be sharded (FSDP-QLoRA). FSDP shards floating-point tensors
    only; accelerate leaves 4-bit weights in bitsandbytes' default uint8 storage unsharded,
    on every rank, with a warning. Stored as the compute dtype (the packed bytes are the
    same) they shard like every other weight."""
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
            **({"bnb_4bit_quant_storage": compute_dtype} if fsdp else {}),
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"unknown quantization {quantization!r}; valid: none, 4bit, 8bit")


def fsdp_4bit_problem(compute_dtype: torch.dtype) -> str | None:
    """Why 4-bit weights would not shard under FSDP with the config this project builds, or
    None: their storage dtype must be a floating one (`quantization_config(fsdp=True)`)."""
    storage = quantization_config("4bit", compute_dtype, fsdp=True).bnb_4bit_quant_storage
    if isinstance(storage, str):
        storage = getattr(torch, storage)
    if storage.is_floating_point:
        return None
    return (
        f"model.quantization=4bit with accelerate.strategy=fsdp needs bnb_4bit_quant_storage "
        f"to be a floating dtype, not {storage}: FSDP would leave the 4-bit weights unsharded"
    )


# bitsandbytes (0.50) repacks a 4-bit layer for its AVX512-BF16 CPU kernels the first time it
# runs in inference mode (evaluation, the Trainer's eval loss). The repacking
# (`functional._convert_weight_packed_for_cpu`) needs the input size to be a multiple of the
# quantization block and the output size a multiple of its row block; any other shape fails
# with a reshape error. AVX2 CPUs and GPUs take other kernels and take any shape.
BNB_4BIT_BLOCKSIZE = 64
BNB_CPU_PACK_ROWS = 32


def bnb_repacks_4bit_on_cpu() -> bool:
    """True on CPUs where bitsandbytes repacks 4-bit weights (AVX512-BF16)."""
    try:
        from bitsandbytes.functional import has_avx512bf16
    except Exception:  # bitsandbytes missing or without its CPU library: nothing repacks
        return False
    return bool(has_avx512bf16())


def cpu_4bit_kernel_note() -> str | None:
    """What a 4-bit model on this CPU runs on, when bitsandbytes' optional kernel is missing
    (bitsandbytes' own warning about it is dropped: `utils.quiet_logs`)."""
    if not bnb_repacks_4bit_on_cpu() or importlib.util.find_spec("kernels") is not None:
        return None
    return (
        "4-bit layers on this CPU use bitsandbytes' built-in kernels (its optional faster one "
        "needs the `kernels` package and the Hugging Face hub)"
    )


def _quantized_linears(model: Any) -> list[tuple[str, Any]]:
    """The linear layers bitsandbytes quantizes (or has quantized) in `model`."""
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        Linear4bit = ()
    if any(isinstance(m, Linear4bit) for m in model.modules()):
        return [(n, m) for n, m in model.named_modules() if isinstance(m, Linear4bit)]
    # Not loaded quantized yet (a meta-device model): transformers' own skip list.
    from transformers.quantizers.base import get_keys_to_not_convert

    skip = set(get_keys_to_not_convert(model))
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and not any(n == k or n.startswith(k + ".") for k in skip)
    ]


def cpu_4bit_problem(model: Any, repacks: bool | None = None) -> str | None:
    """Why bitsandbytes cannot run `model` in 4 bit on this CPU, or None when it can."""
    if not (bnb_repacks_4bit_on_cpu() if repacks is None else repacks):
        return None
    bad = []
    for name, m in _quantized_linears(model):
        block = getattr(m.weight, "blocksize", None) or BNB_4BIT_BLOCKSIZE
        if m.in_features % block or m.out_features % BNB_CPU_PACK_ROWS:
            bad.append(f"{name} ({m.in_features} -> {m.out_features})")
    if not bad:
        return None
    more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
    return (
        "model.quantization=4bit cannot run on this CPU: bitsandbytes' AVX512-BF16 kernels "
        f"need each quantized layer's input size to be a multiple of {BNB_4BIT_BLOCKSIZE} and "
        f"its output size a multiple of {BNB_CPU_PACK_ROWS}, and layer {bad[0]}{more} is not; "
        "use model.quantization 8bit or none, or a GPU"
    )


def check_quantizable(
    path: str,
    quantization: str,
    trust_remote_code: bool = False,
    token: str | None = None,
    device: str | None = None,
    model: Any = None,
) -> None:
    """Before any step runs: bitsandbytes is there, and the layer shapes (from config.json,
    no weights; or `model`, on the meta device) suit the quantization on the device the
    steps will use."""
    if quantization == "none":
        return
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(
            f"model.quantization={quantization} needs bitsandbytes, which is not installed: "
            "pip install bitsandbytes, or set model.quantization: none"
        )
    if quantization != "4bit" or (device or default_device()) == "cuda":
        return
    if not bnb_repacks_4bit_on_cpu():
        return
    if model is None:
        from utils.modeling.architecture import meta_model_of

        model = meta_model_of(path, trust_remote_code, token)
    problem = cpu_4bit_problem(model, repacks=True)
    if problem:
        raise ModelLoadError(f"{path}: {problem}")
