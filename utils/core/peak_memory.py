"""Peak memory of a block of work: a pipeline step's own figures, and the leaderboard's column.

On a CPU the figure is the process's resident set (RSS). Each block measures its own peak:
- the kernel's high-water mark (`VmHWM`, what `/usr/bin/time -v` reports) is exact, but it
  covers the whole process. It is this block's peak when the block raised it;
- otherwise (an earlier step of the same process peaked higher) the maximum of a sampler
  thread that reads the RSS every `SAMPLE_SECONDS` stands in; it can miss a spike shorter
  than that.
The kernel's mark could be reset per block (`/proc/self/clear_refs`), but that also resets
the process's lifetime peak, which `/usr/bin/time`, `ru_maxrss` and every user's monitoring
read: so it is never touched here.

On a CUDA device the figure is torch's peak allocated bytes, reset when the block starts.
Imports nothing of the project.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import threading
from types import TracebackType
from typing import Any

SAMPLE_SECONDS = 0.05
MIB = 2**20


def rss_mb() -> float:
    """This process's resident set now (MiB)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:  # not Linux
        import psutil

        return psutil.Process().memory_info().rss / MIB


def high_water_mb() -> float:
    """The kernel's peak resident set of this process so far (MiB)."""
    try:
        with open("/proc/self/status") as f:
            found = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
        if found:
            return int(found.group(1)) / 1024
    except OSError:
        pass
    # Linux reports kilobytes, macOS bytes.
    scale = 1 / MIB if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class _RssWatch:
    """Start RSS, sampled maximum and the kernel's mark of one block (see the module doc)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.start_mb = rss_mb()
        self._mark_before = high_water_mb()
        self.sampled_mb = self.start_mb
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sampled_mb = max(self.sampled_mb, rss_mb())

    def peak(self) -> tuple[float, str]:
        """(peak MiB so far, how it was measured)."""
        mark = high_water_mb()
        if mark > self._mark_before:
            return mark, "kernel high-water mark"
        return max(self.sampled_mb, rss_mb()), f"sampled every {SAMPLE_SECONDS * 1000:.0f} ms"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _cuda() -> bool:
    if "torch" not in sys.modules:
        return False
    import torch

    return torch.cuda.is_available()


class PeakMemory:
    """`with PeakMemory() as peak: ...`, then `peak.mb` (MiB; None if nothing was measured)."""

    def __init__(self) -> None:
        self.mb: float | None = None
        self._watch: _RssWatch | None = None
        self._cuda = False

    def __enter__(self) -> PeakMemory:
        self._cuda = _cuda()
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
            return self
        self._watch = _RssWatch()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._cuda:
            import torch

            self.mb = round(torch.cuda.max_memory_allocated() / MIB, 1)
            return
        assert self._watch is not None
        self._watch.stop()
        self.mb = round(self._watch.peak()[0], 1)


class StepMemory:
    """A pipeline step's memory: `with StepMemory() as mem: ...`; `mem.figures()` at any
    point (the step's peak so far), e.g. for the step's metadata and its outputs.

    Figures (MiB): `peak_rss_mb` (this step's peak resident set), `start_rss_mb` (what the
    process held when the step began: earlier steps' leftovers, imports), and
    `peak_above_start_mb` (what the step itself added at its peak); `peak_cuda_mb` too on
    a GPU. `method` says which measurement gave the peak.
    """

    def __init__(self) -> None:
        self._watch: _RssWatch | None = None
        self._final: dict[str, Any] | None = None
        self._cuda = False

    def __enter__(self) -> StepMemory:
        self._cuda = _cuda()
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._watch = _RssWatch()
        return self

    def figures(self) -> dict[str, Any]:
        if self._final is not None:
            return dict(self._final)
        assert self._watch is not None, "use StepMemory as a context manager"
        peak, method = self._watch.peak()
        out: dict[str, Any] = {
            "peak_rss_mb": round(peak, 1),
            "start_rss_mb": round(self._watch.start_mb, 1),
            "peak_above_start_mb": round(max(0.0, peak - self._watch.start_mb), 1),
            "method": method,
        }
        if self._cuda:
            import torch

            out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
        return out

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._watch is not None
        self._final = self.figures()
        self._watch.stop()
