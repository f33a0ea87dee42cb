"""The `continuous` decoding engine: one KV cache, rows leave as they stop and waiting
prompts take their slots, the prompts' shared prefix computed once."""

from __future__ import annotations

from typing import Any

import torch

from utils.inference.decoding import Decoded, Sampling, TokenPicker, left_padded
from utils.inference.kv_cache import (
    cache_tensors,
    cache_with_prefix,
    common_prefix,
    prefix_kv,
    set_cache_tensors,
)


def _left_pad_kv(t: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - t.shape[-2]
    if missing <= 0:
        return t
    pad = t.new_zeros((*t.shape[:-2], missing, t.shape[-1]))
    return torch.cat([pad, t], dim=-2)


class _Batch:
    """The rows being decoded: their KV cache, attention mask, positions and outputs."""

    def __init__(self) -> None:
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)
        self.rows: list[int] = []  # prompt index of each batch row
        self.next_token = torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, cache: Any, mask: torch.Tensor, rows: list[int], first: torch.Tensor) -> None:
        if self.cache is None or not self.rows:
            self.cache, self.mask, self.rows, self.next_token = cache, mask, rows, first
            return
        # Both parts are left padded; align them on the right (their newest token).
        length = max(self.mask.shape[1], mask.shape[1])
        merged = []
        for (k1, v1), (k2, v2) in zip(cache_tensors(self.cache), cache_tensors(cache), strict=True):
            k = torch.cat([_left_pad_kv(k1, length), _left_pad_kv(k2, length)])
            v = torch.cat([_left_pad_kv(v1, length), _left_pad_kv(v2, length)])
            merged.append((k, v))
        set_cache_tensors(self.cache, merged)
        self.mask = torch.cat(
            [
                torch.nn.functional.pad(self.mask, (length - self.mask.shape[1], 0)),
                torch.nn.functional.pad(mask, (length - mask.shape[1], 0)),
            ]
        )
        self.rows = self.rows + rows
        self.next_token = torch.cat([self.next_token, first])

    def keep(self, keep: torch.Tensor) -> None:
        """Drop finished rows, then the columns no remaining row attends to."""
        mask = self.mask[keep]
        used = mask.any(dim=0).nonzero()
        first_col = int(used[0]) if len(used) else mask.shape[1]
        self.mask = mask[:, first_col:]
        for layer in self.cache.layers:
            layer.select(keep, first_col)
        self.rows = [self.rows[i] for i in keep.tolist()]
        self.next_token = self.next_token[keep]


class _Prefill:
    """Runs prompts through the model into a fresh KV cache.

    The prompts' shared prefix is computed once and its KV copied into each new cache, so
    a refill only runs the part that differs (on ViGGO about half of each prompt). A row's
    layout is then [prefix][left padding][own tokens]: padding is masked wherever it sits,
    and positions count only real tokens, so the outputs are those of unpadded prompts.
    """

    def __init__(self, model: Any, encoded: list[list[int]], pad_id: int, device: Any) -> None:
        self.model, self.pad_id, self.device = model, pad_id, device
        self.prefix = common_prefix(encoded)
        self.prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.prefix:
            self.prefix_kv = prefix_kv(model, torch.tensor([self.prefix], device=device))

    def __call__(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(cache, attention mask, next-token logits) for `prompts`.

        Identical prompts (several sampled candidates of one input) run once; their rows
        get copies of its cache.
        """
        distinct = list(dict.fromkeys(map(tuple, prompts)))
        if len(distinct) == len(prompts):
            return self._run(prompts)
        cache, mask, logits = self._run([list(p) for p in distinct])
        where = {p: i for i, p in enumerate(distinct)}
        take = torch.tensor([where[tuple(p)] for p in prompts], device=self.device)
        for layer in cache.layers:
            layer.select(take, 0)
        return cache, mask[take], logits[take]

    def _run(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        n, p = len(prompts), len(self.prefix)
        ids, own_mask = left_padded([seq[p:] for seq in prompts], self.pad_id)
        ids, own_mask = ids.to(self.device), own_mask.to(self.device)
        # Decode caches append in place (no copy of the whole cache per token).
        cache = cache_with_prefix(self.model, self.prefix_kv, n, growing=True)
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


class Watch:
    """Steers a decode from outside: `order` sorts the waiting rows (lower first; `length`
    is the row's prompt length), `finished` is told each row's tokens and mean
    log-probability as it stops, and `wanted` says whether a waiting row should still start."""

    def order(self, row: int, length: int) -> tuple[int, ...]:
        # Longest prompts first, so that a refill prefills prompts of similar length together.
        return (-length,)

    def finished(self, row: int, tokens: list[int], mean_logprob: float) -> None:
        pass

    def wanted(self, row: int) -> bool:
        return True


def decode_continuous(
    model: Any,
    encoded: list[list[int]],
    batch_size: int,
    max_new_tokens: int,
    stops: list[int],
    pad_id: int,
    bar: Any,
    sampling: Sampling | None = None,
    scores: bool = False,
    watch: Watch | None = None,
) -> Decoded:
    """Decode every encoded prompt; `watch` (optional) orders the waiting prompts, sees each
    finished row and may drop waiting rows that are no longer needed (they come back with
    no tokens)."""
    device = next(model.parameters()).device
    stop_ids = torch.tensor(stops, device=device)
    pick = TokenPicker(sampling, device, scores)
    prefill = _Prefill(model, encoded, pad_id, device)
    order = (watch or Watch()).order
    pending = sorted(range(len(encoded)), key=lambda i: order(i, len(encoded[i])))
    out_tokens: list[list[int]] = [[] for _ in encoded]
    logprobs = [0.0] * len(encoded)
    batch = _Batch()
    # Refill only once a quarter of the slots are free: a prefill has a fixed cost.
    refill_at = max(1, batch_size // 4)
    while pending or len(batch):
        free = batch_size - len(batch)
        if watch is not None:
            kept = [i for i in pending if watch.wanted(i)]
            bar.update(len(pending) - len(kept))
            pending = kept
        if not pending and not len(batch):
            break
        if pending and (free >= refill_at or not len(batch)):
            rows, pending = pending[:free], pending[free:]
            cache, mask, logits = prefill([encoded[i] for i in rows])
            first, chosen = pick(logits)
            fresh = range(len(batch), len(batch) + len(rows))
            batch.add(cache, mask, rows, first)
        else:
            fresh = range(len(batch))
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch), 1))], dim=1)
            logits = model(
                input_ids=batch.next_token[:, None],
                attention_mask=batch.mask,
                position_ids=(batch.mask.sum(-1, keepdim=True) - 1),
                cache=batch.cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits
            batch.next_token, chosen = pick(logits[:, -1])
        # `next_token` holds each row's newest output token, not yet fed to the model; after
        # a refill only the new rows have one.
        tokens = batch.next_token.tolist()
        token_scores = chosen.tolist()
        for n, slot in enumerate(fresh):
            out_tokens[batch.rows[slot]].append(tokens[slot])
            logprobs[batch.rows[slot]] += token_scores[n]
        full = [len(out_tokens[row]) >= max_new_tokens for row in batch.rows]
        finished = torch.isin(batch.next_token, stop_ids) | torch.tensor(full, device=device)
        if finished.any():
            bar.update(int(finished.sum()))
            if watch is not None:
                for slot in finished.nonzero().flatten().tolist():
                    row = batch.rows[slot]
                    watch.finished(row, out_tokens[row], logprobs[row] / len(out_tokens[row]))
            batch.keep((~finished).nonzero().flatten())
    return Decoded(out_tokens, logprobs if scores else None)
