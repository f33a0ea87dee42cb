"""Peak memory of a block of work: what the leaderboard's memory column shows.

On a CUDA device: torch's peak allocated bytes, reset when the block starts. On a CPU: the
process's peak resident set while the block ran. The kernel's high-water mark
(`ru_maxrss`) is exact but covers the whole process: it is this block's peak only if the
block raised it. Otherwise (an earlier step of the same process peaked higher) a sampler
thread's maximum stands in, which includes what the process already held when the block
began. Imports nothing of the project.
"""

from __future__ import annotations

import resource
import sys
import threading
from types import TracebackType

SAMPLE_SECONDS = 0.1


def _maxrss_mb() -> float:
    # Linux reports kilobytes, macOS bytes.
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """`with PeakMemory() as peak: ...`, then `peak.mb` (MiB; None if nothing was measured)."""

    def __init__(self) -> None:
        self.mb: float | None = None
        self._stop = threading.Event()
        self._sampled = 0.0
        self._cuda = False

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        while True:
            self._sampled = max(self._sampled, process.memory_info().rss / 2**20)
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def __enter__(self) -> PeakMemory:
        import torch

        self._cuda = torch.cuda.is_available()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        self._before = _maxrss_mb()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._cuda:
            import torch

            self.mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            return
        self._stop.set()
        self._thread.join()
        after = _maxrss_mb()
        self.mb = round(after if after > self._before else max(self._sampled, 0.0), 1)
