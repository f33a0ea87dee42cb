"""The service's decoding side alone: closed-loop clients on the `Batcher` in this process,
no HTTP, no load generator sharing the cores through sockets. Separates what the engine
and the batching policy give from what `bench/serve_load.py` measures through the
deployment, and says where the model's time went (prefills, decode steps, speculative
steps).

    python bench/batcher_load.py --adapter DIR --concurrency 8 --requests 40
    python bench/batcher_load.py --adapter DIR --set serving.continuous_batching=false

One MR of the test split per request, in order; each client sends its next request when
its last one is answered. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.config import ServingSection, load_config
from utils.data.embedded import gem_rows
from utils.inference.adapters import AdapterGenerator
from utils.serving.batcher import Batcher
from utils.serving.served_model import set_torch_threads


def _timed_forward(model: Any, spent: collections.Counter) -> None:
    """Count the model's forward passes by kind: a prefill feeds a prompt, a step one
    token per row, a speculative step a few per row."""
    forward = model.forward

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = forward(*args, **kwargs)
        rows, fed = kwargs["input_ids"].shape
        kind = "step" if fed == 1 else "speculative" if fed <= 16 else "prefill"
        spent[f"{kind}_s"] += time.perf_counter() - start
        spent[f"{kind}_calls"] += 1
        spent[f"{kind}_rows"] += rows
        return out

    model.forward = timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", required=True, type=Path)
    p.add_argument("--config", default="configs/smollm2_cpu.yaml")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="serving.* keys, e.g. serving.continuous_batching=false")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--requests", type=int, default=40)
    args = p.parse_args()

    cfg = load_config(args.config, data_dir=args.data_dir)
    serving: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if not key.startswith("serving."):
            p.error(f"--set {item}: only serving.* keys")
        serving[key.removeprefix("serving.")] = json.loads(value)
    limits = ServingSection.model_validate(serving)
    mrs = list(dict.fromkeys(r["meaning_representation"] for r in gem_rows("test")))
    loaded: list[AdapterGenerator] = []

    def setup() -> Any:
        set_torch_threads(limits.torch_threads)
        loaded.append(AdapterGenerator.load(cfg, args.adapter, rerank=limits.rerank))
        return loaded[0].rolling() if limits.continuous_batching else None

    batcher = Batcher(
        lambda inputs: loaded[0].generate(inputs), limits.max_batch_inputs,
        limits.batch_window_ms / 1000, setup=setup,
    )  # fmt: skip
    batcher.ready()
    for mr in mrs[-2:]:  # warm up on inputs the clients do not send
        batcher([mr])
    spent: collections.Counter = collections.Counter()
    _timed_forward(loaded[0].decoder.engine.model, spent)

    todo = iter(mrs[: args.requests])
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                mr = next(todo, None)
            if mr is None:
                return
            start = time.perf_counter()
            batcher([mr], timeout=600)
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    clients = [threading.Thread(target=client) for _ in range(args.concurrency)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    wall = time.perf_counter() - start
    latencies.sort()

    def q(f: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(f * len(latencies)))], 3)

    print(json.dumps({
        "settings": args.set, "concurrency": args.concurrency, "requests": len(latencies),
        "inputs_per_second": round(len(latencies) / wall, 3),
        "latency_seconds": {"p50": round(statistics.median(latencies), 3), "p95": q(0.95),
                            "max": round(latencies[-1], 3)},
        "forward_passes": {k: round(v, 2) for k, v in sorted(spent.items())},
        "wall_seconds": round(wall, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
