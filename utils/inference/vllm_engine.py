"""The `vllm` engine: vLLM on a CUDA GPU, the LoRA adapter served unmerged.

The base model loads once into vLLM (`enable_lora`); every request carries a `LoRARequest`
naming the adapter, so the same process could serve several adapters on one base. Prompts
are tokenized here, with the tokenizer the transformers engines use, and texts are cut
from the returned token ids by the same rule (`utils.inference.stops`), so outputs differ
from the continuous engine's only where the GPU's arithmetic does.

vLLM schedules its own batches: `batch_size` is not used. It is an optional extra:
`pip install -r requirements-vllm.txt` on a machine with a CUDA GPU.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from utils.config import ModelSource
from utils.core.errors import UserError
from utils.data.prompts import encode_prompt
from utils.inference import engine as engines
from utils.inference.engine import Engine, Generations, Sampling, Watch
from utils.inference.stops import decoded_text, stops_for

REQUIREMENTS = "requirements-vllm.txt"
# The LoRA ranks vLLM accepts as `max_lora_rank` (vllm/config/lora.py MaxLoRARanks).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# `model.dtype` -> vLLM's dtype (auto: the checkpoint's own).
DTYPES = {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class EngineError(UserError, RuntimeError):
    """The configured engine cannot run here (missing package, no GPU, unsupported option)."""


def vllm_problem(quantization: str = "none") -> str | None:
    """Why `evaluation.engine=vllm` cannot run on this machine; None when it can."""
    if "vllm" not in sys.modules and importlib.util.find_spec("vllm") is None:
        return (
            f"evaluation.engine=vllm needs the vllm package: pip install -r {REQUIREMENTS} "
            "(or set evaluation.engine=continuous)"
        )
    import torch

    if not torch.cuda.is_available():
        return (
            "evaluation.engine=vllm needs a CUDA GPU and this machine has none: "
            "set evaluation.engine=continuous"
        )
    if quantization == "8bit":
        return (
            "evaluation.engine=vllm loads 4-bit (bitsandbytes) or full weights: set "
            "model.quantization to 4bit or none"
        )
    return None


def lora_rank_limit(adapter: Path) -> int:
    """The smallest `max_lora_rank` vLLM accepts that holds the adapter's rank."""
    rank = int(json.loads((adapter / "adapter_config.json").read_text()).get("r", 8))
    for allowed in LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise EngineError(f"LoRA rank {rank} is over vLLM's largest ({LORA_RANKS[-1]})")


class VllmEngine(Engine):
    """A `vllm.LLM` holding the base model, and the adapter as a `LoRARequest` (or None)."""

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        lora: Any,
        stop_at_newline: bool,
        adapter_copy: tempfile.TemporaryDirectory | None = None,
    ) -> None:
        self.llm, self._tokenizer, self.lora = llm, tokenizer, lora
        self.stop_at_newline = stop_at_newline
        self.stops = stops_for(tokenizer, None, stop_at_newline)
        # vLLM reads the adapter's files when a request first names it: they must outlive
        # the caller's copy, so the engine holds its own until it is collected.
        self._adapter_copy = adapter_copy

    @classmethod
    def load(
        cls, source: ModelSource, adapter: Path | None, stop_at_newline: bool = True
    ) -> VllmEngine:
        problem = vllm_problem(source.quantization)
        if problem:
            raise EngineError(problem)
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        from utils.modeling.loader import load_tokenizer
        from utils.modeling.resolve import resolve_model_path
        from utils.zenml_ops.secrets import hf_token

        path = resolve_model_path(source.base_model_id)
        token = hf_token(source.hf_token_secret)
        tokenizer = load_tokenizer(str(adapter or path), source.trust_remote_code, "left", token)
        options: dict[str, Any] = {
            "model": str(path),
            "dtype": DTYPES.get(source.dtype, "auto"),
            "trust_remote_code": source.trust_remote_code,
            "seed": 0,
        }
        if token:
            options["hf_token"] = token
        if source.quantization == "4bit":
            options["quantization"] = "bitsandbytes"
        lora, copy = None, None
        if adapter is not None:
            copy = tempfile.TemporaryDirectory(prefix="vllm-adapter-")
            shutil.copytree(adapter, copy.name, dirs_exist_ok=True)
            options.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank_limit(adapter))
            lora = LoRARequest("adapter", 1, copy.name)
        return cls(LLM(**options), tokenizer, lora, stop_at_newline, copy)

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def _params(self, sampling: Sampling | None, seed: int | None, **common: Any) -> Any:
        from vllm import SamplingParams

        if sampling is None:
            return SamplingParams(temperature=0.0, **common)
        return SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            seed=seed,
            **common,
        )

    def generate(
        self,
        prompts: list[str],
        sampling: Sampling | None = None,
        *,
        batch_size: int,
        max_new_tokens: int,
        scores: bool = False,
        watch: Watch | None = None,
        desc: str = "generate",
        grammars: Mapping[str, str] | None = None,
    ) -> Generations:
        if watch is not None:
            raise ValueError("the vllm engine cannot be steered while it decodes")
        if grammars is not None:
            # Config validation refuses the pair first; this guards direct callers.
            raise ValueError("the vllm engine does not constrain outputs: use continuous")
        unique = engines.rows_to_decode(prompts, sampling)
        scored = scores or sampling is not None
        # logprobs=0: the chosen token's log-probability only (of the raw logits, before
        # temperature), summed in `cumulative_logprob`.
        common = {
            "max_tokens": max_new_tokens,
            "stop_token_ids": self.stops,
            "logprobs": 0 if scored else None,
        }
        seeds: list[int | None] = [None] * len(unique)
        if sampling is not None:
            seeds = list(engines.draw_seeds(sampling.seed, unique))
        params = [self._params(sampling, seed, **common) for seed in seeds]
        requests = [{"prompt_token_ids": encode_prompt(self._tokenizer, p)} for p in unique]
        outputs = self.llm.generate(requests, params, use_tqdm=True, lora_request=self.lora)
        tokens = [list(out.outputs[0].token_ids) for out in outputs]
        texts = [decoded_text(self._tokenizer, ids, self.stop_at_newline) for ids in tokens]
        # Unscored (greedy, no scores asked): vLLM returns no cumulative log-probability.
        logprobs = [out.outputs[0].cumulative_logprob or 0.0 for out in outputs] if scored else None
        return engines.in_prompt_order(prompts, unique, texts, tokens, logprobs, "vllm")
