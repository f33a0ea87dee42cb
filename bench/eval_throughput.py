"""Evaluation throughput: the evaluation step's code on the full ViGGO test split.

Runs `utils.evaluation.evaluator.evaluate_on_split` (what `evaluate_base` and
`evaluate_finetuned` run: load, generate, score) once per engine and prints one JSON line
per run with the wall time, the generation time, new tokens/s and the scores, e.g.

    python bench/eval_throughput.py
    python bench/eval_throughput.py --adapter DIR
    python bench/eval_throughput.py --engines continuous,generate
    python bench/eval_throughput.py --adapter DIR --set "evaluation.rerank={candidates: 8}"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.config import load_config  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.evaluation.evaluator import evaluate_on_split  # noqa: E402
from utils.modeling.loader import load_tokenizer  # noqa: E402
from utils.modeling.precision import default_device  # noqa: E402
from utils.modeling.resolve import resolve_model_path  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--model", help="base model id or folder (default: the config's)")
    p.add_argument("--adapter", type=Path, help="LoRA adapter folder (default: the base model)")
    p.add_argument("--engines", help="comma-separated (default: the config's engine)")
    p.add_argument("--split", default="test")
    p.add_argument("--max-samples", type=int, help="default: every row of the split")
    p.add_argument("--batch-size", type=int, help="default: the config's")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
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
        for engine in engines:
            evaluation.engine = engine.strip()
            start = time.perf_counter()
            metrics, _ = evaluate_on_split(
                Path(tmp),
                cfg.dataset.task,
                cfg.model.source().model_copy(update={"base_model_id": model_id}),
                evaluation,
                args.adapter,
                desc=f"eval {engine}",
            )
            wall = time.perf_counter() - start
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


if __name__ == "__main__":
    main()
