"""Linear layers over few rows (decode steps, served requests) as `W @ x.T` on a CPU.

`F.linear(x, W)` computes `x @ W.T`. With a handful of rows, the CPU BLAS picks a poor kernel
for that layout: on a 2-core AMD EPYC Zen 3 (AVX2, float32), SmolLM2-135M's 211 linear
layers took 64.6 ms at 2 rows through `F.linear` and 26.8 ms as `W @ x.T`; 85 vs 52 ms at 8
rows, 195 vs 137 ms at 64; equal at 1,024 rows, and `F.linear` wins at 4,096 (a prefill). At
one row both are a matrix-vector product (~37 ms); the same row twice through the
matrix-matrix kernel takes 32 ms. Figures: bench/results/engine_speed.md.

Only float32 weights on a CPU take it, and only without autograd (inference). Another
summation order moves a float32 logit by about 1e-6 of its size, far below the gaps greedy
decoding decides on; in bf16 a reordering moves results by whole bf16 steps (see
`utils.inference.one_row`), so bf16 models keep `F.linear`.

Which form wins depends on the CPU and its BLAS, so `install` times both on the model's own
layers once, and keeps the transposed form only where it is clearly faster.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

# Above this many rows `F.linear` is as fast or faster (measured: equal at 1,024 rows).
MAX_ROWS = 256
# The transposed form must be this much faster to be used: timing noise must not decide.
MIN_GAIN = 0.9
_INSTALLED = "_skinny_matmul"


def _plain_linears(model: Any) -> list[torch.nn.Linear]:
    # Exact type: subclasses (bitsandbytes' 4-/8-bit layers) compute their own way.
    return [
        m
        for m in model.modules()
        if type(m) is torch.nn.Linear
        and m.weight.dtype == torch.float32
        and m.weight.device.type == "cpu"
    ]


def _transposed(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, one_row: bool):
    rows = x.numel() // x.shape[-1]
    # Contiguous rows: a layer fed the transposed output of the one before (an MLP's down
    # projection) would hand BLAS a row-major right-hand side, 3-4x slower here.
    flat = x.reshape(rows, x.shape[-1]).contiguous()
    if rows == 1:
        if not one_row:
            return F.linear(x, weight, bias)
        out = (weight @ flat.repeat(2, 1).t())[:, :1]
    else:
        out = weight @ flat.t()
    out = out.t().reshape(*x.shape[:-1], weight.shape[0])
    return out if bias is None else out + bias


def _forward(module: torch.nn.Linear, one_row: bool):
    def forward(x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.dim() < 2 or x.numel() // x.shape[-1] > MAX_ROWS:
            return F.linear(x, module.weight, module.bias)
        return _transposed(module.weight, module.bias, x, one_row)

    return forward


def _seconds(fn: Any, reps: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _timings(layers: list[torch.nn.Linear], rows: int) -> tuple[float, float]:
    """Seconds for one pass over `layers` at `rows` rows: `F.linear`, transposed."""
    pairs = [(m, torch.randn(rows, m.in_features)) for m in layers]
    with torch.inference_mode():
        plain = _seconds(lambda: [F.linear(x, m.weight, m.bias) for m, x in pairs])
        transposed = _seconds(lambda: [_transposed(m.weight, m.bias, x, True) for m, x in pairs])
    return plain, transposed


def install(model: Any) -> str:
    """Route the float32 CPU linear layers of `model` through `W @ x.T` for few rows where
    that is faster on this machine (timed once per model); returns what was chosen, for
    logs and metrics."""
    chosen = getattr(model, _INSTALLED, None)
    if chosen is not None:
        return chosen
    layers = _plain_linears(model)
    if not layers:
        chosen = "F.linear (no float32 CPU linear layers)"
    else:
        plain8, transposed8 = _timings(layers, 8)
        plain1, transposed1 = _timings(layers, 1)
        few_rows = transposed8 <= MIN_GAIN * plain8
        one_row = few_rows and transposed1 <= MIN_GAIN * plain1
        if few_rows:
            for m in layers:
                m.forward = _forward(m, one_row)
        chosen = (
            f"{'W @ x.T' if few_rows else 'F.linear'} for 2-{MAX_ROWS} rows "
            f"({plain8 * 1e3:.1f} ms F.linear, {transposed8 * 1e3:.1f} ms W @ x.T at 8 rows), "
            f"{'W @ x.T' if one_row else 'F.linear'} for one row "
            f"({plain1 * 1e3:.1f} / {transposed1 * 1e3:.1f} ms)"
        )
        logger.info("decode linear layers: %s", chosen)
    setattr(model, _INSTALLED, chosen)
    return chosen
