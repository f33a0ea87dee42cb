"""glibc's mmap threshold is fixed at the start of a run: buffers of a few MB (a decode's KV
layers) then give their memory back when freed, instead of staying in the heap once glibc's
dynamic threshold has risen past them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A 24 MB tensor freed (glibc's dynamic threshold rises to it), then 40 tensors of 4 MB of
# which all but the last are freed: prints the heap's freed-but-held MiB and what the
# resident set dropped.
_PATTERN = """
import json, sys, torch
from utils.core.allocator import fix_mmap_threshold
from utils.core.heap_stats import heap_mb
from utils.core.peak_memory import rss_mb
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold() is not None
big = torch.ones(6 * 2**20)
del big
kept = [torch.ones(2**20) for _ in range(40)]
last = kept.pop()
before = rss_mb()
kept.clear()
print(json.dumps({"held": heap_mb()["heap_free_mb"], "dropped": before - rss_mb()}))
"""

ENV_KEYS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_")


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env or _clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")


@glibc
def test_fixed_threshold_returns_freed_buffers() -> None:
    default, fixed = _run(_PATTERN, "default"), _run(_PATTERN, "fixed")
    # 39 x 4 MB freed: glibc keeps them in the heap by default, unmaps them when fixed.
    assert default["held"] > 100, default
    assert fixed["held"] < 20, fixed
    assert fixed["dropped"] > 100, fixed


@glibc
def test_children_inherit_and_environment_wins() -> None:
    code = """
import json, os
from utils.core.allocator import fix_mmap_threshold
print(json.dumps([fix_mmap_threshold(), os.environ.get("GLIBC_TUNABLES")]))
"""
    assert _run(code) == [2**20, "glibc.malloc.mmap_threshold=1048576"]
    env = {**_clean_env(), "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert _run(code, env=env) == [
        2**20,
        "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1048576",
    ]
    env = {**_clean_env(), "MALLOC_MMAP_THRESHOLD_": "65536"}
    assert _run(code, env=env) == [None, None]


def test_refuses_nonpositive() -> None:
    from utils.core.allocator import fix_mmap_threshold

    with pytest.raises(ValueError):
        fix_mmap_threshold(0)
