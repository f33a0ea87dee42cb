"""The `continuous` decoding engine: one KV cache, rows leave as they stop and waiting
prompts take their slots, the prompts' shared prefix computed once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from utils.core.freed_memory import return_free_heap
from utils.inference.draft_index import DraftIndex
from utils.inference.engine import Sampling
from utils.inference.grouped_attention import grouped_attention
from utils.inference.growing_cache import growing_cache
from utils.inference.memory_budget import UNBOUNDED_MEMO_BYTES
from utils.inference.one_row import one_row_kernel
from utils.inference.prefix_memo import PrefixMemo
from utils.inference.speculative import guess_length, verify_step
from utils.inference.token_batches import Decoded, left_padded
from utils.inference.token_picker import TokenPicker
from utils.modeling.kv_cache import cache_tensors, common_prefix, prefix_kv

if TYPE_CHECKING:
    from utils.inference.grammar_mask import RowGrammars


# A refill of at least this many rows hands the heap's free pages back to the system after
# its prefill. A large prefill frees hundreds of MB of activations that glibc keeps on its heap
# and later allocations do not always reuse: the base model's full-split evaluation peaked at
# 2.72-2.91 GB without and 2.58-2.63 GB with it, in the same time (2-core Zen 3, float32, two
# runs each). A served request's refill of a few rows skips it.
TRIM_AFTER_ROWS = 16


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
        # Layer by layer, each layer's old K/V and the refill's freed once merged: merging
        # all layers before dropping any held the batch's whole cache twice (~1 GB more at
        # 128 float32 rows of SmolLM2-135M).
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            k = torch.cat([_left_pad_kv(mine.keys, length), _left_pad_kv(theirs.keys, length)])
            v = torch.cat([_left_pad_kv(mine.values, length), _left_pad_kv(theirs.values, length)])
            mine.keys, mine.values = k, v
            theirs.keys = theirs.values = None
        self.mask = torch.cat(
            [
                torch.nn.functional.pad(self.mask, (length - self.mask.shape[1], 0)),
                torch.nn.functional.pad(mask, (length - mask.shape[1], 0)),
            ]
        )
        self.rows = self.rows + rows
        self.next_token = torch.cat([self.next_token, first])

    def drop(self, finished: list[int]) -> None:
        """Drop the rows in slots `finished`, then the columns no remaining row attends to.

        The last running rows move into the freed slots, so the cache copies only the rows
        that move: copying every kept row (an index select) cost a whole cache copy each
        time a row finished, ~9% of a float32 evaluation. Rows are independent, so their
        order in the batch does not change their outputs.
        """
        gone = set(finished)
        rows = len(self.rows) - len(gone)
        holes = [slot for slot in sorted(gone) if slot < rows]
        movers = [slot for slot in range(rows, len(self.rows)) if slot not in gone]
        moves = list(zip(movers, holes, strict=True))
        order = list(range(rows))
        for source, target in moves:
            order[target] = source
        keep = torch.tensor(order, dtype=torch.long, device=self.next_token.device)
        mask = self.mask[keep]
        used = mask.any(dim=0).nonzero()
        first_col = int(used[0]) if len(used) else mask.shape[1]
        self.mask = mask[:, first_col:]
        for layer in self.cache.layers:
            layer.compact(moves, rows, first_col)
        self.rows = [self.rows[i] for i in order]
        self.next_token = self.next_token[keep]


def _plain_step(
    model: Any, batch: _Batch, pick: TokenPicker, kernel: str
) -> tuple[list[list[int]], list[float]]:
    """One decode step of every row: its next token and that token's log-probability."""
    batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch), 1))], dim=1)
    with one_row_kernel(kernel, len(batch)):
        logits = model(
            input_ids=batch.next_token[:, None],
            attention_mask=batch.mask,
            position_ids=(batch.mask.sum(-1, keepdim=True) - 1),
            cache=batch.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
    batch.next_token, chosen = pick(logits[:, -1], batch.rows)
    return [[t] for t in batch.next_token.tolist()], chosen.tolist()


class _Prefill:
    """Runs prompts through the model into a fresh KV cache.

    The prompts' shared prefix is computed once and its KV copied into each new cache, so
    a refill only runs the part that differs (on ViGGO about half of each prompt). A row's
    layout is then [prefix][left padding][own tokens]: padding is masked wherever it sits,
    and positions count only real tokens, so the outputs are those of unpadded prompts.

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
        self.memo: dict[tuple[int, ...], _Prefilled] | None = {} if reuse else None

    def __call__(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(cache, attention mask, next-token logits) for `prompts`.

        Identical prompts (several sampled candidates of one input) run once; their rows
        get copies of its cache.
        """
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

    def keep_only(self, prompts: set[tuple[int, ...]]) -> None:
        """Forget the prefills of prompts that no waiting row has."""
        if self.memo is not None:
            for p in [p for p in self.memo if p not in prompts]:
                del self.memo[p]

    def _from_memo(self, distinct: list[tuple[int, ...]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        assert self.memo is not None
        new = [p for p in distinct if p not in self.memo]
        fresh: dict[tuple[int, ...], _Prefilled] = {}
        if new:
            cache, mask, logits = self._run([list(p) for p in new])
            kv = cache_tensors(cache)
            for i, p in enumerate(new):
                # Each row without the leading columns only other rows needed.
                start = int(mask[i].nonzero()[0]) if mask[i].any() else mask.shape[1]
                fresh[p] = _Prefilled(
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

    def _assemble(self, parts: list[_Prefilled]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        length = max(e.mask.shape[1] for e in parts)
        kv = [
            (
                torch.cat([_left_pad_kv(e.kv[layer][0], length) for e in parts]),
                torch.cat([_left_pad_kv(e.kv[layer][1], length) for e in parts]),
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
class _Prefilled:
    """One prompt's prefill: per-layer K/V (1, heads, length, dim), mask and last logits."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor
    logits: torch.Tensor

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.kv) + self.logits.nbytes

    def copied(self) -> _Prefilled:
        kv = [(k.clone(), v.clone()) for k, v in self.kv]
        return _Prefilled(kv, self.mask.clone(), self.logits.clone())


class TokenWatch:
    """Steers a decode (see `utils.inference.engine.Watch`), told each finished row's token
    ids rather than its text."""

    def order(self, row: int, length: int) -> tuple[int, ...]:
        return (-length,)

    def finished(self, row: int, tokens: list[int], mean_logprob: float) -> None:
        pass

    def wanted(self, row: int) -> bool:
        return True

    def greedy(self, row: int) -> bool:
        return False


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
    watch: TokenWatch | None = None,
    seeds: list[int | None] | None = None,
    kernel: str = "onednn",
    memo_bytes: int = UNBOUNDED_MEMO_BYTES,
    prefix_memo: PrefixMemo | None = None,
    grammars: RowGrammars | None = None,
    drafts: DraftIndex | None = None,
    max_guess: int = 0,
) -> Decoded:
    """Decode every encoded prompt; `watch` (optional) orders the waiting prompts, sees each
    finished row and may drop rows that are no longer needed, waiting or running (they come
    back with no tokens). Sampled rows are seeded by `seeds` (one per encoded prompt; None:
    that row is greedy). `kernel`: the matmul of one-row decode steps
    (`utils.inference.one_row`); `memo_bytes`: the most the prefill memo of repeated prompts
    keeps (`utils.inference.memory_budget`); `prefix_memo`: the shared prompt prefix's K/V
    kept between decodes (`utils.inference.prefix_memo`); `grammars`: what each encoded
    prompt's tokens must follow (`utils.inference.grammar_mask`); `drafts`, `max_guess`:
    steps of few rows guess up to `max_guess` tokens per row from `drafts` and keep those
    the model picks itself (`utils.inference.speculative`; not with `grammars`), and the
    finished outputs teach `drafts`."""
    with grouped_attention(model):
        device = next(model.parameters()).device
        stop_ids = torch.tensor(stops, device=device)
        pick = TokenPicker(sampling, seeds, scores, grammars)
        # A grammar's state follows each picked token: guessed tokens would need it ahead.
        guess = drafts.guess if drafts is not None and max_guess and grammars is None else None
        stopping = set(stops)
        # Repeated prompts are sampled candidates, drawn in waves: later waves reuse the first
        # prefill. Greedy decodes get distinct prompts and keep the plain path.
        repeats = len(set(map(tuple, encoded))) < len(encoded)
        # No row outgrows its prompt + max_new_tokens: the cache keeps no room past that.
        max_columns = max(map(len, encoded)) + max_new_tokens
        prefill = _Prefill(
            model, encoded, pad_id, device, repeats, memo_bytes, max_columns, prefix_memo
        )
        order = (watch or TokenWatch()).order
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
                if repeats:
                    prefill.keep_only({tuple(encoded[i]) for i in pending})
                first, chosen = pick(logits, rows)
                fresh = range(len(batch), len(batch) + len(rows))
                batch.add(cache, mask, rows, first)
                if len(rows) >= TRIM_AFTER_ROWS:
                    del cache, mask, logits  # the batch holds what it still needs
                    return_free_heap()
                new = [[t] for t in first.tolist()]
                new_scores = chosen.tolist()
            else:
                fresh = range(len(batch))
                room = [max_new_tokens - len(out_tokens[row]) for row in batch.rows]
                k = guess_length(len(batch), max_guess) if guess is not None else 0
                guesses = [
                    guess(encoded[row] + out_tokens[row], min(k, n - 1))
                    for row, n in zip(batch.rows, room, strict=True)
                ] if k else []  # fmt: skip
                if any(guesses):
                    new, new_scores = verify_step(
                        model, batch, guesses, pick, stopping, room, kernel
                    )
                else:
                    new, new_scores = _plain_step(model, batch, pick, kernel)
            # `next_token` holds each row's newest output token, not yet fed to the model; after
            # a refill only the new rows have one.
            for n, slot in enumerate(fresh):
                out_tokens[batch.rows[slot]] += new[n]
                logprobs[batch.rows[slot]] += new_scores[n]
            full = [len(out_tokens[row]) >= max_new_tokens for row in batch.rows]
            finished = torch.isin(batch.next_token, stop_ids) | torch.tensor(full, device=device)
            if finished.any():
                bar.update(int(finished.sum()))
                if watch is not None:
                    for slot in finished.nonzero().flatten().tolist():
                        row = batch.rows[slot]
                        watch.finished(row, out_tokens[row], logprobs[row] / len(out_tokens[row]))
                if watch is not None:
                    # What finished may make running rows pointless (later candidates of an
                    # input that now has a good one): stop them too, with no text.
                    for slot, row in enumerate(batch.rows):
                        if not finished[slot] and not watch.wanted(row):
                            finished[slot] = True
                            out_tokens[row], logprobs[row] = [], 0.0
                            bar.update(1)
                for slot in finished.nonzero().flatten().tolist():
                    pick.forget(batch.rows[slot])
                    if guess is not None:
                        drafts.learn(out_tokens[batch.rows[slot]])
                batch.drop(finished.nonzero().flatten().tolist())
        return Decoded(out_tokens, logprobs if scores else None)
