"""Memory of the `finetune` step's training, step by step: resident set, glibc's heap, CPU time.

Runs `utils.training.train.train_lora` (what the step runs) with the config's settings on
the first `--rows` prepared training rows, for `--steps` optimizer steps, in this process.
After every optimizer step it records the resident set (now and the maximum sampled every
20 ms during the step), glibc's own account of its heap (`mallinfo2`: bytes in use, free
bytes it holds, bytes in mmapped chunks), the batch's shape and the process's CPU time
(user + sys) for the step. Prints one JSON: the per-step rows, the loss history, the peak
and the mean CPU seconds per step. E.g.

    python bench/train_memory.py --data-dir ../shared/data/viggo --steps 40

`--set KEY=VALUE` overrides the config as run.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.config import load_config  # noqa: E402
from utils.core.heap_stats import heap_mb  # noqa: E402
from utils.core.peak_memory import high_water_mb, rss_mb  # noqa: E402


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class Sampler:
    """The maximum resident set since the last `take()`, sampled every 20 ms."""

    def __init__(self) -> None:
        self.max_mb = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.max_mb = max(self.max_mb, rss_mb())

    def take(self) -> float:
        out, self.max_mb = self.max_mb, rss_mb()
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def step_recorder(sampler: Sampler, shapes: list[tuple[int, ...]], log: Path | None) -> Any:
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self._cpu = cpu_seconds()
            self._log = log.open("w") if log else None

        def on_step_end(self, args, state, control, **kwargs):
            now = cpu_seconds()
            self.rows.append(
                {
                    "step": state.global_step,
                    "shape": list(shapes[-1]) if shapes else None,
                    "cpu_s": round(now - self._cpu, 3),
                    "rss_mb": round(rss_mb(), 1),
                    "max_rss_mb": round(sampler.take(), 1),
                    **heap_mb(),
                }
            )
            if self._log:  # as it goes: a run killed halfway still leaves its rows
                self._log.write(json.dumps(self.rows[-1]) + "\n")
                self._log.flush()
            self._cpu = now

    return Recorder()


def record_shapes(shapes: list[tuple[int, ...]]) -> None:
    """Each collated batch's (rows, prefix, rest) goes to `shapes`."""
    import utils.training.train as train_module

    make = train_module.make_collator

    def make_recording(*args: Any, **kwargs: Any) -> Any:
        collator = make(*args, **kwargs)

        def collate(features: list[dict[str, Any]]) -> Any:
            batch = collator(features)
            prefix = batch["prefix_ids"].shape[1] if "prefix_ids" in batch else 0
            shapes.append((*batch["input_ids"].shape[:1], prefix, batch["input_ids"].shape[1]))
            return batch

        collate.share_prefix = getattr(collator, "share_prefix", False)  # type: ignore[attr-defined]
        return collate

    train_module.make_collator = make_recording


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--rows", type=int, default=None, help="training rows (default: all)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--log", type=Path, help="write each step's row here as it ends (JSONL)")
    args = p.parse_args()

    import zenml  # noqa: F401  (the step runs with it loaded)

    from utils.data.prepare import prepare_dataset
    from utils.modeling.loader import load_tokenizer
    from utils.modeling.resolve import resolve_model_path
    from utils.training.train import train_lora

    cfg = load_config(args.config, args.overrides, None)
    cfg.dataset.data_dir = str(args.data_dir)
    if args.rows:
        cfg.dataset.max_train_samples = args.rows
    cfg.training.max_steps = args.steps
    cfg.training.resume = "never"
    shapes: list[tuple[int, ...]] = []
    record_shapes(shapes)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_tokenizer(resolve_model_path(cfg.model.base_model_id))
        prepare_dataset(cfg.dataset, tokenizer, Path(tmp) / "data", seed=cfg.training.seed)
        del tokenizer
        start_mb, cpu0 = rss_mb(), cpu_seconds()
        sampler = Sampler()
        recorder = step_recorder(sampler, shapes, args.log)
        summary = train_lora(cfg, Path(tmp) / "data", Path(tmp) / "adapter", [recorder])
        sampler.stop()
    rows = recorder.rows
    steady = [r["cpu_s"] for r in rows[1:]]  # the first step also pays warm-up
    out = {
        "steps": len(rows),
        "start_rss_mb": round(start_mb, 1),
        "peak_rss_mb": round(max([high_water_mb(), *(r["max_rss_mb"] for r in rows)]), 1),
        "max_step_rss_mb": max(r["max_rss_mb"] for r in rows),
        "cpu_s_total": round(cpu_seconds() - cpu0, 1),
        "cpu_s_per_step": round(sum(steady) / max(len(steady), 1), 3),
        "train_loss": summary["loss_history"]["train_loss"],
        "eval_loss": summary["final_eval_loss"],
        "per_step": rows,
    }
    text = json.dumps(out)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
