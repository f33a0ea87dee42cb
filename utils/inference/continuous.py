"""The `continuous` decoding engine: one KV cache, rows leave as they stop and waiting
prompts take their slots, the prompts' shared prefix computed once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from utils.core.freed_memory import return_free_heap
from utils.inference.draft_index import DraftIndex
from utils.inference.engine import Sampling
from utils.inference.grouped_attention import grouped_attention
from utils.inference.memory_budget import UNBOUNDED_MEMO_BYTES
from utils.inference.one_row import one_row_kernel
from utils.inference.prefill import Prefill, left_pad_kv
from utils.inference.prefix_memo import PrefixMemo
from utils.inference.speculative import guess_length, verify_step
from utils.inference.token_batches import Decoded
from utils.inference.token_picker import TokenPicker

if TYPE_CHECKING:
    from utils.inference.grammar_mask import RowGrammars


# A refill of at least this many rows hands the heap's free pages back to the system after
# its prefill. A large prefill frees hundreds of MB of activations that glibc keeps on its heap
# and later allocations do not always reuse: the base model's full-split evaluation peaked at
# 2.72-2.91 GB without and 2.58-2.63 GB with it, in the same time (2-core Zen 3, float32, two
# runs each). A served request's refill of a few rows skips it.
TRIM_AFTER_ROWS = 16


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
            k = torch.cat([left_pad_kv(mine.keys, length), left_pad_kv(theirs.keys, length)])
            v = torch.cat([left_pad_kv(mine.values, length), left_pad_kv(theirs.values, length)])
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

    def arrivals(self) -> list[tuple[list[int], int | None]]:
        """Rows that join the running decode now, as (encoded prompt, seed; None: greedy);
        they are numbered on from the rows the decode has. Asked before every step."""
        return []

    # False: a finished row's tokens are dropped once `finished` has seen them (a decode
    # that takes arrivals for as long as a service is busy returns no tokens).
    keeps_outputs = True


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
    back with no tokens), or add rows while the decode runs (`TokenWatch.arrivals`).
    Sampled rows are seeded by `seeds` (one per encoded prompt; None: that row is greedy).
    `kernel`: the matmul of one-row decode steps
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
        # Rows that arrive while the decode runs are appended to these.
        encoded, seeds = list(encoded), list(seeds) if seeds is not None else None
        pick = TokenPicker(sampling, seeds, scores, grammars)
        # A grammar's state follows each picked token: guessed tokens would need it ahead.
        guess = drafts.guess if drafts is not None and max_guess and grammars is None else None
        stopping = set(stops)
        # Repeated prompts are sampled candidates, drawn in waves: later waves reuse the first
        # prefill. Greedy decodes get distinct prompts and keep the plain path.
        repeats = len(set(map(tuple, encoded))) < len(encoded)
        # No row outgrows its prompt + max_new_tokens: the cache keeps no room past that.
        max_columns = max(map(len, encoded)) + max_new_tokens
        prefill = Prefill(
            model, encoded, pad_id, device, repeats, memo_bytes, max_columns, prefix_memo
        )
        order = (watch or TokenWatch()).order
        pending = sorted(range(len(encoded)), key=lambda i: order(i, len(encoded[i])))
        out_tokens: list[list[int]] = [[] for _ in encoded]
        logprobs = [0.0] * len(encoded)
        batch = _Batch()
        # Refill only once a quarter of the slots are free: a prefill has a fixed cost.
        refill_at = max(1, batch_size // 4)
        while True:
            arrived = watch.arrivals() if watch is not None else []
            for tokens, seed in arrived:
                if seed is not None and seeds is None:
                    raise ValueError("a sampled row joined a greedy decode")
                pending.append(len(encoded))
                encoded.append(tokens)
                out_tokens.append([])
                logprobs.append(0.0)
                if seeds is not None:
                    seeds.append(seed)
            if arrived:
                pending.sort(key=lambda i: order(i, len(encoded[i])))
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
                    row = batch.rows[slot]
                    pick.forget(row)
                    if guess is not None:
                        drafts.learn(out_tokens[row])
                    if watch is not None and not watch.keeps_outputs:
                        encoded[row], out_tokens[row] = [], []
                batch.drop(finished.nonzero().flatten().tolist())
        return Decoded(out_tokens, logprobs if scores else None)
