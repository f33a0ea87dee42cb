"""A prompt prefix computed once and shared by a batch, through the model's KV cache.

Every ViGGO row starts with the same chat template and system prompt (~20 of ~93 tokens).
Evaluation prefills that prefix once for all prompts; training runs it once per batch and
lets each row's own tokens attend to it through an expanded KV cache. Autograd flows through
the cache into the prefix pass, so loss and gradients equal those of the full rows.
"""

from __future__ import annotations

from typing import Any

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]


def supports_plain_cache(model: Any) -> bool:
    """True when every layer keeps plain K/V tensors that can be expanded and spliced.

    Sliding-window or hybrid caches drop or transform old entries: callers fall back to
    computing full rows for those models.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:  # a config the cache cannot read: treat it as not plain
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


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


def set_cache_tensors(cache: Any, tensors: KV) -> None:
    for layer, (k, v) in zip(cache.layers, tensors, strict=True):
        layer.keys, layer.values = k, v


def prefix_kv(model: Any, prefix: torch.Tensor) -> KV:
    """Per-layer K/V of a (1, P) prefix. Under autograd they stay attached to the graph."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    # One logit is the least the forward pass computes; it is not used.
    model(input_ids=prefix, cache=cache, use_cache=True, logits_to_keep=1)
    return cache_tensors(cache)


def cache_with_prefix(model: Any, kv: KV, rows: int, copy: bool = False) -> Any:
    """A fresh cache whose every row starts with the prefix K/V.

    The expansion is a view; `copy` materializes it for caches that are later edited in
    place (the decode loop slices and concatenates rows).
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    for layer, (k, v) in zip(cache.layers, kv, strict=False):
        k, v = k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)
        layer.update(k.contiguous() if copy else k, v.contiguous() if copy else v)
    return cache


def attach_prefix_cache(model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """Replace a batch's `prefix_ids` (from `CompletionCollator(share_prefix=True)`) by the
    KV cache of that prefix, ready for `model(**batch)`."""
    batch = dict(batch)
    prefix = batch.pop("prefix_ids")
    rows = batch["input_ids"].shape[0]
    batch["cache"] = cache_with_prefix(model, prefix_kv(model, prefix), rows)
    batch["use_cache"] = True
    return batch
