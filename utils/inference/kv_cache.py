"""A prompt prefix computed once and shared by a batch, through the model's KV cache.

Every ViGGO row starts with the same chat template and system prompt (~20 of ~93 tokens).
Evaluation prefills that prefix once for all prompts; training runs it once per batch and
lets each row's own tokens attend to it through an expanded KV cache. Autograd flows through
the cache into the prefix pass, so loss and gradients equal those of the full rows.
"""

from __future__ import annotations

import functools
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


def cache_with_prefix(model: Any, kv: KV, rows: int, growing: bool = False) -> Any:
    """A fresh cache whose every row starts with the prefix K/V.

    The expansion is a view (training: gradients flow back to the prefix). `growing` gives a
    decode cache of `GrowingLayer`s instead, with the prefix copied into its buffers.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    if growing:
        cache.layers = [growing_layer_class()() for _ in cache.layers]
    for layer, (k, v) in zip(cache.layers, kv, strict=False):
        layer.update(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
    return cache


@functools.cache
def growing_layer_class() -> type:
    """`GrowingLayer` (built on first use: transformers is imported lazily)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A decode cache layer whose K/V live in buffers with spare columns.

        `DynamicLayer` concatenates the whole cache with each new token, copying all of it
        every decode step (~10% of a CPU decode step at batch 64). Here a step writes one
        column in place; the buffers grow by `SPARE` columns when full, and dropping rows or
        leading columns (`select`) copies once and keeps the spare room. Inference only:
        in-place writes into tensors autograd saved would break backpropagation.
        """

        SPARE = 64

        def __init__(self) -> None:
            self._k: torch.Tensor | None = None
            self._v: torch.Tensor | None = None
            self._start = self._end = 0
            super().__init__()

        @property
        def keys(self) -> torch.Tensor | None:
            return None if self._k is None else self._k[..., self._start : self._end, :]

        @keys.setter
        def keys(self, t: torch.Tensor | None) -> None:
            self._k = t if t is not None and t.dim() == 4 else None
            self._start, self._end = 0, (0 if self._k is None else self._k.shape[-2])

        @property
        def values(self) -> torch.Tensor | None:
            return None if self._v is None else self._v[..., self._start : self._end, :]

        @values.setter
        def values(self, t: torch.Tensor | None) -> None:
            # Set after `keys`, with the same length (as every caller here does).
            self._v = t if t is not None and t.dim() == 4 else None

        def get_seq_length(self) -> int:
            return self._end - self._start

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            new = key_states.shape[-2]
            if self._k is None or self._end + new > self._k.shape[-2]:
                self._grow(key_states, value_states, new)
            self._k[..., self._end : self._end + new, :] = key_states
            self._v[..., self._end : self._end + new, :] = value_states
            self._end += new
            return self.keys, self.values

        def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, new: int) -> None:
            live = self._end - self._start
            shape = (*key_states.shape[:-2], live + new + self.SPARE, key_states.shape[-1])
            k, v = key_states.new_empty(shape), value_states.new_empty(shape)
            if live:
                k[..., :live, :] = self.keys
                v[..., :live, :] = self.values
            self._k, self._v, self._start, self._end = k, v, 0, live

        def select(self, rows: torch.Tensor, first_col: int) -> None:
            """Keep only `rows`, and only the columns from `first_col` on."""
            self._k, self._v = self._k[rows], self._v[rows]
            self._start += first_col

    return GrowingLayer


def attach_prefix_cache(model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """Replace a batch's `prefix_ids` (from `CompletionCollator(share_prefix=True)`) by the
    KV cache of that prefix, ready for `model(**batch)`."""
    batch = dict(batch)
    prefix = batch.pop("prefix_ids")
    rows = batch["input_ids"].shape[0]
    batch["cache"] = cache_with_prefix(model, prefix_kv(model, prefix), rows)
    batch["use_cache"] = True
    return batch
