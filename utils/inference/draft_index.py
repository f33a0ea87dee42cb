"""Guesses of a row's next tokens for speculative decoding: n-grams of its own prompt and
output first (slot values are copied from the input), then of outputs decoded before
(a task's outputs repeat their phrasing: "is a ... game released in ...").

A guess costs nothing to be wrong: the decode verifies every guessed token against the
model's own choice (`utils.inference.speculative`), so outputs never depend on the guesses,
only the number of steps does. On ViGGO's test split, the default recipe's outputs would
take 1.88 tokens per step with up to 4 guessed tokens, 1.30 from the prompt alone
(replayed against the real outputs by `bench/draft_replay.py`:
`bench/results/engine_speed.md`).
"""

from __future__ import annotations

# The longest n-gram looked up; longer matches first, as they guess better.
MAX_NGRAM = 3
# The longest continuation remembered per n-gram of earlier outputs.
MAX_CONTINUATION = 8
# N-grams remembered from earlier outputs (the oldest forgotten first): a few MB at most.
MAX_ENTRIES = 50_000


class DraftIndex:
    """N-grams → what followed them in outputs decoded earlier, and lookups of a row's own
    context. One index lives as long as its engine: a service's later requests are guessed
    from its earlier answers."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._seen: dict[tuple[int, ...], tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def guess(self, context: list[int], k: int) -> list[int]:
        """Up to `k` tokens that may follow `context` (the row's prompt + output so far);
        empty when nothing matches its last tokens."""
        for n in range(min(MAX_NGRAM, len(context)), 0, -1):
            tail = context[-n:]
            own = _after_last(context, tail)
            if own:
                return own[:k]
            seen = self._seen.get(tuple(tail))
            if seen:
                return list(seen[:k])
        return []

    def learn(self, tokens: list[int]) -> None:
        """Remember the n-grams of a finished output and what followed each."""
        for n in range(1, MAX_NGRAM + 1):
            for start in range(len(tokens) - n):
                key = tuple(tokens[start : start + n])
                # Re-inserted at the end: the most recent phrasing wins and is kept longest.
                self._seen.pop(key, None)
                self._seen[key] = tuple(tokens[start + n : start + n + MAX_CONTINUATION])
        while len(self._seen) > self.max_entries:
            del self._seen[next(iter(self._seen))]


def _after_last(context: list[int], tail: list[int]) -> list[int]:
    """What followed the latest earlier occurrence of `tail` in `context` (not the tail
    itself, at its end)."""
    n, first = len(tail), tail[0]
    for start in range(len(context) - n - 1, -1, -1):
        if context[start] == first and context[start : start + n] == tail:
            return context[start + n : start + n + MAX_CONTINUATION]
    return []
