"""Offline evaluation metrics for the two ViGGO tasks and generic text pairs (no network,
no torch, no ZenML).

* ``data_to_text``: MR -> sentence. ROUGE, BLEU and the slot error rate (SER, see
  ``utils.viggo``), both per row (each row scored against its own reference) and
  multi-reference (each distinct MR scored once against all references it has).
* ``text_to_mr``: sentence -> MR. Exact match of parsed MRs, dialogue-act accuracy, micro
  slot precision/recall/F1 and the parse rate, plus ROUGE on the raw strings.
* ``text_to_text``: any input -> any target (a user's own dataset). ROUGE and BLEU, per row
  and multi-reference (rows sharing an input); nothing assumes a ViGGO MR.

All figures are floats in [0, 1] except the ``num_*`` counts. ROUGE follows HF
``evaluate``: F-measure, Porter stemmer, mean over rows, best reference per row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize, tokenizers
from sacrebleu.metrics import BLEU

from utils.viggo import (
    MeaningRepresentation,
    SlotErrorCounts,
    format_mr,
    parse_mr,
    slot_errors,
    try_parse_mr,
)

TASKS: tuple[str, ...] = ("data_to_text", "text_to_mr", "text_to_text")
ROUGE_KEYS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")

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


def _split_sentences(text: str) -> str:
    return "\n".join(_SENTENCE_END.split(text.strip()))


def _as_ref_lists(references: References) -> list[list[str]]:
    """Accept one reference per row or a list per row."""
    out = [[r] if isinstance(r, str) else list(r) for r in references]
    if any(not refs for refs in out):
        raise ValueError("every row needs at least one reference")
    return out


def _check_lengths(**columns: Sequence[Any]) -> int:
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _rouge_row(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """Best F-measure over the references, per ROUGE type (what score_multi does)."""
    scores = _scorer().score_multi(
        [_split_sentences(r) for r in references], _split_sentences(prediction)
    )
    return {key: scores[key].fmeasure for key in ROUGE_KEYS}


def rouge(predictions: Sequence[str], references: References) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measure over rows (max over each row's references)."""
    n = _check_lengths(predictions=predictions, references=references)
    if n == 0:
        return dict.fromkeys(ROUGE_KEYS, 0.0)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for pred, refs in zip(predictions, _as_ref_lists(references), strict=True):
        for key, value in _rouge_row(pred, refs).items():
            totals[key] += value
    return {key: totals[key] / n for key in ROUGE_KEYS}


def bleu(predictions: Sequence[str], references: References) -> float:
    """Corpus BLEU (sacrebleu defaults, 13a tokenizer) scaled to [0, 1].

    sacrebleu wants reference *streams* (one list per reference position, each as long as
    the predictions); rows with fewer references are padded with None, which sacrebleu
    skips, so a row is never scored against a duplicated or empty reference.
    """
    n = _check_lengths(predictions=predictions, references=references)
    if n == 0:
        return 0.0
    ref_lists = _as_ref_lists(references)
    width = max(len(refs) for refs in ref_lists)
    streams = [[refs[i] if i < len(refs) else None for refs in ref_lists] for i in range(width)]
    # min(): floating point gives 1.0000000000000004 for a perfect match.
    return min(1.0, BLEU().corpus_score(list(predictions), streams).score / 100.0)


def _ser(counts: Sequence[SlotErrorCounts]) -> float:
    """Corpus SER: all errors over all slot units, capped at 1 (hallucinations can pile up)."""
    total = sum(counts, SlotErrorCounts(0))
    return min(1.0, total.ser)


def _group_key(mr_text: str) -> str:
    """Canonical MR string, so slot order does not split a group."""
    parsed = try_parse_mr(mr_text)
    return format_mr(parsed) if parsed is not None else mr_text.strip()


def data_to_text_metrics(
    inputs: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> dict[str, float]:
    """Per-row and multi-reference ROUGE/BLEU/SER for MR -> sentence generation.

    Multi-reference: rows sharing an input MR form one group, scored once with the first
    row's prediction (greedy decoding gives identical inputs identical outputs) against
    every reference of the group.
    """
    n = _check_lengths(inputs=inputs, predictions=predictions, references=references)
    mrs = [parse_mr(mr) for mr in inputs]
    out: dict[str, float] = {"num_rows": n}
    out.update(rouge(predictions, references))
    out["bleu"] = bleu(predictions, references)
    out["ser"] = _ser([slot_errors(mr, p) for mr, p in zip(mrs, predictions, strict=True)])

    groups: dict[str, tuple[int, list[str]]] = {}
    for i, (mr_text, ref) in enumerate(zip(inputs, references, strict=True)):
        _, refs = groups.setdefault(_group_key(mr_text), (i, []))
        if ref not in refs:
            refs.append(ref)
    firsts = [first for first, _ in groups.values()]
    group_preds = [predictions[i] for i in firsts]
    group_refs = [refs for _, refs in groups.values()]
    for key, value in rouge(group_preds, group_refs).items():
        out[f"multiref_{key}"] = value
    out["multiref_bleu"] = bleu(group_preds, group_refs)
    out["multiref_ser"] = _ser([slot_errors(mrs[i], predictions[i]) for i in firsts])
    out["num_distinct_inputs"] = len(groups)
    return out


def text_to_text_metrics(
    inputs: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> dict[str, float]:
    """Per-row and multi-reference ROUGE/BLEU; rows with the same input form one group."""
    n = _check_lengths(inputs=inputs, predictions=predictions, references=references)
    out: dict[str, float] = {"num_rows": n}
    out.update(rouge(predictions, references))
    out["bleu"] = bleu(predictions, references)
    groups: dict[str, tuple[int, list[str]]] = {}
    for i, (text, ref) in enumerate(zip(inputs, references, strict=True)):
        _, refs = groups.setdefault(text.strip(), (i, []))
        if ref not in refs:
            refs.append(ref)
    group_preds = [predictions[first] for first, _ in groups.values()]
    group_refs = [refs for _, refs in groups.values()]
    for key, value in rouge(group_preds, group_refs).items():
        out[f"multiref_{key}"] = value
    out["multiref_bleu"] = bleu(group_preds, group_refs)
    out["num_distinct_inputs"] = len(groups)
    return out


def _pair_counts(
    predicted: MeaningRepresentation | None, reference: MeaningRepresentation
) -> tuple[int, int, int]:
    """(true positives, predicted pairs, reference pairs) over (slot, value) pairs."""
    gold = reference.pairs()
    guess = predicted.pairs() if predicted is not None else set()
    return len(gold & guess), len(guess), len(gold)


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else float(n_gold == 0)
    recall = tp / n_gold if n_gold else float(n_pred == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def text_to_mr_metrics(
    inputs: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> dict[str, float]:
    """Exact match, act accuracy, micro slot P/R/F1 and parse rate for sentence -> MR.

    An unparsable prediction is wrong on every count and contributes no predicted pairs.
    """
    n = _check_lengths(inputs=inputs, predictions=predictions, references=references)
    gold = [parse_mr(r) for r in references]
    guess = [try_parse_mr(p) for p in predictions]
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, guess, strict=True):
        a, b, c = _pair_counts(p, g)
        tp, n_pred, n_gold = tp + a, n_pred + b, n_gold + c
    precision, recall, f1 = _prf(tp, n_pred, n_gold)
    out: dict[str, float] = {
        "num_rows": n,
        "exact_match": sum(p == g for p, g in zip(guess, gold, strict=True)) / n if n else 0.0,
        "act_accuracy": (
            sum(p is not None and p.act == g.act for p, g in zip(guess, gold, strict=True)) / n
            if n
            else 0.0
        ),
        "slot_precision": precision if n else 0.0,
        "slot_recall": recall if n else 0.0,
        "slot_f1": f1 if n else 0.0,
        "parse_rate": sum(p is not None for p in guess) / n if n else 0.0,
    }
    out.update(rouge(predictions, references))
    return out


def per_row_scores(
    task: str, inputs: Sequence[str], predictions: Sequence[str], references: References
) -> list[dict[str, Any]]:
    """One dict per row (index, rougeL and task-specific figures) for worst-first tables."""
    _check_task(task)
    _check_lengths(inputs=inputs, predictions=predictions, references=references)
    rows: list[dict[str, Any]] = []
    ref_lists = _as_ref_lists(references)
    for i, (inp, pred, refs) in enumerate(zip(inputs, predictions, ref_lists, strict=True)):
        row: dict[str, Any] = {"index": i, "rougeL": _rouge_row(pred, refs)["rougeL"]}
        if task == "data_to_text":
            counts = slot_errors(parse_mr(inp), pred)
            row.update(
                ser=counts.ser,
                missing=counts.missing,
                wrong=counts.wrong,
                hallucinated=counts.hallucinated,
            )
        elif task == "text_to_mr":
            gold, guess = parse_mr(refs[0]), try_parse_mr(pred)
            row.update(
                parsed=guess is not None,
                exact_match=guess == gold,
                slot_f1=_prf(*_pair_counts(guess, gold))[2],
            )
        rows.append(row)
    return rows


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")


def compute_metrics(
    task: str, inputs: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> dict[str, float]:
    """Metrics for ``task`` (one of TASKS)."""
    _check_task(task)
    if task == "data_to_text":
        return data_to_text_metrics(inputs, predictions, references)
    if task == "text_to_text":
        return text_to_text_metrics(inputs, predictions, references)
    return text_to_mr_metrics(inputs, predictions, references)
