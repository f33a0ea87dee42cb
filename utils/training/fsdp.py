"""FSDP on the ranks: accelerate's GPU set-up of the plugin also on CPU ranks (where it would
silently stay off), what each rank holds, and the whole adapter gathered from the shards."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

logger = logging.getLogger(__name__)


def fsdp_requested() -> bool:
    """True in a rank that `accelerate launch --use_fsdp` started."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def cpu_fsdp_problem(version: int, has_cuda: bool) -> str | None:
    """Why FSDP `version` cannot run on this machine's ranks, or None."""
    if version == 1 and not has_cuda:
        # accelerate 1.15's FSDP1 plugin (`sync_module_states`, which cpu_ram_efficient_loading
        # needs) looks for a GPU to put the synchronised weights on, and raises without one.
        return (
            "accelerate.fsdp.version=1 needs GPUs (accelerate's FSDP1 plugin places the "
            "weights on one); CPU ranks run accelerate.fsdp.version=2, the default"
        )
    return None


@contextmanager
def accelerate_fsdp_on_cpu_ranks() -> Iterator[bool]:
    """While accelerate builds its state: let CPU (gloo) ranks take the branch of a GPU
    launch, so that accelerate's own FSDP set-up runs; yields whether it did.

    accelerate 1.15 (`AcceleratorState.__init__`) turns the `--use_fsdp` plugin on only
    for GPU-like distributed types: on MULTI_CPU ranks it drops the plugin and trains
    plain DDP without a word. PyTorch's FSDP runs on CPU tensors over gloo, so the ranks
    are shown as MULTI_GPU for the moment the state is built. Accelerate then does what it
    does on GPUs: it keeps the plugin the launcher's FSDP_* variables configured, gives it
    the mixed-precision policy of `mixed_precision`, and records FSDP in the state shared
    by every `PartialState`/`AcceleratorState` of the process. What stays CPU's: the
    device (set before, from ACCELERATE_USE_CPU) and the gloo process group.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    if not fsdp_requested():
        yield False
        return
    PartialState()  # the process group and device, as the launch set them
    shared = PartialState._shared_state
    if shared.get("distributed_type") != DistributedType.MULTI_CPU:
        yield False  # a GPU launch: accelerate needs no help
        return
    shared["distributed_type"] = DistributedType.MULTI_GPU
    try:
        yield True
    finally:
        took = shared.get("distributed_type")
        if took == DistributedType.MULTI_GPU:
            shared["distributed_type"] = DistributedType.MULTI_CPU
    if took != DistributedType.FSDP:
        raise RuntimeError(
            f"accelerate did not set up FSDP on the CPU ranks (its state says {took}): this "
            "accelerate version builds its state differently; use accelerate.strategy=ddp"
        )
    logger.info("FSDP on CPU ranks (gloo), set up by accelerate as for GPUs")


def fsdp_mixed_precision(trainer: Any) -> dict[str, str | None] | None:
    """The dtypes of the FSDP plugin's mixed-precision policy the ranks trained with (None:
    no FSDP, or no policy: the weights' own dtypes)."""
    if not getattr(trainer, "is_fsdp_enabled", False):
        return None
    policy = trainer.accelerator.state.fsdp_plugin.mixed_precision_policy
    if policy is None:
        return None
    names = ("param_dtype", "reduce_dtype", "buffer_dtype", "output_dtype")
    dtypes = {name: getattr(policy, name, None) for name in names}
    return {k: str(v).removeprefix("torch.") if v is not None else None for k, v in dtypes.items()}


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
