"""Memory of the `evaluate` step's decode, over time: resident set, glibc's heap, outputs.

Runs what the step runs (`utils.evaluation.evaluator.evaluate_on_split`) on the config's
evaluation split, in this process, with an RSS + `mallinfo2` sampler every `--interval`
seconds. Prints one JSON: the step's start, peak and end resident set, the heap at the
peak, the CPU seconds, the metrics, a digest of the predictions (compare two variants'
outputs without storing them), and with `--timeline` every sample. E.g.

    python bench/eval_memory.py --data-dir ../shared/data/viggo
    python bench/eval_memory.py --data-dir ../shared/data/viggo \\
        --set evaluation.memory_budget_mb=512 --adapter ADAPTER_DIR

`--set KEY=VALUE` overrides the config as run.py does; `--adapter` evaluates base + adapter
(the `evaluate_finetuned` step, with its reranking).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.config import load_config  # noqa: E402
from utils.core.heap_stats import heap_mb  # noqa: E402
from utils.core.peak_memory import high_water_mb, rss_mb  # noqa: E402


class Timeline:
    """(seconds, RSS MiB, heap in use MiB, heap free MiB) every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval, self.t0 = interval, time.time()
        self.samples: list[tuple[float, float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            h = heap_mb()
            self.samples.append(
                (
                    round(time.time() - self.t0, 2),
                    round(rss_mb(), 1),
                    h.get("heap_in_use_mb", 0.0),
                    h.get("heap_free_mb", 0.0),
                )
            )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--adapter", type=Path, help="evaluate base + this adapter")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--timeline", type=Path, help="write every sample here (JSON)")
    args = p.parse_args()

    import zenml  # noqa: F401  (the step runs with it loaded)

    from utils.data.prepare import prepare_dataset
    from utils.evaluation.evaluator import evaluate_on_split
    from utils.modeling.loader import load_tokenizer
    from utils.modeling.resolve import resolve_model_path

    cfg = load_config(args.config, args.overrides, None)
    cfg.dataset.data_dir = str(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        tokenizer = load_tokenizer(resolve_model_path(cfg.model.base_model_id))
        prepare_dataset(cfg.dataset, tokenizer, data, seed=cfg.training.seed)
        del tokenizer
        start_mb, cpu0 = rss_mb(), os.times()
        timeline = Timeline(args.interval)
        metrics, records = evaluate_on_split(
            data, cfg.dataset.task, cfg.model.source(), cfg.evaluation, args.adapter
        )
        timeline.stop()
    cpu1 = os.times()
    peak = max(timeline.samples, key=lambda s: s[1]) if timeline.samples else None
    digest = hashlib.sha256("\n".join(r["prediction"] for r in records).encode()).hexdigest()
    out: dict[str, Any] = {
        "overrides": args.overrides,
        "adapter": str(args.adapter) if args.adapter else None,
        "start_rss_mb": round(start_mb, 1),
        "peak_rss_mb_sampled": peak[1] if peak else None,
        "heap_at_peak_mb": {"in_use": peak[2], "free": peak[3]} if peak else None,
        "high_water_mb": round(high_water_mb(), 1),
        "end_rss_mb": round(rss_mb(), 1),
        "cpu_s": round(cpu1.user + cpu1.system - cpu0.user - cpu0.system, 1),
        "predictions_sha256": digest[:16],
        "metrics": {k: v for k, v in metrics.items() if not isinstance(v, dict | list)},
    }
    if args.timeline:
        args.timeline.write_text(json.dumps(timeline.samples))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
