"""The `generate` engine's decoding: transformers' `model.generate` on length-sorted,
left-padded batches, greedy or as beam search."""

from __future__ import annotations

from typing import Any

import torch

from utils.inference.engine import Sampling
from utils.inference.token_batches import Decoded, left_padded, until_stop


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
