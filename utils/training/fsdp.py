"""FSDP on the ranks: switching accelerate's plugin on where it would silently stay off (CPU
ranks), what each rank holds, and the whole adapter gathered from the shards."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

logger = logging.getLogger(__name__)


def fsdp_requested() -> bool:
    """True in a rank that `accelerate launch --use_fsdp` started."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def enable_fsdp_on_cpu_ranks(accelerator: Any) -> bool:
    """Turn accelerate's FSDP plugin on for CPU (gloo) ranks; True if it did.

    accelerate 1.15 builds the plugin only for GPU-like distributed types (`state.py`:
    MULTI_CPU is not among them), so `--use_fsdp` on CPU ranks would train plain DDP and say
    nothing. PyTorch's FSDP runs on CPU tensors over gloo; the plugin reads the same
    FSDP_* variables the launcher exported, so the ranks shard exactly as a GPU launch would.
    """
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if not fsdp_requested() or state.distributed_type != DistributedType.MULTI_CPU:
        return False
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin()
    logger.info("FSDP%d on CPU ranks (gloo)", state.fsdp_plugin.fsdp_version)
    return True


def _local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a parameter (a DTensor's shard; the tensor itself otherwise)."""
    return t.to_local() if hasattr(t, "to_local") else t


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole parameter on every rank (a collective for a sharded one)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def held_parameter_bytes(model: Any) -> int:
    """Bytes of parameters this rank holds between forward passes.

    FSDP2 keeps one DTensor per parameter whose local part is this rank's shard; FSDP1 (with
    `use_orig_params`) exposes each parameter as a view of this rank's flat shard. Without
    FSDP it is the whole model. FSDP2 modules a forward pass left gathered (the root after
    the Trainer's evaluation: no backward resharded it) are resharded first.
    """
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()
    return sum(_local(p).numel() * p.element_size() for p in model.parameters())


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """Every trainable weight, whole, on every rank, keyed as in the model's state dict.

    All ranks must call it: a sharded weight is gathered (FSDP2: each DTensor's
    `full_tensor`; FSDP1: inside `summon_full_params`).
    """
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP1

    def collect() -> dict[str, torch.Tensor]:
        return {
            name: full(p.detach()).cpu().clone()
            for name, p in model.named_parameters()
            if p.requires_grad
        }

    if isinstance(model, FSDP1):
        with FSDP1.summon_full_params(model, writeback=False):
            return collect()
    return collect()
