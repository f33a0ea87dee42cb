"""Evaluation throughput: the evaluation step's code on the full ViGGO test split.

Runs `utils.evaluation.evaluator.evaluate_on_split` (what `evaluate_base` and
`evaluate_finetuned` run: load, generate, score) once per engine and prints one JSON line
per run with the wall time, the generation time, new tokens/s and the scores, e.g.

    python bench/eval_throughput.py
    python bench/eval_throughput.py --adapter DIR
    python bench/eval_throughput.py --engines continuous,generate
    python bench/eval_throughput.py --adapter DIR --set "evaluation.rerank={candidates: 8}"
    python bench/eval_throughput.py --max-samples 300 --predictions preds.jsonl
    python bench/eval_throughput.py --batch-1 8    # serving's case: one MR per decode

`cpu_seconds` is the process's CPU time (user + system) for the same span as
`wall_seconds`: on a shared machine it moves less than the wall time. `--predictions`
writes each row's input and prediction (compare two versions of the engine with `diff`).
`--batch-1 N` decodes the first N distinct prompts of the split one at a time, greedily,
after one warm-up decode, and prints ms per generated token (prefill included).
"""

from __future__ import annotations

import argparse
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
from utils.data.jsonl import read_jsonl, write_jsonl  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.evaluation.evaluator import evaluate_on_split, length_references  # noqa: E402
from utils.inference.decoder import Decoder  # noqa: E402
from utils.inference.stops import max_new_tokens_for  # noqa: E402
from utils.modeling.loader import load_tokenizer  # noqa: E402
from utils.modeling.precision import default_device  # noqa: E402
from utils.modeling.resolve import resolve_model_path  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_source_args(p)
    p.add_argument("--engines", help="comma-separated (default: the config's engine)")
    p.add_argument("--split", default="test")
    p.add_argument("--max-samples", type=int, help="default: every row of the split")
    p.add_argument("--batch-size", type=int, help="default: the config's")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--predictions", type=Path, help="write one JSON line per row here")
    p.add_argument("--batch-1", dest="batch_1", type=int, metavar="N", help="see above")
    args = p.parse_args()

    cfg = load_config(args.config, args.overrides, str(args.data_dir))
    model_id = args.model or cfg.model.base_model_id
    evaluation = cfg.evaluation.model_copy(
        update={"split": args.split, "max_samples": args.max_samples}
    )
    if args.batch_size:
        evaluation.batch_size = args.batch_size
    engines = (args.engines or evaluation.engine).split(",")
    with tempfile.TemporaryDirectory() as tmp:
        # The rows exactly as prepare_data writes them (prompt text included; the training
        # targets size max_new_tokens).
        tokenizer = load_tokenizer(str(args.adapter or resolve_model_path(model_id)))
        prepare_dataset(cfg.dataset, tokenizer, Path(tmp))
        source = cfg.model.source().model_copy(update={"base_model_id": model_id})
        if args.batch_1:
            for engine in engines:
                evaluation.engine = engine.strip()
                print(json.dumps(batch_1(Path(tmp), source, evaluation, cfg, args)), flush=True)
            return
        for engine in engines:
            evaluation.engine = engine.strip()
            start, cpu_start = time.perf_counter(), time.process_time()
            metrics, records = evaluate_on_split(
                Path(tmp),
                cfg.dataset.task,
                source,
                evaluation,
                args.adapter,
                desc=f"eval {engine}",
            )
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if args.predictions:
                write_jsonl(
                    [{"input": r["input"], "prediction": r["prediction"]} for r in records],
                    args.predictions,
                )
            device = default_device()
            print(
                json.dumps(
                    {
                        "device": torch.cuda.get_device_name()
                        if device == "cuda"
                        else f"cpu x{os.cpu_count()}",
                        "model": model_id,
                        "adapter": str(args.adapter) if args.adapter else None,
                        "engine": evaluation.engine,
                        "stop_at_newline": evaluation.stop_at_newline,
                        "batch_size": evaluation.batch_size,
                        "rows": metrics["num_rows"],
                        "distinct_prompts": metrics["distinct_prompts"],
                        "wall_seconds": round(wall, 1),
                        "cpu_seconds": round(cpu, 1),
                        "threads": torch.get_num_threads(),
                        "generation_seconds": metrics["generation_seconds"],
                        "new_tokens": metrics["new_tokens"],
                        "new_tokens_per_second": metrics["new_tokens_per_second"],
                        "max_new_tokens": metrics["max_new_tokens"],
                        "decoding": metrics["decoding"],
                        **{
                            k: round(metrics[k], 4)
                            for k in ("rougeL", "multiref_rougeL", "multiref_bleu", "ser")
                            if k in metrics
                        },
                        **{k: v for k, v in metrics.items() if k.startswith("rerank_")},
                        "greedy_seconds": metrics.get("greedy_seconds"),
                        "greedy": metrics.get("greedy"),
                    }
                ),
                flush=True,
            )


def batch_1(
    dataset_dir: Path, source: Any, evaluation: Any, cfg: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """ms per token of greedy decodes of one prompt each (serving's case)."""
    rows = read_jsonl(dataset_dir / split_file(evaluation.split))
    prompts = list(dict.fromkeys(r["prompt"] for r in rows))[: args.batch_1]
    decoder = Decoder.load(source, evaluation, cfg.dataset.task, args.adapter, rerank=False)
    max_new = evaluation.max_new_tokens or max_new_tokens_for(
        decoder.engine.tokenizer, length_references(dataset_dir, rows)
    )
    decoder.engine.generate(prompts[:1], batch_size=1, max_new_tokens=max_new)  # warm-up
    tokens, walls, cpus = 0, [], []
    for prompt in prompts:
        start, cpu_start = time.perf_counter(), time.process_time()
        out = decoder.engine.generate([prompt], batch_size=1, max_new_tokens=max_new)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu_start)
        tokens += out.new_tokens
    return {
        "mode": "batch-1",
        "engine": evaluation.engine,
        "threads": torch.get_num_threads(),
        "prompts": len(prompts),
        "new_tokens": tokens,
        "max_new_tokens": max_new,
        "wall_ms_per_token": round(1000 * sum(walls) / tokens, 1),
        "cpu_ms_per_token": round(1000 * sum(cpus) / tokens, 1),
        "wall_p50_seconds": round(statistics.median(walls), 3),
        "wall_seconds": round(sum(walls), 2),
        "cpu_seconds": round(sum(cpus), 2),
    }


if __name__ == "__main__":
    main()
