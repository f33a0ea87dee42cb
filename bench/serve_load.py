"""A bounded load test of the served model on 127.0.0.1, at several concurrencies, for the
fast path and for `serving.record=every` (a pipeline run per request), in one JSON.

    python bench/serve_load.py --stage staging --concurrency 1 8 --requests 40 \\
        --out bench/results/serve_load.json
    python bench/serve_load.py --stage staging --set serving.rerank=false --record sampled
    python bench/serve_load.py --url http://127.0.0.1:8000 --key KEY ...  # already running

Without `--url` it deploys the version like `run.py serve` (same `--config` / `--set`) once
per `--record` mode, measures, and stops the deployment. At concurrency C, C clients send
`--requests` requests in all (each waits for its answer before sending the next), each
with `--rows` distinct inputs (MRs of the ViGGO test split, or `--inputs-file`), and each
waits at most `--timeout` seconds, so a run is bounded. Per level: latency p50/p95/p99,
inputs/s, errors by status, whether every request was answered; per mode: /health after
and the service process's peak RSS (sampled every 0.2 s; local deployer).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
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

RECORD_MODES = ("sampled", "every")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_version_args(p)
    p.add_argument("--url", help="a running deployment (default: deploy one, stop it after)")
    p.add_argument("--key", help="its bearer key (with --url)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--port", type=int)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    p.add_argument("--requests", type=int, default=40, help="per concurrency level, in all")
    p.add_argument("--rows", type=int, default=1, help="inputs per request")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--warmup", type=int, default=2, help="requests before measuring")
    p.add_argument(
        "--record",
        nargs="+",
        choices=RECORD_MODES,
        default=list(RECORD_MODES),
        help="serving.record modes to measure, one deployment each (ignored with --url)",
    )
    p.add_argument("--inputs-file", type=Path, help="one input per line (default: ViGGO test MRs)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    for name in ("requests", "rows"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if min(args.concurrency) < 1:
        p.error("--concurrency values must be at least 1")
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
    url: str,
    headers: dict[str, str],
    inputs: list[str],
    clients: int,
    total: int,
    rows: int,
    timeout: float,
    offset: int = 0,
) -> dict[str, Any]:
    import requests

    invoke = url.rstrip("/") + INVOKE_PATH
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    answered = 0
    lock = threading.Lock()
    next_request = iter(range(total))

    def client() -> None:
        nonlocal answered
        session = requests.Session()
        while True:
            with lock:
                r = next(next_request, None)
            if r is None:
                return
            start = offset + r * rows  # distinct inputs across all requests
            batch = [inputs[(start + i) % len(inputs)] for i in range(rows)]
            t0 = time.perf_counter()
            kind = None
            try:
                reply = session.post(
                    invoke, json={"parameters": {"inputs": batch}}, headers=headers, timeout=timeout
                )
                if reply.status_code != 200:
                    kind = f"http {reply.status_code}"
                else:
                    body = reply.json()
                    if not body.get("success") or len(body["outputs"][SERVED_TEXTS]) != rows:
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

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "concurrency": clients,
        "requests": total,
        "rows_per_request": rows,
        "answered": answered,
        "errors": dict(errors),
        "nothing_lost": answered == total,
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(answered / wall, 3),
        "inputs_per_second": round(answered * rows / wall, 3),
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


class PeakRSS:
    """The service process's peak resident memory (with its children), sampled."""

    def __init__(self, pid: int | None, every_s: float = 0.2) -> None:
        self.peak = 0
        self._pid = pid
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self._pid)
        except psutil.Error:
            return
        while not self._stop.wait(self._every_s):
            try:
                rss = proc.memory_info().rss + sum(
                    c.memory_info().rss for c in proc.children(recursive=True)
                )
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)

    def __enter__(self) -> PeakRSS:
        if self._pid:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @property
    def mb(self) -> float | None:
        return round(self.peak / 2**20, 1) if self.peak else None


def _service_pid(name: str) -> int | None:
    from zenml.client import Client

    meta = Client().get_deployment(name).deployment_metadata or {}
    pid = meta.get("pid")
    return int(pid) if pid else None


def measure(url: str, headers: dict[str, str], args: argparse.Namespace, pid: int | None):
    inputs = load_inputs(args.inputs_file)
    with PeakRSS(pid) as rss:
        if args.warmup:
            run_load(url, headers, inputs, 1, args.warmup, args.rows, args.timeout, offset=10**6)
        levels = [
            run_load(url, headers, inputs, c, args.requests, args.rows, args.timeout)
            for c in args.concurrency
        ]
    return {"levels": levels, "healthy_after": healthy(url), "peak_rss_mb": rss.mb}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {_cpu_name()}, {_cores()} cores",
        "settings": args.set,
    }
    if args.url:
        headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
        result["url"] = {"url": args.url, **measure(args.url, headers, args, None)}
    else:
        from pipelines.inference import build_inference_pipeline
        from utils.config import load_config
        from utils.serving.deployment import deploy, stop

        for mode in args.record:
            cfg = load_config(args.config, [*args.set, f"serving.record={mode}"])
            served = deploy(
                args.model or cfg.model.name, args.stage, cfg, build_inference_pipeline, args.port
            )
            print(f"deployed {served.description} at {served.url} (record={mode})", file=sys.stderr)
            try:
                measured = measure(served.url, served.headers, args, _service_pid(served.name))
                result[f"record={mode}"] = {"served": served.description, **measured}
            finally:
                stop(served.name)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    runs = [v for k, v in result.items() if isinstance(v, dict) and "levels" in v]
    ok = all(r["healthy_after"] and all(lv["nothing_lost"] for lv in r["levels"]) for r in runs)
    return 0 if ok else 1


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
