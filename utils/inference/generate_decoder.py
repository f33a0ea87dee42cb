"""The `generate` engine's decoding: transformers' `model.generate` on length-sorted,
left-padded batches, greedy or as beam search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from utils.inference.engine import Sampling
from utils.inference.token_batches import Decoded, left_padded, until_stop

if TYPE_CHECKING:
    from utils.inference.grammar_mask import RowGrammars


class _GrammarProcessor:
    """A transformers logits processor masking each batch row to its grammar: the rows
    are `rows` (decode rows of `grammars`); each call first feeds every live row's previous
    token to its matcher (none on the first call, which sees the prompt)."""

    def __init__(self, grammars: RowGrammars, rows: list[int], stops: set[int]) -> None:
        self.grammars, self.rows, self.stops = grammars, rows, stops
        self.started = False
        self.done: set[int] = set()  # batch rows past their stop (generate pads them)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        if self.started:
            last = input_ids[:, -1].tolist()
            live = [b for b in range(len(self.rows)) if b not in self.done]
            self.grammars.advance([self.rows[b] for b in live], [last[b] for b in live])
            self.done.update(b for b in live if last[b] in self.stops)
        self.started = True
        live = [b for b in range(len(self.rows)) if b not in self.done]
        # Greedy: only rows whose own choice the grammar refuses need their mask.
        best = scores.argmax(-1).tolist()
        wrong = [
            live[i]
            for i in self.grammars.refused([best[b] for b in live], [self.rows[b] for b in live])
        ]
        if wrong:
            scores[wrong] = self.grammars.masked(scores[wrong], [self.rows[b] for b in wrong])
        return scores


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
    grammars: RowGrammars | None = None,
) -> Decoded:
    """Greedy only, unscored: candidates (sampling, scores) need the continuous engine or
    beam search. `grammars` (optional) constrain each row, through a logits processor."""
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
        extra = {}
        if grammars is not None:
            from transformers import LogitsProcessorList

            processor = _GrammarProcessor(grammars, idx, stop_set)
            extra["logits_processor"] = LogitsProcessorList([processor])
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=stops,
            pad_token_id=pad_id,
            **extra,
        )
        for row, i in enumerate(idx):
            out_tokens[i] = until_stop(out[row, ids.shape[1] :].tolist(), stop_set)
            if grammars is not None:
                grammars.forget(i)
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
