"""Turn raw splits into the exact rows the model trains and is evaluated on.

The output folder holds `train.jsonl` / `validation.jsonl` (prompt, target, token ids and
labels) and `test.jsonl` (prompt and references), so training never re-tokenizes and
evaluation reads the very prompt text training used, and `data_report.json` (the data
report: `utils.data.report`). Training rows go through the opt-in cleaning steps, then
`train_fraction` and `max_train_samples`, then augmentation, then the synthetic rows (if
synthesize_data made any); validation and test are only sampled (validation) or kept whole
(test).
"""

from __future__ import annotations

import json
import logging
import random
import statistics
from pathlib import Path
from typing import Any

from utils.config import DatasetSection
from utils.core.names import SPLITS, SYNTHETIC, split_file
from utils.data.augment import augment_rows
from utils.data.cleaning import clean_train
from utils.data.jsonl import write_jsonl
from utils.data.prompts import IGNORE_INDEX, build_prompt, encode_example, system_prompt_for
from utils.data.report import build_report, length_histogram, report_headline, report_summary
from utils.data.rows import load_task_splits

logger = logging.getLogger(__name__)

# In the prepared folder, next to the splits: every section of the data report, as JSON.
DATA_REPORT_FILE = "data_report.json"


def _sample(rows: list[dict[str, Any]], limit: int | None, seed: int) -> list[dict[str, Any]]:
    if limit is None or limit >= len(rows):
        return rows
    return random.Random(seed).sample(rows, limit)


def take_fraction(rows: list[dict[str, Any]], fraction: float, seed: int) -> list[dict[str, Any]]:
    """A seeded share of `rows` in their original order; smaller shares are subsets of
    larger ones (one shuffled order, cut shorter), so a data curve adds rows as it grows."""
    if fraction >= 1.0:
        return rows
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    keep = sorted(order[: max(1, round(fraction * len(rows)))])
    return [rows[i] for i in keep]


def chosen_training_rows(
    splits: dict[str, list[dict[str, Any]]], cfg: DatasetSection, seed: int = 0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The training rows before augmentation (cleaned, cut down to `train_fraction` and
    `max_train_samples`), and what cleaning removed: also what synthetic MRs are drawn from."""
    train, cleaning = clean_train(splits["train"], splits["test"], cfg)
    train = take_fraction(train, cfg.train_fraction, seed)
    return _sample(train, cfg.max_train_samples, seed), cleaning


def training_rows(
    splits: dict[str, list[dict[str, Any]]],
    cfg: DatasetSection,
    report: dict[str, Any],
    seed: int,
    synthetic: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Cleaned, cut down to `train_fraction` / `max_train_samples`, augmented, then joined by
    the `synthetic` rows (synthesize_data's output); what cleaning removed, augmentation added
    and synthesis kept goes into `report`."""
    train, cleaning = chosen_training_rows(splits, cfg, seed)
    if cleaning:
        report["cleaning"] = cleaning
    if cfg.augment:
        added, report["augmentation"] = augment_rows(train, cfg)
        train = train + added
    if synthetic is not None:
        report[SYNTHETIC] = synthetic["summary"]
        train = train + synthetic["rows"]
    return train


def length_stats(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {}
    ordered = sorted(lengths)
    return {
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 1),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "max": ordered[-1],
    }


def render_masked(tokenizer: Any, input_ids: list[int], labels: list[int]) -> str:
    """The training text with the loss-masked part in [[MASKED: ...]] for inspection."""
    cut = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
    masked = tokenizer.decode(input_ids[:cut], skip_special_tokens=False)
    trained = tokenizer.decode(input_ids[cut:], skip_special_tokens=False)
    return f"[[MASKED: {masked}]]{trained}"


def prepare_dataset(
    cfg: DatasetSection,
    tokenizer: Any,
    out_dir: Path,
    seed: int = 0,
    synthetic: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the prepared splits to `out_dir`; return metadata (sizes, lengths, samples).
    `synthetic`: synthesize_data's rows and summary, for training only."""
    loaded = load_task_splits(cfg)
    splits = {split: rows.rows for split, rows in loaded.items()}
    system = system_prompt_for(cfg.task, cfg.system_prompt)
    meta: dict[str, Any] = {"split_sizes": {}, "token_lengths": {}, "task": cfg.task}
    meta["malformed_rows"] = {split: len(rows.skipped) for split, rows in loaded.items()}
    report = build_report(splits, cfg.task, cfg.near_duplicate_similarity)
    chosen = {
        "train": training_rows(splits, cfg, report, seed, synthetic),
        "validation": _sample(splits["validation"], cfg.max_validation_samples, seed),
        "test": splits["test"],
    }
    report["lengths"] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        rows = chosen[split]
        prepared = []
        for row in rows:
            prompt = build_prompt(tokenizer, row["input"], system, cfg.enable_thinking)
            item = dict(row, prompt=prompt)
            if split != "test":
                ex = encode_example(
                    tokenizer, row["input"], row["target"], system, cfg.max_length,
                    enable_thinking=cfg.enable_thinking,
                )  # fmt: skip
                item.update(ex)
            prepared.append(item)
        write_jsonl(prepared, out_dir / split_file(split))
        meta["split_sizes"][split] = len(prepared)
        if split != "test":
            total = [len(r["input_ids"]) for r in prepared]
            target = [sum(label != IGNORE_INDEX for label in r["labels"]) for r in prepared]
            meta["token_lengths"][split] = {
                "total": length_stats(total),
                "target": length_stats(target),
                "truncated_rows": sum(n >= cfg.max_length for n in total),
            }
            report["lengths"][split] = length_histogram(total, cfg.max_length)
        if split == "train":
            meta["formatted_examples"] = [
                render_masked(tokenizer, r["input_ids"], r["labels"]) for r in prepared[:3]
            ]
    (out_dir / DATA_REPORT_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=1))
    meta["data_report"] = report_summary(report)
    logger.info(report_headline(report))
    return meta
