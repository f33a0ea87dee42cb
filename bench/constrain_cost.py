"""Cost of grammar-constrained decoding (`evaluation.constrain`): the same rows decoded
without and with the constraint, alternately, on one loaded model, through the evaluation's
own decode path (`Decoder.decode`: each row's grammar is built inside the timed span).

    python bench/constrain_cost.py                      # text_to_mr, constrain: mr, 48 rows
    python bench/constrain_cost.py --adapter DIR --rows 300
    python bench/constrain_cost.py --set dataset.task=text_to_text \\
        --set 'evaluation.constrain={regex: "[A-Z][^.]*[.]"}'

Prints one JSON line: per mode rows/s, CPU seconds per row, new tokens and ms per new token
(medians over `--repeats` alternating passes, so a neighbour's load hits both alike), the
ratios constrained / unconstrained, and for text_to_mr the parse rate both ways. The
per-token ratio is the mask's overhead; the per-row ratio also counts that a grammar ends a
row when its MR closes, where an unconstrained row may ramble on. One-time costs (the
tokenizer's token trie, learning the MR schema) are warmed up before timing and printed
apart (`setup_seconds`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.cli.common import add_model_source_args  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.core.names import split_file  # noqa: E402
from utils.core.tasks import TaskName  # noqa: E402
from utils.data.jsonl import read_jsonl  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.evaluation.evaluator import length_references, select_rows  # noqa: E402
from utils.inference.decoder import Decoder  # noqa: E402
from utils.inference.stops import max_new_tokens_for  # noqa: E402
from utils.modeling.loader import load_tokenizer  # noqa: E402
from utils.modeling.resolve import resolve_model_path  # noqa: E402
from utils.viggo import try_parse_mr  # noqa: E402

DEFAULTS = ["dataset.task=text_to_mr", "evaluation.constrain=mr"]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def timed(decoder: Decoder, prompts: list[str], inputs: list[str], max_new: int) -> dict:
    start, cpu_start = time.perf_counter(), time.process_time()
    out = decoder.decode(
        prompts, inputs, max_new, desc="constrained" if decoder.constrain else "free"
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    gens = out.generations
    return {"wall": wall, "cpu": cpu, "tokens": gens.new_tokens, "texts": gens.texts}


def summary(runs: list[dict], rows: int, task: str) -> dict[str, Any]:
    wall = statistics.median(r["wall"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    tokens = runs[0]["tokens"]
    out = {
        "rows_per_second": round(rows / wall, 3),
        "wall_seconds": round(wall, 2),
        "cpu_seconds_per_row": round(cpu / rows, 3),
        "new_tokens": tokens,
        "wall_ms_per_token": round(1000 * wall / tokens, 2),
        "cpu_ms_per_token": round(1000 * cpu / tokens, 2),
    }
    if task == TaskName.TEXT_TO_MR:
        parsed = sum(try_parse_mr(t) is not None for t in runs[0]["texts"])
        out["parse_rate"] = round(parsed / rows, 3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_source_args(p)
    p.add_argument("--split", default="test")
    p.add_argument("--rows", type=int, default=48, help="seeded subset of the split")
    p.add_argument("--repeats", type=int, default=2, help="alternating passes per mode")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    cfg = load_config(args.config, DEFAULTS + args.overrides, str(args.data_dir))
    if cfg.evaluation.constrain is None:
        raise SystemExit("evaluation.constrain is null: nothing to compare")
    model_id = args.model or cfg.model.base_model_id
    task = cfg.dataset.task
    evaluation = cfg.evaluation.model_copy(update={"split": args.split})
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_tokenizer(str(args.adapter or resolve_model_path(model_id)))
        prepare_dataset(cfg.dataset, tokenizer, Path(tmp))
        all_rows = read_jsonl(Path(tmp) / split_file(args.split))
        rows = select_rows(all_rows, args.rows)
        source = cfg.model.source().model_copy(update={"base_model_id": model_id})
        constrained = Decoder.load(source, evaluation, task, args.adapter, rerank=False)
        free = dataclasses.replace(constrained, constrain=None)
        max_new = evaluation.max_new_tokens or max_new_tokens_for(
            tokenizer, length_references(Path(tmp), all_rows)
        )
    # Distinct prompts: greedy decodes each once, and rows/s should count decoded rows.
    by_prompt = {r["prompt"]: r["input"] for r in rows}
    prompts, inputs = list(by_prompt), list(by_prompt.values())
    start = time.perf_counter()
    for decoder in (free, constrained):  # warm-up: kernels, token trie, MR schema
        timed(decoder, prompts[:2], inputs[:2], max_new)
    setup = time.perf_counter() - start
    runs: dict[str, list[dict]] = {"unconstrained": [], "constrained": []}
    for _ in range(args.repeats):
        runs["unconstrained"].append(timed(free, prompts, inputs, max_new))
        runs["constrained"].append(timed(constrained, prompts, inputs, max_new))
    free_s, con_s = (summary(runs[k], len(prompts), task) for k in runs)
    ratio = {
        f"{what}_ratio": round(con_s[key] / free_s[key], 3)
        for what, key in (
            ("wall_per_row", "wall_seconds"),
            ("cpu_per_row", "cpu_seconds_per_row"),
            ("wall_per_token", "wall_ms_per_token"),
            ("cpu_per_token", "cpu_ms_per_token"),
        )
    }
    print(
        json.dumps(
            {
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "threads": torch.get_num_threads(),
                "model": model_id,
                "adapter": str(args.adapter) if args.adapter else None,
                "task": task,
                "constrain": evaluation.model_dump()["constrain"],
                "engine": evaluation.engine,
                "batch_size": evaluation.batch_size,
                "rows": len(prompts),
                "max_new_tokens": max_new,
                "repeats": args.repeats,
                "setup_seconds": round(setup, 1),
                "unconstrained": free_s,
                "constrained": con_s,
                **ratio,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
