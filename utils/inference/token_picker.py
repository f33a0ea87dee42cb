"""How the continuous decoder picks each row's next token: greedily, or by sampling."""

from __future__ import annotations

from typing import Any

import torch

from utils.inference.engine import Sampling


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
