"""Token-id batches as both transformers decoders build and return them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Decoded:
    tokens: list[list[int]]  # per encoded prompt, up to and including its stop token
    # Per prompt, the summed log-probability the model gives its tokens (unaffected by the
    # sampling temperature); None where the engine does not track it.
    logprobs: list[float] | None = None


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def left_padded(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, longest - len(seq) :] = torch.tensor(seq)
        mask[row, longest - len(seq) :] = 1
    return ids, mask


def until_stop(ids: list[int], stops: set[int]) -> list[int]:
    for n, token in enumerate(ids):
        if token in stops:
            return ids[: n + 1]
    return ids
