"""Decode steps of a single row on PyTorch's own bf16 matmul instead of oneDNN's (opt-in).

At one row every linear layer is a matrix-vector product. oneDNN's bf16 kernel is slow at
that shape: on a 2-core Zen 4 (avx512_bf16), SmolLM2-135M's 211 linear layers took 36 ms
per token through it and 18 ms through PyTorch's native kernel (`bench/results/
engine_speed.md`); from 2 rows on oneDNN is as fast or faster. The native kernel also sums
in float32 but in another order: about 1 output in 10,000 differs by one bf16 step, so
greedy outputs may differ from the default's. Hence `evaluation.one_row_kernel: native` is
opt-in, and only decode steps of one row take it (a prefill has many rows).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

ONE_ROW_KERNELS = ("onednn", "native")


@contextlib.contextmanager
def one_row_kernel(kernel: str, rows: int) -> Iterator[None]:
    """Within the block, CPU matmuls skip oneDNN when `kernel` is `native` and the step
    has one row. oneDNN's switch is process-wide: decodes of one engine run one at a time
    (serving queues its requests), and the previous setting comes back on exit."""
    if kernel not in ONE_ROW_KERNELS:
        raise ValueError(f"unknown one-row kernel {kernel!r}; valid: {', '.join(ONE_ROW_KERNELS)}")
    if kernel == "onednn" or rows != 1:
        yield
        return
    with torch.backends.mkldnn.flags(enabled=False):
        yield
