"""glibc's allocator settings for this process and its children: large buffers in their own
mappings, so that freeing them gives the memory back to the system at once.

glibc serves an allocation above its mmap threshold from a mapping of its own, which `free`
unmaps; smaller ones come from the heap, whose freed pages it keeps for reuse. The threshold
starts at 128 KiB but is dynamic: each time a mapped chunk is freed it rises to that chunk's
size (up to 32 MiB on 64-bit). A decode's KV cache is made of exactly such chunks (one K and
one V tensor per layer: ~21 MB at 128 float32 rows of SmolLM2-135M), replaced whenever rows
leave or the cache grows; once the threshold has risen past them they land on the heap,
and what they leave behind fragments it. Measured (float32, 2-core AMD EPYC Zen 3):
`evaluate_base` held ~670 MB of freed heap at its peak. A fixed threshold (`mallopt`, which
also stops the dynamic rise) keeps every such buffer in its own mapping.

Set once, at the start of `run.py`, before any model loads; children (Accelerate ranks)
get the same through `GLIBC_TUNABLES`. A threshold given in the environment
(`MALLOC_MMAP_THRESHOLD_` or `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`) wins.
Imports nothing of the project.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)

# Allocations of at least this many bytes get their own mapping. 1 MiB: every layer's KV
# tensor of a decode batch (>= 2.6 MiB from 16 float32 rows up) and the activations of a
# prefill; one decode step's per-row tensors (batch x hidden) stay on the heap below it.
MMAP_THRESHOLD = 2**20

_TUNABLE = "glibc.malloc.mmap_threshold"


@functools.cache
def _mallopt() -> ctypes._CFuncPtr | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallopt
    except (OSError, AttributeError):  # musl and others
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def _set_in_environment() -> bool:
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or _TUNABLE in os.environ.get(
        "GLIBC_TUNABLES", ""
    )


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> int | None:
    """Fix glibc's mmap threshold at `threshold` bytes in this process and (through the
    environment) its children. Returns the threshold set, or None when the environment
    already sets one or the C library is not glibc."""
    if threshold < 1:
        raise ValueError(f"threshold must be positive, not {threshold}")
    if _set_in_environment():
        return None
    mallopt = _mallopt()
    if mallopt is None or mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        return None
    tunables = os.environ.get("GLIBC_TUNABLES")
    setting = f"{_TUNABLE}={threshold}"
    os.environ["GLIBC_TUNABLES"] = f"{tunables}:{setting}" if tunables else setting
    return threshold
