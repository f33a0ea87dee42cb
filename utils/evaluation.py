"""Evaluate a base model or base + adapter on a prepared split: generate, then score."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

from utils.config import EvaluationSection
from utils.data import read_jsonl
from utils.generation import generate, max_new_tokens_for
from utils.metrics import compute_metrics
from utils.models import default_device, load_model, load_tokenizer, resolve_model_path

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
    train_file = dataset_dir / "train.jsonl"
    if train_file.is_file():
        targets = [r["target"] for r in read_jsonl(train_file)]
        if targets:
            return targets
    return [ref for r in rows for ref in r["references"]]


def load_for_eval(
    base_model_id: str,
    adapter_dir: Path | None,
    quantization: str,
    dtype: str,
    trust_remote_code: bool,
    token: str | None = None,
    allow_pickle_weights: bool = False,
) -> tuple[Any, Any]:
    path = resolve_model_path(base_model_id)
    # The adapter folder carries the tokenizer it was trained with.
    tokenizer = load_tokenizer(
        str(adapter_dir or path), trust_remote_code, padding_side="left", token=token
    )
    model = load_model(
        path,
        quantization,
        dtype,
        default_device(),
        trust_remote_code,
        token=token,
        allow_pickle_weights=allow_pickle_weights,
    )
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
        if quantization == "none":
            # Merged weights generate at base-model speed.
            model = model.merge_and_unload()
    return model, tokenizer


def evaluate_on_split(
    dataset_dir: Path,
    cfg: EvaluationSection,
    task: str,
    base_model_id: str,
    adapter_dir: Path | None = None,
    quantization: str = "none",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    desc: str = "evaluate",
    token: str | None = None,
    allow_pickle_weights: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = select_rows(read_jsonl(dataset_dir / f"{cfg.split}.jsonl"), cfg.max_samples)
    model, tokenizer = load_for_eval(
        base_model_id,
        adapter_dir,
        quantization,
        dtype,
        trust_remote_code,
        token=token,
        allow_pickle_weights=allow_pickle_weights,
    )
    max_new = cfg.max_new_tokens or max_new_tokens_for(
        tokenizer, length_references(dataset_dir, rows)
    )
    start = time.perf_counter()
    generations = generate(
        model,
        tokenizer,
        [r["prompt"] for r in rows],
        cfg.batch_size,
        max_new,
        desc,
        engine=cfg.engine,
        stop_at_newline=cfg.stop_at_newline,
    )
    seconds = time.perf_counter() - start
    predictions = generations.texts
    metrics = compute_metrics(
        task,
        [r["input"] for r in rows],
        predictions,
        [r["target"] for r in rows],
    )
    metrics.update(
        {
            "num_rows": len(rows),
            # Promotion only compares models scored on the same rows.
            "eval_set": f"{cfg.split}:{cfg.max_samples or 'all'}",
            "generation_seconds": round(seconds, 2),
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
