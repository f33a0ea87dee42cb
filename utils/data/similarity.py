"""Near-duplicate texts: word-set Jaccard similarity, found through an inverted index.

Used to find test inputs that (nearly) repeat a training input, which inflates test scores
(leakage). Texts are compared after lower-casing and dropping punctuation, so
"Tetris is fun!" and "tetris is fun" are the same text.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

_WORD_RE = re.compile(r"\w+")


def normalize(text: str) -> str:
    return " ".join(_WORD_RE.findall(text.lower()))


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD_RE.findall(text.lower()))


@dataclass(frozen=True)
class Match:
    query: int  # row among the queries (test)
    corpus: int  # most similar row among the corpus (train)
    similarity: float  # 1.0 for the same normalized text

    @property
    def exact(self) -> bool:
        return self.similarity >= 1.0


def near_duplicates(queries: list[str], corpus: list[str], threshold: float) -> list[Match]:
    """For each query text, the most similar corpus text if its Jaccard >= `threshold`.

    Only corpus texts sharing a word with the query are scored; candidates come from the
    query's rarest words (a pair with Jaccard >= t shares most words, rare ones included).
    """
    exact: dict[str, int] = {}
    for j, text in enumerate(corpus):
        exact.setdefault(normalize(text), j)
    sets = [_words(t) for t in corpus]
    df = Counter(w for s in sets for w in s)
    index: dict[str, list[int]] = defaultdict(list)
    for j, words in enumerate(sets):
        for w in words:
            index[w].append(j)
    out = []
    for i, text in enumerate(queries):
        hit = exact.get(normalize(text))
        if hit is not None:
            out.append(Match(i, hit, 1.0))
            continue
        words = _words(text)
        if not words:
            continue
        # A corpus set with Jaccard >= t must contain at least this many of the query's
        # words, so it contains one of the query's (len - need + 1) rarest words.
        need = max(1, int(threshold * len(words) + 0.999999))
        rare = sorted(words, key=lambda w: (df.get(w, 0), w))[: len(words) - need + 1]
        candidates = {j for w in rare for j in index.get(w, ())}
        best: Match | None = None
        for j in sorted(candidates):
            shared = len(words & sets[j])
            score = shared / (len(words) + len(sets[j]) - shared)
            if score >= threshold and (best is None or score > best.similarity):
                best = Match(i, j, min(score, 0.9999))
        if best is not None:
            out.append(best)
    return out
