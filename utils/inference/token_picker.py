"""How the continuous decoder picks each row's next token: greedily, or by sampling, in
both cases among the tokens the row's grammar allows when it has one."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import torch

from utils.inference.engine import Sampling

if TYPE_CHECKING:
    from utils.inference.grammar_mask import RowGrammars


class TokenPicker:
    """Chooses each row's next token from its logits, greedily or by sampling, and scores
    the choice with the model's own log-probability.

    Sampled rows draw from their own random stream, seeded by `seeds[row]` (row = the
    prompt's index in the decode), so a row's tokens depend on its logits alone, never on
    which other rows share the batch or when the row started. A row whose seed is None is
    greedy inside a sampled decode (a greedy output decoded beside its candidates).

    With `grammars`, a row picks among the tokens its grammar allows; its score stays the
    model's own log-probability of the token (over the whole vocabulary).
    """

    def __init__(
        self,
        sampling: Sampling | None,
        seeds: list[int | None] | None = None,
        scores: bool = True,
        grammars: RowGrammars | None = None,
    ) -> None:
        if sampling is not None and seeds is None:
            raise ValueError("sampled rows need their seeds")
        self.sampling, self.seeds, self.scores = sampling, seeds, scores
        self.grammars = grammars
        self._streams: dict[int, random.Random] = {}

    def __call__(self, logits: torch.Tensor, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, their log-probabilities) for `logits` of shape (rows, vocab), row `i`
        being prompt `rows[i]`; the log-probabilities are zeros when scores are not tracked
        (a vocabulary-wide softmax per step, ~4% of a greedy decode step)."""
        logits = logits.float()
        if self.grammars is None and self.sampling is None:
            tokens = logits.argmax(-1)
        elif self.grammars is None:
            assert self.seeds is not None
            drawn = [n for n, row in enumerate(rows) if self.seeds[row] is not None]
            if len(drawn) == len(rows):
                tokens = self._sample(logits, rows)
            else:
                tokens = logits.argmax(-1)
                if drawn:
                    tokens[drawn] = self._sample(logits[drawn], [rows[n] for n in drawn])
        elif self.sampling is None:
            tokens = self.grammars.greedy(logits, rows)
        else:
            # Greedy rows beside sampled ones (rerank.together_rows) are never constrained:
            # the reranking does not decode them together then.
            tokens = self._sample(self.grammars.masked(logits, rows), rows)
        if self.grammars is not None:
            self.grammars.advance(rows, tokens.tolist())
        if not self.scores:
            return tokens, torch.zeros(tokens.shape, device=tokens.device)
        chosen = logits.gather(-1, tokens[:, None])[:, 0]
        return tokens, chosen - torch.logsumexp(logits, dim=-1)

    def forget(self, row: int) -> None:
        """A finished row draws no more."""
        self._streams.pop(row, None)
        if self.grammars is not None:
            self.grammars.forget(row)

    def _uniform(self, rows: list[int]) -> list[float]:
        assert self.seeds is not None
        out = []
        for row in rows:
            stream = self._streams.get(row)
            if stream is None:
                stream = self._streams[row] = random.Random(self.seeds[row])
            out.append(stream.random())
        return out

    def _sample(self, logits: torch.Tensor, rows: list[int]) -> torch.Tensor:
        s = self.sampling
        top, tokens = logits.topk(min(s.top_k, logits.shape[-1]), dim=-1)  # sorted, best first
        probs = torch.softmax(top / s.temperature, dim=-1)
        if s.top_p < 1.0:
            # Nucleus: the smallest set of most likely tokens whose mass reaches top_p.
            outside = probs.cumsum(-1) - probs > s.top_p
            probs = probs.masked_fill(outside, 0.0)
        # Inverse transform: each row's own uniform draw against its cumulative mass.
        cdf = probs.cumsum(-1)
        u = torch.tensor(self._uniform(rows), dtype=cdf.dtype, device=cdf.device)[:, None]
        picked = (cdf < u * cdf[:, -1:]).sum(-1, keepdim=True).clamp(max=cdf.shape[-1] - 1)
        return tokens.gather(-1, picked)[:, 0]
