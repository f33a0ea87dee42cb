"""A model's KV cache as training and inference share it: whether it can be spliced, and a
prompt prefix computed once whose K/V every row of a batch starts from.

Every ViGGO row starts with the same chat template and system prompt (~20 of ~93 tokens).
Evaluation prefills that prefix once for all prompts (`utils.inference.growing_cache`);
training runs it once per batch (`utils.training.prefix_cache`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

KV = list[tuple[torch.Tensor, torch.Tensor]]


def plain_cache_problem(model: Any) -> str | None:
    """Why the model's KV cache cannot be expanded and spliced, or None when every layer
    keeps plain K/V tensors.

    Sliding-window or hybrid caches drop or transform old entries: callers fall back to
    computing full rows for those models, and say so (`plain_cache_fallback`).
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except (KeyError, ValueError) as e:
        # What a config can legitimately cause: a layer type the cache has no class for
        # (KeyError), or several text configs to choose from (ValueError). Any other error
        # is a bug, and must not pass for a slow path.
        logger.warning("%s: DynamicCache cannot read the config: %r", model_type(model), e)
        return f"cache config unreadable ({type(e).__name__})"
    if not layers:
        return "no cache layers"
    odd = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if not odd:
        return None
    if odd == ["DynamicSlidingWindowLayer"]:
        return "sliding-window cache"
    return f"non-plain cache ({', '.join(odd)})"


def supports_plain_cache(model: Any) -> bool:
    """True when every layer keeps plain K/V tensors that can be expanded and spliced."""
    return plain_cache_problem(model) is None


def model_type(model: Any) -> str:
    """The config's `model_type` (`mistral`, `gemma2`, ...), also through a PEFT wrapper."""
    return str(getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__)


def plain_cache_fallback(model: Any, fast_path: str, fallback: str) -> str | None:
    """`plain_cache_problem`, and when there is one the log line that says `fast_path` gave
    way to `fallback` for this model (same outputs, only slower). A warning, as when
    training's prefix sharing is off: a configured fast path is not taken."""
    problem = plain_cache_problem(model)
    if problem is not None:
        logger.warning(
            "%s: %s, so %s is off; %s instead", model_type(model), problem, fast_path, fallback
        )
    return problem


def common_prefix(seqs: list[list[int]], limit: int | None = None) -> list[int]:
    """The leading tokens all `seqs` share, leaving each sequence at least one of its own;
    never longer than `limit`."""
    n, end = 0, min(len(s) for s in seqs) - 1
    if limit is not None:
        end = min(end, limit)
    while n < end and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return seqs[0][:n]


def cache_tensors(cache: Any) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def prefix_kv(model: Any, prefix: torch.Tensor) -> KV:
    """Per-layer K/V of a (1, P) prefix. Under autograd they stay attached to the graph."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    # One logit is the least the forward pass computes; it is not used.
    model(input_ids=prefix, cache=cache, use_cache=True, logits_to_keep=1)
    return cache_tensors(cache)


def cache_with_prefix(model: Any, kv: KV, rows: int, layer_class: type | None = None) -> Any:
    """A fresh cache whose every row starts with the prefix K/V.

    The expansion is a view (training: gradients flow back to the prefix). With
    `layer_class`, the cache's layers are of that class instead of transformers' own.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    if layer_class is not None:
        cache.layers = [layer_class() for _ in cache.layers]
    for layer, (k, v) in zip(cache.layers, kv, strict=False):
        layer.update(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
    return cache
