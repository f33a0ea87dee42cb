"""Pieces both decoding engines share (how a token is picked, what a decode returns), and
the `generate` engine: transformers' `model.generate` on length-sorted, left-padded batches,
greedy or as beam search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Sampling:
    """Draw tokens instead of taking the most likely one (candidates for reranking)."""

    temperature: float = 0.7
    top_p: float = 0.95
    # Only the k most likely tokens are drawn from: sorting the whole vocabulary (49k for
    # SmolLM2) for the nucleus at every step would cost more than the model's head.
    top_k: int = 50
    seed: int = 0


@dataclass
class Decoded:
    tokens: list[list[int]]  # per encoded prompt, up to and including its stop token
    # Per prompt, the summed log-probability the model gives its tokens (unaffected by the
    # sampling temperature); None where the engine does not track it.
    logprobs: list[float] | None = None


class TokenPicker:
    """Chooses each row's next token from its logits, greedily or by sampling, and scores
    the choice with the model's own log-probability."""

    def __init__(self, sampling: Sampling | None, device: Any, scores: bool = True) -> None:
        self.sampling, self.scores = sampling, scores
        self.generator = None
        if sampling is not None:
            self.generator = torch.Generator(device=device).manual_seed(sampling.seed)

    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, their log-probabilities) for `logits` of shape (rows, vocab); the
        log-probabilities are zeros when scores are not tracked (a vocabulary-wide softmax
        per step, ~4% of a greedy decode step)."""
        logits = logits.float()
        tokens = logits.argmax(-1) if self.sampling is None else self._sample(logits)
        if not self.scores:
            return tokens, torch.zeros(tokens.shape, device=tokens.device)
        chosen = logits.gather(-1, tokens[:, None])[:, 0]
        return tokens, chosen - torch.logsumexp(logits, dim=-1)

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        s = self.sampling
        top, tokens = logits.topk(min(s.top_k, logits.shape[-1]), dim=-1)  # sorted, best first
        probs = torch.softmax(top / s.temperature, dim=-1)
        if s.top_p < 1.0:
            # Nucleus: the smallest set of most likely tokens whose mass reaches top_p.
            outside = probs.cumsum(-1) - probs > s.top_p
            probs = probs.masked_fill(outside, 0.0)
        picked = torch.multinomial(probs, 1, generator=self.generator)
        return tokens.gather(-1, picked)[:, 0]


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


def decode_generate(
    model: Any,
    encoded: list[list[int]],
    batch_size: int,
    max_new_tokens: int,
    stops: list[int],
    pad_id: int,
    bar: Any,
    sampling: Sampling | None = None,
    scores: bool = False,
) -> Decoded:
    """Greedy only, unscored: candidates (sampling, scores) need the continuous engine or
    beam search."""
    if sampling is not None:
        raise ValueError("the generate engine decodes greedily; sample with 'continuous'")
    # Longest first: similar lengths share a batch (little padding) and OOM shows up early.
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    device = next(model.parameters()).device
    stop_set = set(stops)
    out_tokens: list[list[int]] = [[] for _ in encoded]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = left_padded([encoded[i] for i in idx], pad_id)
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=stops,
            pad_token_id=pad_id,
        )
        for row, i in enumerate(idx):
            out_tokens[i] = until_stop(out[row, ids.shape[1] :].tolist(), stop_set)
        bar.update(len(idx))
    return Decoded(out_tokens)


def decode_beams(
    model: Any,
    encoded: list[list[int]],
    beams: int,
    max_new_tokens: int,
    stops: list[int],
    pad_id: int,
    bar: Any,
) -> list[list[tuple[list[int], float]]]:
    """Per prompt, the `beams` finished hypotheses of a beam search with their scores
    (transformers' length-normalised log-probability), best first."""
    device = next(model.parameters()).device
    stop_set = set(stops)
    out: list[list[tuple[list[int], float]]] = []
    for seq in encoded:
        ids = torch.tensor([seq], device=device)
        result = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=beams,
            num_return_sequences=beams,
            eos_token_id=stops,
            pad_token_id=pad_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        hyps = [until_stop(row[ids.shape[1] :].tolist(), stop_set) for row in result.sequences]
        out.append(list(zip(hyps, result.sequences_scores.tolist(), strict=True)))
        bar.update(1)
    return out
