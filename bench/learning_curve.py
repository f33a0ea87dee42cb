"""Learning curve: quality against training time, from one training run of a config.

Trains the config once (the finetune step's `train_lora`) to the last of `--at` steps,
saving the adapter at each of them, then scores every saved adapter on a split with the
evaluation step's own code (`evaluate_on_split`: the config's decoding, reranking
included). Prints one JSON line per checkpoint and a table, and writes JSON + PNG
(ROUGE-L and SER against training minutes), e.g.

    python bench/learning_curve.py --at 60,120,240,480
    python bench/learning_curve.py --config configs/smollm2_cpu.yaml --split validation \\
        --set training.learning_rate=2e-3 --at 100,200,300 --name lr2e-3

The learning-rate schedule runs to the last checkpoint, so an earlier checkpoint is not
what a shorter run of its own would give (its rate has not decayed yet).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformers import TrainerCallback  # noqa: E402

from utils.config import load_config  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.evaluation.evaluator import evaluate_on_split  # noqa: E402
from utils.modeling.loader import load_tokenizer  # noqa: E402
from utils.modeling.resolve import resolve_model_path  # noqa: E402
from utils.training.train import train_lora  # noqa: E402

SHOWN = ("rougeL", "multiref_rougeL", "multiref_bleu", "ser", "exact_match", "slot_f1")


class SaveAt(TrainerCallback):
    """Saves the adapter at the given steps, with the training seconds spent to get there."""

    def __init__(self, steps: list[int], out: Path, tokenizer: Any) -> None:
        self.steps, self.out, self.tokenizer = set(steps), out, tokenizer
        self.saved: dict[int, tuple[Path, float]] = {}
        self._start = 0.0
        self._paused = 0.0

    def on_train_begin(self, args, state, control, **kw):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step not in self.steps:
            return
        begin = time.perf_counter()
        path = self.out / f"step-{state.global_step}"
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        self.saved[state.global_step] = (path, begin - self._start - self._paused)
        self._paused += time.perf_counter() - begin  # saving is not training


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--at", default="60,120,240,480", help="steps to score, comma-separated")
    p.add_argument("--split", default="test", choices=["test", "validation"])
    p.add_argument("--max-samples", type=int, help="default: every row of the split")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--name", default="learning_curve", help="file name of the JSON and PNG")
    p.add_argument("--keep", type=Path, help="keep the saved adapters in this folder")
    args = p.parse_args()

    steps = sorted({int(s) for s in args.at.split(",") if s.strip()})
    overrides = [
        *args.overrides,
        f"training.max_steps={steps[-1]}",
        "training.save_steps=null",
        "training.resume=never",
        f"evaluation.split={args.split}",
    ]
    if args.max_samples:
        overrides.append(f"evaluation.max_samples={args.max_samples}")
    cfg = load_config(args.config, overrides, str(args.data_dir))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer = load_tokenizer(resolve_model_path(cfg.model.base_model_id))
        prepare_dataset(cfg.dataset, tokenizer, work / "data")
        saver = SaveAt(steps, args.keep or work, tokenizer)
        summary = train_lora(cfg, work / "data", work / "final", callbacks=[saver])
        rows_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps
        for step in steps:
            path, seconds = saver.saved[step]
            start = time.perf_counter()
            metrics, _ = evaluate_on_split(
                work / "data",
                cfg.dataset.task,
                cfg.model.source(),
                cfg.evaluation,
                path,
                desc=f"step {step}",
            )
            row = {
                "step": step,
                "rows_seen": step * rows_per_step,
                "train_minutes": round(seconds / 60, 2),
                "eval_seconds": round(time.perf_counter() - start, 1),
                "split": metrics["eval_set"],
                "decoding": metrics.get("decoding"),
                **{k: round(metrics[k], 4) for k in SHOWN if k in metrics},
            }
            if "greedy" in metrics:
                row["greedy"] = {k: round(v, 4) for k, v in metrics["greedy"].items()}
            print(json.dumps(row), flush=True)
            results.append(row)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "config": str(args.config),
        "overrides": args.overrides,
        "tokens_seen": summary["tokens_seen"],
        "validation_history": summary.get("validation_history"),
        "checkpoints": results,
    }
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    _plot(results, args.out_dir / f"{args.name}.png", args.name)
    _table(results)


def _table(results: list[dict[str, Any]]) -> None:
    keys = [k for k in SHOWN if k in results[0]]
    greedy = [k for k in keys if k in results[0].get("greedy", {})]
    head = [*keys, *(f"{k} (greedy)" for k in greedy), "eval s"]
    print("\n| step | train min | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 2) + "|")
    for r in results:
        cells = [str(r["step"]), str(r["train_minutes"]), *(str(r[k]) for k in keys)]
        cells += [str(r["greedy"][k]) for k in greedy] + [str(r["eval_seconds"])]
        print("| " + " | ".join(cells) + " |")


def _plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    minutes = [r["train_minutes"] for r in results]
    for key in ("rougeL", "ser", "exact_match"):
        if key in results[0]:
            line = ax.plot(minutes, [r[key] for r in results], marker="o", label=key)
            if "greedy" in results[0] and key in results[0]["greedy"]:
                # The same checkpoints decoded greedily (reranking's starting point).
                ax.plot(
                    minutes, [r["greedy"][key] for r in results], marker=".", linestyle="--",
                    color=line[0].get_color(), label=f"{key}, greedy",
                )  # fmt: skip
    ax.set_xlabel("training minutes")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
