"""Each task's metrics, under the names of the registry (`utils.core.tasks`).

* ``data_to_text``: MR -> sentence. ROUGE, BLEU and the slot error rate (SER, see
  ``utils.viggo.slot_errors``), both per row (each row scored against its own reference)
  and multi-reference (each distinct MR scored once against all references it has).
* ``text_to_mr``: sentence -> MR. Exact match of parsed MRs, dialogue-act accuracy, micro
  slot precision/recall/F1 and the parse rate, plus ROUGE on the raw strings.
* ``text_to_text``: any input -> any target (a user's own dataset). ROUGE and BLEU, per row
  and multi-reference (rows sharing an input); nothing assumes a ViGGO MR.

All figures are floats in [0, 1] except the ``num_*`` counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from utils.core.tasks import (
    ACT_ACCURACY,
    BLEU,
    EXACT_MATCH,
    HALLUCINATED,
    MISSING,
    MULTIREF_PREFIX,
    NUM_DISTINCT_INPUTS,
    NUM_ROWS,
    PARSE_RATE,
    ROUGE_L,
    SER,
    SLOT_F1,
    SLOT_PRECISION,
    SLOT_RECALL,
    WRONG,
    TaskName,
    get_task,
    multiref,
)
from utils.metrics.text_metrics import (
    References,
    as_ref_lists,
    bleu,
    check_lengths,
    rouge,
    rouge_row,
)
from utils.viggo import (
    MeaningRepresentation,
    SlotErrorCounts,
    format_mr,
    parse_mr,
    slot_errors,
    try_parse_mr,
)

Metrics = dict[str, float]


def _ser(counts: Sequence[SlotErrorCounts]) -> float:
    """Corpus SER: all errors over all slot units, capped at 1 (hallucinations can pile up)."""
    total = sum(counts, SlotErrorCounts(0))
    return min(1.0, total.ser)


def _group_key(mr_text: str) -> str:
    """Canonical MR string, so slot order does not split a group."""
    parsed = try_parse_mr(mr_text)
    return format_mr(parsed) if parsed is not None else mr_text.strip()


def _groups(
    inputs: Sequence[str], references: Sequence[str], key: Callable[[str], str]
) -> dict[str, tuple[int, list[str]]]:
    """Rows sharing an input: (first row, distinct references), in first-seen order."""
    groups: dict[str, tuple[int, list[str]]] = {}
    for i, (text, ref) in enumerate(zip(inputs, references, strict=True)):
        _, refs = groups.setdefault(key(text), (i, []))
        if ref not in refs:
            refs.append(ref)
    return groups


def _text_overlap(
    inputs: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[str],
    group_key: Callable[[str], str],
) -> tuple[Metrics, list[int]]:
    """ROUGE and BLEU per row and per distinct input; also the first row of each input.

    Multi-reference: rows sharing an input form one group, scored once with the first row's
    prediction (greedy decoding gives identical inputs identical outputs) against every
    reference of the group.
    """
    n = check_lengths(inputs=inputs, predictions=predictions, references=references)
    out: Metrics = {NUM_ROWS: n}
    out.update(rouge(predictions, references))
    out[BLEU.name] = bleu(predictions, references)
    groups = _groups(inputs, references, group_key)
    firsts = [first for first, _ in groups.values()]
    group_preds = [predictions[i] for i in firsts]
    group_refs = [refs for _, refs in groups.values()]
    for key, value in rouge(group_preds, group_refs).items():
        out[MULTIREF_PREFIX + key] = value
    out[multiref(BLEU)] = bleu(group_preds, group_refs)
    out[NUM_DISTINCT_INPUTS] = len(groups)
    return out, firsts


def data_to_text_metrics(
    inputs: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> Metrics:
    """Per-row and multi-reference ROUGE/BLEU/SER for MR -> sentence generation."""
    out, firsts = _text_overlap(inputs, predictions, references, _group_key)
    mrs = [parse_mr(mr) for mr in inputs]
    out[SER.name] = _ser([slot_errors(mr, p) for mr, p in zip(mrs, predictions, strict=True)])
    out[multiref(SER)] = _ser([slot_errors(mrs[i], predictions[i]) for i in firsts])
    return out


def text_to_text_metrics(
    inputs: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> Metrics:
    """Per-row and multi-reference ROUGE/BLEU; rows with the same input form one group."""
    out, _ = _text_overlap(inputs, predictions, references, str.strip)
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
) -> Metrics:
    """Exact match, act accuracy, micro slot P/R/F1 and parse rate for sentence -> MR.

    An unparsable prediction is wrong on every count and contributes no predicted pairs.
    """
    n = check_lengths(inputs=inputs, predictions=predictions, references=references)
    gold = [parse_mr(r) for r in references]
    guess = [try_parse_mr(p) for p in predictions]
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, guess, strict=True):
        a, b, c = _pair_counts(p, g)
        tp, n_pred, n_gold = tp + a, n_pred + b, n_gold + c
    precision, recall, f1 = _prf(tp, n_pred, n_gold)
    pairs = list(zip(guess, gold, strict=True))
    out: Metrics = {
        NUM_ROWS: n,
        EXACT_MATCH.name: sum(p == g for p, g in pairs) / n if n else 0.0,
        ACT_ACCURACY.name: (
            sum(p is not None and p.act == g.act for p, g in pairs) / n if n else 0.0
        ),
        SLOT_PRECISION.name: precision if n else 0.0,
        SLOT_RECALL.name: recall if n else 0.0,
        SLOT_F1.name: f1 if n else 0.0,
        PARSE_RATE.name: sum(p is not None for p in guess) / n if n else 0.0,
    }
    out.update(rouge(predictions, references))
    return out


SCORERS: dict[str, Callable[[Sequence[str], Sequence[str], Sequence[str]], Metrics]] = {
    TaskName.DATA_TO_TEXT: data_to_text_metrics,
    TaskName.TEXT_TO_MR: text_to_mr_metrics,
    TaskName.TEXT_TO_TEXT: text_to_text_metrics,
}


def compute_metrics(
    task: str, inputs: Sequence[str], predictions: Sequence[str], references: Sequence[str]
) -> Metrics:
    """The metrics of `task` (`utils.core.tasks.TASKS`) for predictions of `inputs`."""
    get_task(task)
    return SCORERS[task](inputs, predictions, references)


def score_rows(
    task: str,
    inputs: Sequence[str],
    predictions: Sequence[str | None],
    references: Sequence[str | Sequence[str]],
) -> Metrics:
    """What `run.py score` and the `evaluate` module (metrics/viggo) report for scored rows.

    A row with k references counts as k rows (ViGGO's own layout: one row per reference),
    so multi-reference figures group them again by input.
    """
    check_lengths(inputs=inputs, predictions=predictions, references=references)
    flat_inputs: list[str] = []
    flat_predictions: list[str] = []
    flat_references: list[str] = []
    for inp, pred, refs in zip(inputs, predictions, references, strict=True):
        for ref in [refs] if isinstance(refs, str) else refs:
            flat_inputs.append(str(inp))
            flat_predictions.append(str(pred or ""))
            flat_references.append(str(ref))
    return compute_metrics(task, flat_inputs, flat_predictions, flat_references)


def per_row_scores(
    task: str, inputs: Sequence[str], predictions: Sequence[str], references: References
) -> list[dict[str, Any]]:
    """One dict per row (index, rougeL and task-specific figures) for worst-first tables."""
    get_task(task)
    check_lengths(inputs=inputs, predictions=predictions, references=references)
    rows: list[dict[str, Any]] = []
    ref_lists = as_ref_lists(references)
    for i, (inp, pred, refs) in enumerate(zip(inputs, predictions, ref_lists, strict=True)):
        row: dict[str, Any] = {"index": i, ROUGE_L.name: rouge_row(pred, refs)[ROUGE_L.name]}
        if task == TaskName.DATA_TO_TEXT:
            counts = slot_errors(parse_mr(inp), pred)
            row[SER.name] = counts.ser
            row[MISSING.name] = counts.missing
            row[WRONG.name] = counts.wrong
            row[HALLUCINATED.name] = counts.hallucinated
        elif task == TaskName.TEXT_TO_MR:
            gold, guess = parse_mr(refs[0]), try_parse_mr(pred)
            row["parsed"] = guess is not None
            row[EXACT_MATCH.name] = guess == gold
            row[SLOT_F1.name] = _prf(*_pair_counts(guess, gold))[2]
        rows.append(row)
    return rows
