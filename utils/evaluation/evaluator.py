"""Evaluate a base model or base + adapter on a prepared split: generate, then score."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

from utils.config import EvaluationSection, ModelSource
from utils.core.names import EVAL_SET, GENERATION_SECONDS, PEAK_MEMORY_MB, split_file
from utils.core.peak_memory import PeakMemory
from utils.core.tasks import NUM_ROWS, get_task
from utils.data.jsonl import read_jsonl
from utils.inference.decoder import Decoder
from utils.inference.stops import max_new_tokens_for
from utils.metrics.task_metrics import compute_metrics

logger = logging.getLogger(__name__)


def select_rows(rows: list[dict[str, Any]], max_samples: int | None) -> list[dict[str, Any]]:
    """All rows, or a fixed random subset (seeded: base and finetuned see the same rows).

    A random subset rather than the first N, because the split lists each MR's references
    next to each other and the first N rows would cover few distinct MRs.
    """
    if max_samples is None or max_samples >= len(rows):
        return rows
    picked = sorted(random.Random(0).sample(range(len(rows)), max_samples))
    return [rows[i] for i in picked]


def length_references(dataset_dir: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Targets that size `max_new_tokens`: the training split's, so the evaluated split's own
    answers never shape its generation; the evaluated references only without a train split."""
    train_file = dataset_dir / split_file("train")
    if train_file.is_file():
        targets = [r["target"] for r in read_jsonl(train_file)]
        if targets:
            return targets
    return [ref for r in rows for ref in r["references"]]


def evaluate_on_split(
    dataset_dir: Path,
    task: str,
    model_source: ModelSource,
    cfg: EvaluationSection,
    adapter_dir: Path | None = None,
    desc: str = "evaluate",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, one record per row) of `model_source` (+ `adapter_dir`) on `cfg.split`."""
    rows = select_rows(read_jsonl(dataset_dir / split_file(cfg.split)), cfg.max_samples)
    decoder = Decoder.load(model_source, cfg, task, adapter_dir)
    max_new = cfg.max_new_tokens or max_new_tokens_for(
        decoder.engine.tokenizer, length_references(dataset_dir, rows)
    )
    prompts, inputs = [r["prompt"] for r in rows], [r["input"] for r in rows]
    start = time.perf_counter()
    with PeakMemory() as peak:
        decoded = decoder.decode(prompts, inputs, max_new, desc=desc)
    generations, greedy_texts = decoded.generations, decoded.greedy_texts
    seconds = time.perf_counter() - start
    predictions = generations.texts
    targets = [r["target"] for r in rows]
    metrics = compute_metrics(task, inputs, predictions, targets)
    metrics.update(decoded.stats)
    if greedy_texts is not None:
        # What greedy decoding alone scored, next to the reranked figures.
        greedy = compute_metrics(task, inputs, greedy_texts, targets)
        metrics["greedy"] = {m.name: greedy[m.name] for m in get_task(task).metrics}
    metrics.update(
        {
            NUM_ROWS: len(rows),
            # Promotion only compares models scored on the same rows.
            EVAL_SET: f"{cfg.split}:{cfg.max_samples or 'all'}",
            GENERATION_SECONDS: round(seconds, 2),
            PEAK_MEMORY_MB: peak.mb,
            "rows_per_second": round(len(rows) / seconds, 3) if seconds else None,
            "max_new_tokens": max_new,
            "new_tokens": generations.new_tokens,
            "new_tokens_per_second": (
                round(generations.new_tokens / seconds, 1) if seconds else None
            ),
            "distinct_prompts": generations.distinct_prompts,
        }
    )
    records = [
        {
            "input": r["input"],
            "reference": r["target"],
            "references": r["references"],
            "prediction": p,
        }
        for r, p in zip(rows, predictions, strict=True)
    ]
    logger.info("%s on %d rows: %s", desc, len(rows), metrics)
    return metrics, records
