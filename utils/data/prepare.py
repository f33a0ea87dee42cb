"""Turn raw splits into the exact rows the model trains and is evaluated on.

The output folder holds `train.jsonl` / `validation.jsonl` (prompt, target, token ids and
labels) and `test.jsonl` (prompt and references), so training never re-tokenizes and
evaluation reads the very prompt text training used.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

from utils.config import DatasetSection
from utils.core.names import SPLITS, split_file
from utils.data.jsonl import write_jsonl
from utils.data.prompts import IGNORE_INDEX, build_prompt, encode_example, system_prompt_for
from utils.data.rows import load_task_splits


def _sample(rows: list[dict[str, Any]], limit: int | None, seed: int) -> list[dict[str, Any]]:
    if limit is None or limit >= len(rows):
        return rows
    return random.Random(seed).sample(rows, limit)


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
    cfg: DatasetSection, tokenizer: Any, out_dir: Path, seed: int = 0
) -> dict[str, Any]:
    """Write the prepared splits to `out_dir`; return metadata (sizes, lengths, samples)."""
    loaded = load_task_splits(cfg)
    splits = {split: rows.rows for split, rows in loaded.items()}
    system = system_prompt_for(cfg.task, cfg.system_prompt)
    limits = {"train": cfg.max_train_samples, "validation": cfg.max_validation_samples}
    meta: dict[str, Any] = {"split_sizes": {}, "token_lengths": {}, "task": cfg.task}
    meta["malformed_rows"] = {split: len(rows.skipped) for split, rows in loaded.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        rows = _sample(splits[split], limits.get(split), seed)
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
        if split == "train":
            meta["formatted_examples"] = [
                render_masked(tokenizer, r["input_ids"], r["labels"]) for r in prepared[:3]
            ]
    return meta
