"""Accelerate launch settings, and the facts each rank reports back to the main process."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from utils.config import AccelerateSection
from utils.core.names import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_kwargs(acc: AccelerateSection, mixed_precision: str) -> dict[str, Any]:
    """`accelerate launch` arguments for `run_with_accelerate`; `mixed_precision` comes
    from the precision policy (`Precision.launcher_mixed_precision`), never from
    `acc.mixed_precision` (validated against model.dtype, which the policy reads).

    `multi_gpu=True` also on CPU: accelerate's `cpu=True` silently runs ONE process, while
    `multi_gpu` with ACCELERATE_USE_CPU=true (see `launch_env`) runs N gloo ranks.
    """
    return {
        "num_processes": acc.num_processes,
        "num_machines": 1,
        "multi_gpu": True,
        "mixed_precision": mixed_precision,
        "main_process_port": acc.main_process_port or free_port(),
        "dynamo_backend": "no",
    }


@contextmanager
def launch_env(has_cuda: bool | None = None) -> Iterator[None]:
    """Environment for the launched children: CPU ranks, and the project importable.

    ZenML's launcher imports the step module from its folder in a fresh interpreter whose
    cwd may be anywhere, so the project root goes on PYTHONPATH.
    """
    has_cuda = torch.cuda.is_available() if has_cuda is None else has_cuda
    changes = {
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
    }
    if not has_cuda:
        changes["ACCELERATE_USE_CPU"] = "true"
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def gather_from_ranks(value: Any) -> list[Any]:
    """Every rank's `value` (a one-item list outside a distributed run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, value)
        return out
    return [value]


def trainable_digest(model: Any) -> str:
    """sha256 of the trainable weights: equal on every rank iff gradients were synchronised."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()
