"""A bounded load test of the served model on 127.0.0.1: N clients, M requests each.

    python bench/serve_load.py --stage staging --clients 4 --requests 25 --rows 1
    python bench/serve_load.py --url http://127.0.0.1:8000 ...   # a deployment already running

Without `--url` it deploys the version like `run.py serve` (same `--config` / `--set`, e.g.
`--set serving.max_batch_inputs=1` to turn cross-request batching off), measures, and stops
the deployment. Each client sends its requests one after another, each with `--rows` distinct
inputs (MRs of the ViGGO test split, or `--inputs-file`), and waits at most `--timeout`
seconds for each, so the run is bounded by clients x requests x timeout. Prints one JSON
object (and writes it to `--out`): requests/s, rows/s, latency p50/p95/p99, errors by kind,
whether every request was answered, and whether /health still answers afterwards.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.cli.common import add_version_args  # noqa: E402
from utils.core.names import HEALTH_PATH, INVOKE_PATH, SERVED_TEXTS  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_version_args(p)
    p.add_argument("--url", help="a running deployment (default: deploy one, stop it after)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--port", type=int)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--requests", type=int, default=10, help="per client")
    p.add_argument("--rows", type=int, default=1, help="inputs per request")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--warmup", type=int, default=1, help="requests before measuring")
    p.add_argument("--inputs-file", type=Path, help="one input per line (default: ViGGO test MRs)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    for name in ("clients", "requests", "rows"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def load_inputs(path: Path | None) -> list[str]:
    if path is not None:
        return [line for line in path.read_text().splitlines() if line.strip()]
    from utils.data.embedded import gem_rows

    # The distinct MRs of the test split, in order.
    return list(dict.fromkeys(r["meaning_representation"] for r in gem_rows("test")))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)  # nearest rank
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)], 3)


def run_load(
    url: str, inputs: list[str], clients: int, requests_each: int, rows: int, timeout: float
) -> dict[str, Any]:
    import requests

    invoke = url.rstrip("/") + INVOKE_PATH
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    answered = 0
    lock = threading.Lock()

    def client(c: int) -> None:
        nonlocal answered
        session = requests.Session()
        for r in range(requests_each):
            start = (c * requests_each + r) * rows  # distinct inputs across all requests
            batch = [inputs[(start + i) % len(inputs)] for i in range(rows)]
            t0 = time.perf_counter()
            kind = None
            try:
                reply = session.post(
                    invoke, json={"parameters": {"inputs": batch}}, timeout=timeout
                )
                body = reply.json() if reply.status_code == 200 else None
                if reply.status_code != 200:
                    kind = f"http {reply.status_code}"
                elif not body.get("success") or len(body["outputs"][SERVED_TEXTS]) != rows:
                    kind = "failed run"
            except requests.Timeout:
                kind = "timeout"
            except (requests.RequestException, ValueError) as e:
                kind = type(e).__name__
            seconds = time.perf_counter() - t0
            with lock:
                if kind is None:
                    answered += 1
                    latencies.append(seconds)
                else:
                    errors[kind] += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    total = clients * requests_each
    return {
        "clients": clients,
        "requests_per_client": requests_each,
        "rows_per_request": rows,
        "requests": total,
        "answered": answered,
        "errors": dict(errors),
        "nothing_lost": answered == total,
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(answered / wall, 3),
        "rows_per_second": round(answered * rows / wall, 3),
        "latency_seconds": {
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": round(max(latencies), 3) if latencies else None,
        },
    }


def healthy(url: str) -> bool:
    import requests

    try:
        return requests.get(url.rstrip("/") + HEALTH_PATH, timeout=10).status_code == 200
    except requests.RequestException:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inputs = load_inputs(args.inputs_file)
    served = None
    url = args.url
    if url is None:
        from utils.config import load_config
        from utils.serving.deployment import deploy

        cfg = load_config(args.config, args.set)
        served = deploy(args.model or cfg.model.name, args.stage, cfg, args.port)
        url = served.url
        print(f"deployed {served.description} at {url}", file=sys.stderr)
    try:
        if args.warmup:
            run_load(url, inputs, 1, args.warmup, args.rows, args.timeout)
        result = run_load(url, inputs, args.clients, args.requests, args.rows, args.timeout)
        result["healthy_after"] = healthy(url)
        result["url"] = url
        if served is not None:
            result["served"] = served.description
            result["settings"] = args.set
    finally:
        if served is not None:
            from utils.serving.deployment import stop

            stop(served.name)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if result["nothing_lost"] and result["healthy_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
