"""Memory footprint of a pipeline run: `run.py` under an RSS sampler, one JSON out.

Runs `python run.py --config ... [--data-dir ...] [--set ...]` as a child process, samples the
resident set of it and its children (Accelerate ranks) every `--interval` seconds, then reads
each step's start and end from the ZenML run and prints one JSON object: peak RSS per step
(MiB), the whole-run peak (the sampler's and the kernel's, which is what `/usr/bin/time -v`
reports), and wall time per step. `--plot` writes the timeline as a PNG, steps shaded.

    python bench/footprint.py --data-dir ../shared/data/viggo
    python bench/footprint.py --data-dir ../shared/data/viggo \\
        --set training.max_steps=10 --set evaluation.max_samples=32 --plot docs/footprint.png
    python bench/footprint.py --config configs/smollm2_cpu_quality.yaml --data-dir ...
    python bench/footprint.py --data-dir ... --grid training.learning_rate=1e-3,2e-3,3e-3

`--grid` runs `run.py sweep` instead: one process for every variant, and the JSON's `runs`
holds each variant's steps, so growth from one variant to the next shows.

ZenML runs in a fresh store under a temporary ZENML_CONFIG_PATH (no cache hits, nothing
written to yours) unless `--keep-store` is given, which uses the environment's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


class TreeSampler:
    """RSS of a process and its descendants, every `interval` seconds, in a thread."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []  # (unix time, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="footprint", daemon=True)

    def _rss(self) -> float | None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total / MIB

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._rss()
            if rss is not None:
                self.samples.append((time.time(), rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _unix(dt: datetime) -> float:
    # ZenML stores naive UTC datetimes.
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def step_windows(run_name: str) -> list[dict[str, Any]]:
    """(name, start, end) of each step of `run_name`, in the order they ran."""
    from zenml.client import Client

    run = Client().get_pipeline_run(run_name)
    out = []
    for name, step in run.steps.items():
        if step.start_time is None or step.end_time is None:
            continue
        out.append({"step": name, "start": _unix(step.start_time), "end": _unix(step.end_time)})
    return sorted(out, key=lambda s: s["start"])


def store_runs() -> list[str]:
    """Names of every pipeline run in the active ZenML store, oldest first."""
    from zenml.client import Client

    runs = Client().list_pipeline_runs(sort_by="asc:created", size=1000)
    return [r.name for r in runs.items]


def summarize(
    samples: list[tuple[float, float]], steps: list[dict[str, Any]], t0: float
) -> dict[str, Any]:
    per_step = {}
    for s in steps:
        inside = [mb for t, mb in samples if s["start"] <= t <= s["end"]]
        before = [mb for t, mb in samples if t <= s["start"]]
        start_mb = before[-1] if before else (inside[0] if inside else None)
        peak = max(inside) if inside else None
        per_step[s["step"]] = {
            "peak_rss_mb": round(peak, 1) if peak is not None else None,
            "start_rss_mb": round(start_mb, 1) if start_mb is not None else None,
            "peak_above_start_mb": (
                round(peak - start_mb, 1) if peak is not None and start_mb is not None else None
            ),
            "wall_s": round(s["end"] - s["start"], 2),
            "starts_at_s": round(s["start"] - t0, 2),
        }
    return per_step


def plot(
    samples: list[tuple[float, float]], steps: list[dict[str, Any]], t0: float, out: Path,
    title: str,
) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=120)
    colors = ["#dbe9f6", "#fde7d1", "#dcf0dc", "#f3dcef", "#eeeeee", "#fff4c2"]
    top = max(mb for _, mb in samples) / 1024
    for i, s in enumerate(steps):
        ax.axvspan(s["start"] - t0, s["end"] - t0, color=colors[i % len(colors)], lw=0)
        ax.text(
            (s["start"] + s["end"]) / 2 - t0, top * 1.04, s["step"].replace("_", "\n"),
            ha="center", va="bottom", fontsize=7,
        )  # fmt: skip
    ax.plot([t - t0 for t, _ in samples], [mb / 1024 for _, mb in samples], color="#1f4e79")
    ax.set_ylim(0, top * 1.25)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("resident set (GiB)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--data-dir", help="passed to run.py")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    p.add_argument("--plot", type=Path, metavar="PNG", help="write the memory timeline here")
    p.add_argument("--samples", type=Path, metavar="JSON", help="write every sample here")
    p.add_argument("--keep-store", action="store_true", help="use the environment's ZenML store")
    p.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2",
        help="run `run.py sweep` with this grid (repeatable): every variant in one process",
    )  # fmt: skip
    args, extra = p.parse_known_args()

    cmd = [sys.executable, str(ROOT / "run.py"), *(["sweep"] if args.grid else [])]
    cmd += ["--config", str(args.config)]
    for g in args.grid:
        cmd += ["--grid", g]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    for o in args.overrides:
        cmd += ["--set", o]
    cmd += extra
    env = dict(os.environ)
    tmp = None
    if not args.keep_store:
        tmp = tempfile.TemporaryDirectory(prefix="footprint-zenml-")
        env["ZENML_CONFIG_PATH"] = tmp.name
        os.environ["ZENML_CONFIG_PATH"] = tmp.name  # for reading the run afterwards
    env.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    t0 = time.time()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    with TreeSampler(child.pid, args.interval) as sampler:
        assert child.stdout is not None
        for line in child.stdout:
            sys.stderr.write(line)  # the run's own output, kept out of the JSON
            lines.append(line)
        _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    found = [m.group(1) for line in lines if (m := re.match(r"run (\S+)", line.strip()))]
    # A sweep prints no run names; the fresh store holds this command's runs and no others.
    names = list(dict.fromkeys(found)) if args.keep_store else store_runs()
    windows = {n: step_windows(n) for n in names} if code == 0 else {}
    steps = [w for n in names for w in windows.get(n, [])]
    samples = sampler.samples
    result: dict[str, Any] = {
        "command": " ".join(cmd[1:]),
        "cpu": _cpu_name(),
        "interval_s": args.interval,
        "wall_s": round(wall, 1),
        # The kernel's high-water mark of run.py (what /usr/bin/time -v reports).
        "peak_rss_mb_kernel": round(usage.ru_maxrss / 1024, 1),
        "peak_rss_mb_sampled": round(max(mb for _, mb in samples), 1) if samples else None,
        "steps": summarize(samples, windows[names[-1]], t0) if windows else {},
    }
    if len(windows) > 1:
        result["runs"] = {n: summarize(samples, w, t0) for n, w in windows.items()}
    if code != 0:
        # Still the timeline: a run killed for memory is what this tool is for.
        result["error"] = f"run.py exited with {code}" + (" (killed)" if code < 0 else "")
    if args.samples:
        args.samples.parent.mkdir(parents=True, exist_ok=True)
        args.samples.write_text(
            json.dumps({"t0": t0, "steps": steps, "samples": samples}, indent=None)
        )
    if args.plot and samples:
        peak = result["peak_rss_mb_kernel"]
        what = " ".join([*(f"sweep {g}" for g in args.grid), *args.overrides])
        title = f"{args.config.name}{f' {what}' if what else ''}: peak {peak:.0f} MiB"
        plot(samples, steps, t0, args.plot, title)
        result["plot"] = str(args.plot)
    print(json.dumps(result, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0 if code == 0 else 1


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"cpu x{os.cpu_count()}"


if __name__ == "__main__":
    sys.exit(main())
