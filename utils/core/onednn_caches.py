"""Bound the kernel caches of oneDNN, the library behind torch's bf16 matmuls on a CPU.

Two caches keep a compiled kernel per matmul shape: ideep's (`LRU_CACHE_CAPACITY`) and
oneDNN's primitive cache (`ONEDNN_PRIMITIVE_CACHE_CAPACITY`), 1,024 entries each by
default. Training batches are padded to their own length, so nearly every step brings new
shapes: measured on SmolLM2-135M (bf16 autocast, batch 8), the heap in use grew by 16 MB
per step, every step, and the default run's resident set climbed from 3.4 GB at step 80 to
4.1 GB at step 300. A shape recurs within a step (the same projection in each of the 30
blocks), rarely across steps, so a few hundred entries keep the hits that matter.

Both libraries read the variables once, when they first create a kernel: this must run
before the process's first bf16 matmul. Values already set in the environment are kept.
Imports nothing of the project.
"""

from __future__ import annotations

import os

# Entries per cache: one step of the default run creates fewer kernels than this
# (bench/results/footprint.md), and the entries are ~0.5 MB each.
CAPACITY = 256
VARIABLES = ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")


def bound_onednn_caches(capacity: int = CAPACITY) -> dict[str, str]:
    """Set both caches' capacity unless the environment already says; returns what is set.
    A capacity of 0 is refused: ideep's cache crashes the process with it (measured)."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, not {capacity}")
    for name in VARIABLES:
        os.environ.setdefault(name, str(capacity))
    return {name: os.environ[name] for name in VARIABLES}
