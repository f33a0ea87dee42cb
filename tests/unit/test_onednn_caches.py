"""The CPU kernel caches behind bf16 matmuls are bounded before training's first matmul:
without that, every new batch length keeps its kernels (16 MB a step on SmolLM2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils.core import onednn_caches
from utils.core.onednn_caches import VARIABLES, bound_onednn_caches
from utils.modeling.precision import cpu_has_native_bf16

ROOT = Path(__file__).resolve().parents[2]

# bf16 linear layers (forward and backward) on 60 batch lengths, each length twice; prints
# how much glibc's heap in use grew.
_SHAPES = """
import json, sys, torch
from utils.core.heap_stats import heap_mb
from utils.core.onednn_caches import bound_onednn_caches
if sys.argv[1] == "bounded":
    bound_onednn_caches(8)
torch.manual_seed(0)
lin = torch.nn.Linear(256, 512, bias=False).to(torch.bfloat16)
x0 = torch.randn(4, 200, 256)
def step(n):
    x = x0[:, :n].clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lin(x).float().sum().backward()
for n in (20, 20, 20):
    step(n)
before = heap_mb()["heap_in_use_mb"]
for n in [*range(21, 81), *range(21, 81)]:
    step(n)
print(json.dumps(heap_mb()["heap_in_use_mb"] - before))
"""


def _growth_mb(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    out = subprocess.run(
        [sys.executable, "-c", _SHAPES, mode],
        cwd=ROOT,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not cpu_has_native_bf16(),
    reason="oneDNN runs bf16 matmuls on CPUs with native bf16; the heap figures are glibc's",
)
def test_bounded_caches_stop_the_heap_growing_with_new_shapes() -> None:
    unbounded, bounded = _growth_mb("unbounded"), _growth_mb("bounded")
    assert unbounded > 10, unbounded  # the cause, as measured: kernels kept per shape
    assert bounded < 3, bounded


def test_bound_keeps_what_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "64")
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert bound_onednn_caches() == {
        "LRU_CACHE_CAPACITY": "64",
        "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(onednn_caches.CAPACITY),
    }
    with pytest.raises(ValueError):
        bound_onednn_caches(0)  # ideep crashes the process with 0


def test_train_lora_bounds_the_caches_before_loading_the_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import utils.training.train as train
    from utils.config import PipelineConfig

    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    seen: dict[str, str | None] = {}

    class Loaded(Exception):
        pass

    def load_model(*args: object, **kwargs: object) -> None:
        seen.update({name: os.environ.get(name) for name in VARIABLES})
        raise Loaded

    monkeypatch.setattr(train, "load_model", load_model)
    with pytest.raises(Loaded):
        train.train_lora(PipelineConfig(), tmp_path, tmp_path / "adapter")
    assert seen == {name: str(onednn_caches.CAPACITY) for name in VARIABLES}
