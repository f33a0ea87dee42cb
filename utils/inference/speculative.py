"""Speculative decode steps for few rows: each row's guessed tokens (`utils.inference.
draft_index`) are fed with its newest token in one forward pass and kept while the model
picks them itself.

Why: with few rows a decode step streams every weight for a handful of products, so
checking 4 guesses of one row costs about one step (on a 2-core Zen 3 in float32, 58 ms
against 50 ms) and each accepted guess saves one.

The outputs are the plain decode's: position j's token is picked from the logits after the
row's accepted tokens exactly as a plain step would pick it (the same argmax; a sampled row
draws its j-th number of its own stream), and a row stops accepting at its first token
that differs from the guess, or that stops it. Only summation order differs (several rows
through the matmul instead of one), as it already does between batch sizes.
"""

from __future__ import annotations

from typing import Any

import torch

from utils.inference.one_row import one_row_kernel
from utils.inference.token_picker import TokenPicker

# Rows (batch rows x fed tokens) a speculative step may feed the model. On a 2-core Zen 3 in
# float32, one row's forward pass took 50 ms for 1 token, 58 ms for 5, 77 ms for 7 and 96 ms
# for 2 rows x 5; 8 rows x 1 took 78 ms, x 2 95 ms: past ~8 rows a guessed token costs about
# what it saves (`bench/results/engine_speed.md`), so larger batches decode plainly.
MAX_VERIFY_ROWS = 8


def guess_length(rows: int, max_guess: int) -> int:
    """How many tokens each of `rows` rows may guess in one step (0: a plain step)."""
    return max(0, min(max_guess, MAX_VERIFY_ROWS // max(rows, 1) - 1))


def verify_step(
    model: Any,
    batch: Any,
    guesses: list[list[int]],
    pick: TokenPicker,
    stops: set[int],
    room: list[int],
    kernel: str,
) -> tuple[list[list[int]], list[float]]:
    """One step of `batch` (`continuous._Batch`) feeding each row's newest token and its
    `guesses` (padded to the longest); returns each row's new tokens (its accepted guesses
    and the model's next pick) and their summed log-probabilities. A row takes at most
    `room[slot]` tokens and none after a token of `stops`.

    Afterwards `batch.next_token` holds each row's last new token and the cache holds the
    fed tokens that were accepted: the others are masked out, and the columns no row
    accepted are cut off.
    """
    rows, k = len(batch.rows), max(map(len, guesses))
    padded = [g + [g[-1] if g else 0] * (k - len(g)) for g in guesses]
    fed = torch.cat([batch.next_token[:, None], batch.next_token.new_tensor(padded)], dim=1)
    past = batch.mask.shape[1]
    batch.mask = torch.cat([batch.mask, batch.mask.new_ones((rows, k + 1))], dim=1)
    steps = torch.arange(k + 1, device=batch.mask.device)
    positions = batch.mask.sum(-1, keepdim=True) - (k + 1) + steps
    with one_row_kernel(kernel, rows * (k + 1)):
        logits = model(
            input_ids=fed,
            attention_mask=batch.mask,
            position_ids=positions,
            cache=batch.cache,
            use_cache=True,
            logits_to_keep=k + 1,
        ).logits
    new: list[list[int]] = [[] for _ in range(rows)]
    scores = [0.0] * rows
    going = list(range(rows))
    for j in range(k + 1):
        tokens, chosen = pick(logits[going, j], [batch.rows[s] for s in going])
        still = []
        for slot, token, score in zip(going, tokens.tolist(), chosen.tolist(), strict=True):
            new[slot].append(token)
            scores[slot] += score
            accepted = j < k and token == padded[slot][j]
            if accepted and token not in stops and len(new[slot]) < room[slot]:
                still.append(slot)
        going = still
        if not going:
            break
    # Fed tokens after a row's accepted guesses are not its tokens: mask them out, and cut
    # the columns that no row accepted.
    unused = [k + 1 - len(tokens) for tokens in new]
    for slot, n in enumerate(unused):
        if n:
            batch.mask[slot, past + k + 1 - n :] = 0
    cut = min(unused)
    if cut:
        batch.mask = batch.mask[:, : past + k + 1 - cut]
        for layer in batch.cache.layers:
            layer.trim(cut)
    batch.next_token = batch.next_token.new_tensor([tokens[-1] for tokens in new])
    return new, scores
