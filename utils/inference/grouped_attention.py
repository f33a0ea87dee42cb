"""Eager attention without copying the KV cache for each query head (inference).

transformers' eager attention repeats every K/V head for each query head of its group
(`repeat_kv`: SmolLM2 has 9 query heads on 3 K/V heads) before its two matmuls, so each
decode step copies the whole cache three times over and the matmuls then read the copies.
At batch 128 that copy and the attention matmuls over it were ~30% of a CPU decode step
(profiled). Here the query heads of a group are stacked as rows of one matrix against
their shared K/V head: the same dot products, computed from the cache where it lies.

Registered with transformers under `ATTENTION`; `grouped_attention(model)` switches an
eager model to it for the length of a decode (the precision policy picks eager for bf16
on a CPU, where PyTorch's SDPA kernel is slow).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch

ATTENTION = "grouped_eager"


def grouped_eager_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' `eager_attention_forward` with the same operations in the same order
    and dtypes, the K/V heads shared instead of repeated (no dropout: inference only).

    16-bit only: there the matmuls give the same bits for a group's stacked rows as for
    one row (checked, `tests/unit/test_grouped_attention.py`). A float32 matmul of one
    query row takes another kernel (a matrix-vector product, summed in another order)
    than of several, so float32 keeps transformers' own function.
    """
    if query.dtype == torch.float32:
        from transformers.models.llama.modeling_llama import eager_attention_forward

        return eager_attention_forward(
            module, query, key, value, attention_mask, scaling, dropout, **kwargs
        )
    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[-2]
    group = heads // kv_heads
    # Query head h reads K/V head h // group (repeat_kv's layout), so a group's heads are
    # consecutive: (batch, kv_heads, group * q_len, dim), a view when q_len is 1.
    grouped = query.reshape(batch, kv_heads, group * q_len, dim)
    weights = torch.matmul(grouped, key.transpose(2, 3)).view(batch, heads, q_len, kv_len)
    weights = weights * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights.view(batch, kv_heads, group * q_len, kv_len), value)
    out = out.view(batch, heads, q_len, dim).transpose(1, 2).contiguous()
    return out, weights


@functools.cache
def register() -> str:
    """Make `ATTENTION` known to transformers (once): the attention function, and eager's
    mask (the same additive float mask)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(ATTENTION, grouped_eager_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, eager_mask)
    return ATTENTION


def _configs(model: Any) -> list[Any]:
    """Every config whose `_attn_implementation` a module of `model` reads."""
    seen: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            seen.setdefault(id(config), config)
    return list(seen.values())


@contextlib.contextmanager
def grouped_attention(model: Any) -> Iterator[bool]:
    """Within the block, a model on eager attention uses `grouped_eager_attention`
    (yields whether it switched); any other attention is left alone."""
    configs = [c for c in _configs(model) if c._attn_implementation == "eager"]
    if not configs:
        yield False
        return
    name = register()
    for config in configs:
        config._attn_implementation = name
    try:
        yield True
    finally:
        for config in configs:
            config._attn_implementation = "eager"
