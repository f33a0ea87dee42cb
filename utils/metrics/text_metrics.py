"""Text-overlap metrics: ROUGE-1/2/L/Lsum and corpus BLEU, offline (no network, no torch).

ROUGE follows HF ``evaluate``: F-measure, Porter stemmer, mean over rows, best reference
per row. BLEU is sacrebleu's corpus score (13a tokenizer) scaled to [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize, tokenizers
from sacrebleu.metrics import BLEU, CHRF

from utils.core.tasks import ROUGE

# rouge_score's own type names are this project's metric names.
ROUGE_KEYS: tuple[str, ...] = tuple(m.name for m in ROUGE)

# Sentence ends for rougeLsum, which expects one sentence per line (evaluate users run
# nltk's sentence splitter; a regex keeps this dependency-free).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")

References = Sequence[str] | Sequence[Sequence[str]]


class _CachedStemmer:
    """Porter stemming dominates ROUGE's run time and the vocabulary is small: memoise it."""

    def __init__(self) -> None:
        self.stem = lru_cache(maxsize=65536)(porter.PorterStemmer().stem)


class _StemmingTokenizer(tokenizers.Tokenizer):
    """rouge_score's DefaultTokenizer(use_stemmer=True), with the memoised stemmer."""

    def __init__(self) -> None:
        self._stemmer = _CachedStemmer()

    def tokenize(self, text: str) -> list[str]:
        return tokenize.tokenize(text, self._stemmer)


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=_StemmingTokenizer())


@lru_cache(maxsize=1)
def _rouge_l_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_StemmingTokenizer())


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of two texts, tokenized as the scorer does (symmetric in a, b)."""
    return _rouge_l_scorer().score(a, b)["rougeL"].fmeasure


@lru_cache(maxsize=1)
def _sentence_bleu() -> BLEU:
    # Effective order: a short sentence without a matching 4-gram still scores above 0.
    return BLEU(effective_order=True)


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """sacrebleu's sentence BLEU of `hypothesis` against one reference, in [0, 1]."""
    return min(1.0, _sentence_bleu().sentence_score(hypothesis, [reference]).score / 100.0)


@lru_cache(maxsize=1)
def _chrf() -> CHRF:
    return CHRF()


def sentence_chrf(hypothesis: str, reference: str) -> float:
    """sacrebleu's chrF of `hypothesis` against one reference, in [0, 1]."""
    return _chrf().sentence_score(hypothesis, [reference]).score / 100.0


# How much one output agrees with another (hypothesis, reference): the utilities of
# minimum-Bayes-risk selection (`evaluation.rerank.consensus_metric`).
AGREEMENT = {"rougeL": rouge_l, "bleu": sentence_bleu, "chrf": sentence_chrf}


def _split_sentences(text: str) -> str:
    return "\n".join(_SENTENCE_END.split(text.strip()))


def as_ref_lists(references: References) -> list[list[str]]:
    """Accept one reference per row or a list per row."""
    out = [[r] if isinstance(r, str) else list(r) for r in references]
    if any(not refs for refs in out):
        raise ValueError("every row needs at least one reference")
    return out


def check_lengths(**columns: Sequence[Any]) -> int:
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def rouge_row(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """Best F-measure over the references, per ROUGE type (what score_multi does)."""
    scores = _scorer().score_multi(
        [_split_sentences(r) for r in references], _split_sentences(prediction)
    )
    return {key: scores[key].fmeasure for key in ROUGE_KEYS}


def rouge(predictions: Sequence[str], references: References) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measure over rows (max over each row's references)."""
    n = check_lengths(predictions=predictions, references=references)
    if n == 0:
        return dict.fromkeys(ROUGE_KEYS, 0.0)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for pred, refs in zip(predictions, as_ref_lists(references), strict=True):
        for key, value in rouge_row(pred, refs).items():
            totals[key] += value
    return {key: totals[key] / n for key in ROUGE_KEYS}


def bleu(predictions: Sequence[str], references: References) -> float:
    """Corpus BLEU (sacrebleu defaults, 13a tokenizer) scaled to [0, 1].

    sacrebleu wants reference *streams* (one list per reference position, each as long as
    the predictions); rows with fewer references are padded with None, which sacrebleu
    skips, so a row is never scored against a duplicated or empty reference.
    """
    n = check_lengths(predictions=predictions, references=references)
    if n == 0:
        return 0.0
    ref_lists = as_ref_lists(references)
    width = max(len(refs) for refs in ref_lists)
    streams = [[refs[i] if i < len(refs) else None for refs in ref_lists] for i in range(width)]
    # min(): floating point gives 1.0000000000000004 for a perfect match.
    return min(1.0, BLEU().corpus_score(list(predictions), streams).score / 100.0)
