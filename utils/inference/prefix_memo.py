"""The K/V of a prompt prefix kept from one decode to the next.

Every prompt of a model version starts with the same chat template and system prompt (on
SmolLM2 with the ViGGO prompt, the first 20 tokens of a 35-95-token prompt). One decode
computes its prompts' shared prefix once; a service decodes request after request, so the
memo keeps that prefix's K/V between decodes and computes only the tokens past the part it
already holds.
"""

from __future__ import annotations

from typing import Any

import torch

from utils.modeling.kv_cache import KV, cache_tensors, prefix_kv


def _shared(a: tuple[int, ...], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixMemo:
    """One prefix's per-layer K/V (batch 1), replaced by each decode's own prefix. At most
    `max_tokens` are kept: a prefix is a template, not a whole prompt."""

    def __init__(self, max_tokens: int = 1024) -> None:
        self.max_tokens = max_tokens
        self._tokens: tuple[int, ...] = ()
        self._kv: KV = []

    def kv(self, model: Any, prefix: list[int], device: Any) -> KV:
        """K/V of `prefix`, computed only past the tokens the memo shares with it."""
        held = _shared(self._tokens, prefix)
        if held == len(prefix):  # all of it held: keep the longer prefix for the next
            return [(k[:, :, :held], v[:, :, :held]) for k, v in self._kv]
        if held == 0:
            kv = prefix_kv(model, torch.tensor([prefix], device=device))
        else:
            kv = [(k[:, :, :held], v[:, :, :held]) for k, v in self._kv]
            kv = _extended(model, kv, prefix[held:], device)
        if len(prefix) <= self.max_tokens:
            self._tokens, self._kv = tuple(prefix), kv
        return kv

    def clear(self) -> None:
        self._tokens, self._kv = (), []


def _extended(model: Any, kv: KV, tokens: list[int], device: Any) -> KV:
    """`kv` (of the first tokens of a sequence) with `tokens` run on top."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    for layer, (k, v) in zip(cache.layers, kv, strict=False):
        # Copies: the cache appends to them, the memo's tensors stay as they are.
        layer.update(k.clone(), v.clone())
    held = kv[0][0].shape[-2]
    positions = torch.arange(held, held + len(tokens), device=device)[None]
    model(
        input_ids=torch.tensor([tokens], device=device),
        position_ids=positions,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return cache_tensors(cache)
