"""How the service is doing: counters kept in memory on the request path (a lock and a few
integers), written to the served model version's metadata by a background thread, so the
dashboard shows them without any request waiting for the store."""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from utils.core.names import SERVING_STATS

logger = logging.getLogger(__name__)

# Latency percentiles are taken over this many most recent answered requests.
_LATENCY_WINDOW = 2048


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)], 4)  # nearest rank


class ServingStats:
    """Requests, inputs, errors by status and latency of the requests answered so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.time()
        self.requests = 0
        self.inputs = 0
        self.recorded = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self._latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self._version = 0

    def answered(self, inputs: int, seconds: float) -> None:
        with self._lock:
            self.requests += 1
            self.inputs += inputs
            self._latencies.append(seconds)
            self._version += 1

    def failed(self, status: int) -> None:
        with self._lock:
            self.requests += 1
            self.errors[str(status)] += 1
            self._version += 1

    def record_written(self) -> None:
        with self._lock:
            self.recorded += 1
            self._version += 1

    @property
    def version(self) -> int:
        return self._version

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            ordered = sorted(self._latencies)
            return {
                "requests": self.requests,
                "inputs": self.inputs,
                "errors": dict(self.errors),
                "recorded_runs": self.recorded,
                "latency_p50_s": _percentile(ordered, 50),
                "latency_p95_s": _percentile(ordered, 95),
                "uptime_s": round(time.time() - self._started, 1),
            }


class StatsWriter:
    """Calls `write(stats.snapshot())` every `every_s` seconds when something changed, and
    once more on `stop()`. A failing write is logged and retried next time."""

    def __init__(
        self, stats: ServingStats, write: Callable[[dict[str, Any]], None], every_s: float
    ) -> None:
        self._stats = stats
        self._write = write
        self._every_s = every_s
        self._written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serving-stats", daemon=True)

    def start(self) -> StatsWriter:
        if self._every_s > 0:
            self._thread.start()
        return self

    def flush(self) -> None:
        version = self._stats.version
        if version == self._written:
            return
        try:
            self._write(self._stats.snapshot())
            self._written = version
        except Exception as e:
            logger.warning("could not write the serving stats: %r", e)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.flush()


def model_version_writer(model: str, version: str) -> Callable[[dict[str, Any]], None]:
    """Writes the counters to the served version's metadata (`serving_stats`)."""

    def write(snapshot: dict[str, Any]) -> None:
        from zenml import log_metadata

        from utils.zenml_ops.model_versions import find_version

        mv = find_version(model, version)
        log_metadata(metadata={SERVING_STATS: snapshot}, model_version_id=mv.id)

    return write
