"""A refill's prefill: waiting prompts run through the model into a fresh KV cache that the
continuous engine (`utils.inference.continuous`) merges into its batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from utils.inference.growing_cache import growing_cache
from utils.inference.memory_budget import UNBOUNDED_MEMO_BYTES
from utils.inference.prefix_memo import PrefixMemo
from utils.inference.token_batches import left_padded
from utils.modeling.kv_cache import cache_tensors, common_prefix, prefix_kv


def left_pad_kv(t: torch.Tensor, length: int) -> torch.Tensor:
    """K or V (..., columns, dim) padded on the left to `length` columns."""
    missing = length - t.shape[-2]
    if missing <= 0:
        return t
    pad = t.new_zeros((*t.shape[:-2], missing, t.shape[-1]))
    return torch.cat([pad, t], dim=-2)


class Prefill:
    """Runs prompts through the model into a fresh KV cache.

    The prompts' shared prefix is computed once and its KV copied into each new cache, so
    a refill only runs the part that differs (on ViGGO with SmolLM2 the chat template and
    system prompt are the first 20 tokens of a 35-95-token prompt). A row's layout is then
    [prefix][left padding][own tokens]: padding is masked wherever it sits, and positions
    count only real tokens, so the outputs are those of unpadded prompts.

    With `reuse`, a prompt that comes back in a later refill (the next wave of sampled
    candidates of one input) takes its KV and logits from its first prefill instead of
    running again; `keep_only` drops what no waiting row needs, and at most `memo_bytes`
    are held (what the memory budget leaves beside the batch).
    """

    def __init__(
        self,
        model: Any,
        encoded: list[list[int]],
        pad_id: int,
        device: Any,
        reuse: bool = False,
        memo_bytes: int = UNBOUNDED_MEMO_BYTES,
        max_columns: int | None = None,
        prefix_memo: PrefixMemo | None = None,
    ) -> None:
        self.model, self.pad_id, self.device = model, pad_id, device
        self.memo_bytes, self.max_columns = memo_bytes, max_columns
        self.prefix = common_prefix(encoded)
        self.prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.prefix and prefix_memo is not None:
            self.prefix_kv = prefix_memo.kv(model, self.prefix, device)
        elif self.prefix:
            self.prefix_kv = prefix_kv(model, torch.tensor([self.prefix], device=device))
        self.memo: dict[tuple[int, ...], Prefilled] | None = {} if reuse else None

    def __call__(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(cache, attention mask, next-token logits) for `prompts`.

        Identical prompts (several sampled candidates of one input) run once; their rows
        get copies of its cache.
        """
        self._fit_prefix(prompts)
        distinct = list(dict.fromkeys(map(tuple, prompts)))
        if self.memo is not None:
            cache, mask, logits = self._from_memo(distinct)
        elif len(distinct) == len(prompts):
            return self._run(prompts)
        else:
            cache, mask, logits = self._run([list(p) for p in distinct])
        where = {p: i for i, p in enumerate(distinct)}
        take = torch.tensor([where[tuple(p)] for p in prompts], device=self.device)
        for layer in cache.layers:
            layer.select(take, 0)
        return cache, mask[take], logits[take]

    def _fit_prefix(self, prompts: list[list[int]]) -> None:
        """Shorten the prefix to what `prompts` share with it, each keeping a token of its
        own: prompts that join a running decode (a served request) need not share all of
        the first prompts' prefix. The K/V of a prefix's first tokens is theirs alone."""
        keep = len(self.prefix)
        for p in prompts:
            keep = min(keep, len(p) - 1)
            while keep and p[:keep] != self.prefix[:keep]:
                keep -= 1
        if keep < len(self.prefix):
            self.prefix = self.prefix[:keep]
            kv = self.prefix_kv if keep else []
            self.prefix_kv = [(k[:, :, :keep], v[:, :, :keep]) for k, v in kv]

    def keep_only(self, prompts: set[tuple[int, ...]]) -> None:
        """Forget the prefills of prompts that no waiting row has."""
        if self.memo is not None:
            for p in [p for p in self.memo if p not in prompts]:
                del self.memo[p]

    def _from_memo(self, distinct: list[tuple[int, ...]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        assert self.memo is not None
        new = [p for p in distinct if p not in self.memo]
        fresh: dict[tuple[int, ...], Prefilled] = {}
        if new:
            cache, mask, logits = self._run([list(p) for p in new])
            kv = cache_tensors(cache)
            for i, p in enumerate(new):
                # Each row without the leading columns only other rows needed.
                start = int(mask[i].nonzero()[0]) if mask[i].any() else mask.shape[1]
                fresh[p] = Prefilled(
                    [(k[i : i + 1, :, start:], v[i : i + 1, :, start:]) for k, v in kv],
                    mask[i : i + 1, start:],
                    logits[i : i + 1],
                )
        parts = [fresh.get(p) or self.memo[p] for p in distinct]
        used = sum(e.nbytes for e in self.memo.values())
        for p, entry in fresh.items():
            if used + entry.nbytes <= self.memo_bytes:
                # Copies: views would keep the whole refill's cache alive.
                self.memo[p] = entry.copied()
                used += entry.nbytes
        return self._assemble(parts)

    def _assemble(self, parts: list[Prefilled]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        length = max(e.mask.shape[1] for e in parts)
        kv = [
            (
                torch.cat([left_pad_kv(e.kv[layer][0], length) for e in parts]),
                torch.cat([left_pad_kv(e.kv[layer][1], length) for e in parts]),
            )
            for layer in range(len(parts[0].kv))
        ]
        cache = growing_cache(self.model, [], len(parts), self.max_columns)
        for layer, (k, v) in zip(cache.layers, kv, strict=True):
            layer.update(k, v)
        mask = torch.cat(
            [torch.nn.functional.pad(e.mask, (length - e.mask.shape[1], 0)) for e in parts]
        )
        return cache, mask, torch.cat([e.logits for e in parts])

    def _run(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        n, p = len(prompts), len(self.prefix)
        ids, own_mask = left_padded([seq[p:] for seq in prompts], self.pad_id)
        ids, own_mask = ids.to(self.device), own_mask.to(self.device)
        # Decode caches append in place (no copy of the whole cache per token).
        cache = growing_cache(self.model, self.prefix_kv, n, self.max_columns)
        mask = torch.cat([own_mask.new_ones((n, p)), own_mask], dim=1)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)[:, p:]
        logits = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        return cache, mask, logits[:, -1]


@dataclass
class Prefilled:
    """One prompt's prefill: per-layer K/V (1, heads, length, dim), mask and last logits."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor
    logits: torch.Tensor

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.kv) + self.logits.nbytes

    def copied(self) -> Prefilled:
        kv = [(k.clone(), v.clone()) for k, v in self.kv]
        return Prefilled(kv, self.mask.clone(), self.logits.clone())
