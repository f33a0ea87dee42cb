"""Accelerate launch settings, and the facts each rank reports back to the main process."""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from typing import Any

import torch

from utils.config import AccelerateSection, ConfigError, FsdpSection
from utils.core.names import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Where a cluster tells each machine who it is, in the order they are read: accelerate's own
# names, torchrun's (Kubernetes PyTorchJob, most launchers), SkyPilot's (`num_nodes`) and
# Baseten's (`node_count`). A config value wins over all of them.
MACHINE_ENV: dict[str, tuple[str, ...]] = {
    "num_machines": ("NUM_MACHINES", "NNODES", "SKYPILOT_NUM_NODES", "BT_GROUP_SIZE"),
    "machine_rank": ("MACHINE_RANK", "NODE_RANK", "SKYPILOT_NODE_RANK", "BT_NODE_RANK"),
    # SKYPILOT_NODE_IPS lists every node, one per line, the head node first.
    "main_process_ip": ("MAIN_PROCESS_IP", "MASTER_ADDR", "SKYPILOT_NODE_IPS", "BT_LEADER_ADDR"),
    "main_process_port": ("MAIN_PROCESS_PORT", "MASTER_PORT"),
}
# accelerate's default rendezvous port: machines that cannot agree on a free one use it.
DEFAULT_MAIN_PROCESS_PORT = 29500
# accelerate's name for "wrap every instance of these classes" (`--fsdp_auto_wrap_policy`).
FSDP_WRAP_POLICY = "TRANSFORMER_BASED_WRAP"


@dataclass(frozen=True)
class Machines:
    num_machines: int
    machine_rank: int
    main_process_ip: str | None
    main_process_port: int


def _from_env(key: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    for name in MACHINE_ENV[key]:
        value = environ.get(name, "").strip()
        if value:
            return name, value.splitlines()[0].strip()
    return None


def _env_int(key: str, environ: Mapping[str, str]) -> int | None:
    found = _from_env(key, environ)
    if found is None:
        return None
    name, value = found
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={value!r} (read for accelerate.{key}) is not an integer"
        ) from None


def machines_for(acc: AccelerateSection, environ: Mapping[str, str] | None = None) -> Machines:
    """The machines of this launch: the config's values, else the cluster's environment."""
    environ = os.environ if environ is None else environ
    num = acc.num_machines or _env_int("num_machines", environ) or 1
    rank = acc.machine_rank if acc.machine_rank is not None else _env_int("machine_rank", environ)
    rank = rank or 0
    found_ip = _from_env("main_process_ip", environ)
    ip = acc.main_process_ip or (found_ip[1] if found_ip else None)
    port = acc.main_process_port or _env_int("main_process_port", environ)
    if num > 1:
        if acc.num_processes % num:
            raise ConfigError(
                f"accelerate.num_processes={acc.num_processes} is the total over all machines "
                f"and must be a multiple of num_machines={num}"
            )
        if rank >= num:
            raise ConfigError(f"accelerate.machine_rank={rank} must be below num_machines={num}")
        if ip is None:
            raise ConfigError(
                f"num_machines={num} needs the main machine's address: set "
                "accelerate.main_process_ip or one of "
                f"{', '.join(MACHINE_ENV['main_process_ip'])}"
            )
    # One machine picks any free port; several must agree on one beforehand.
    port = port or (free_port() if num == 1 else DEFAULT_MAIN_PROCESS_PORT)
    return Machines(num, rank, ip, port)


def fsdp_launch_kwargs(fsdp: FsdpSection, wrap_layer: str) -> dict[str, Any]:
    """accelerate's `--fsdp_*` launch options for `fsdp`; values as its parser gives them
    (strings), since run_with_accelerate sets them on the parsed arguments as they are."""

    def flag(value: bool) -> str:
        return str(value).lower()

    if fsdp.version == 2:
        reshard = flag(fsdp.reshard_after_forward)
    else:
        reshard = "FULL_SHARD" if fsdp.reshard_after_forward else "SHARD_GRAD_OP"
    return {
        "use_fsdp": True,
        "fsdp_version": str(fsdp.version),
        "fsdp_reshard_after_forward": reshard,
        "fsdp_auto_wrap_policy": FSDP_WRAP_POLICY,
        "fsdp_transformer_layer_cls_to_wrap": wrap_layer,
        "fsdp_cpu_ram_efficient_loading": flag(fsdp.cpu_ram_efficient_loading),
        # accelerate requires it with cpu_ram_efficient_loading: rank 0's weights reach all.
        "fsdp_sync_module_states": "true",
        "fsdp_offload_params": flag(fsdp.offload_params),
        "fsdp_state_dict_type": fsdp.state_dict_type,
        # Frozen base weights and trainable LoRA weights share each wrapped block.
        "fsdp_use_orig_params": "true",
    }


def launch_kwargs(
    acc: AccelerateSection,
    mixed_precision: str,
    wrap_layer: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`accelerate launch` arguments for `run_with_accelerate`; `mixed_precision` comes
    from the precision policy (`Precision.launcher_mixed_precision`), never from
    `acc.mixed_precision` (validated against model.dtype, which the policy reads).
    `wrap_layer`: the decoder layer class FSDP wraps (`strategy: fsdp` only).

    DDP: `multi_gpu=True` also on CPU: accelerate's `cpu=True` silently runs ONE process,
    while `multi_gpu` with ACCELERATE_USE_CPU=true (see `launch_env`) runs N gloo ranks.
    FSDP: `use_fsdp` instead (accelerate allows only one of the two).
    """
    m = machines_for(acc, environ)
    kwargs: dict[str, Any] = {
        "num_processes": acc.num_processes,
        "num_machines": m.num_machines,
        "machine_rank": m.machine_rank,
        "mixed_precision": mixed_precision,
        "main_process_port": m.main_process_port,
        "dynamo_backend": "no",
    }
    if m.main_process_ip is not None and m.num_machines > 1:
        kwargs["main_process_ip"] = m.main_process_ip
    if acc.strategy == "fsdp":
        if wrap_layer is None:
            raise ValueError("strategy fsdp needs the decoder layer class to wrap")
        kwargs.update(fsdp_launch_kwargs(acc.fsdp, wrap_layer))
    else:
        kwargs["multi_gpu"] = True
    return kwargs


def launch_arguments(kwargs: Mapping[str, Any]) -> argparse.Namespace:
    """`kwargs` as `accelerate launch` itself parses them; a ConfigError where its parser
    refuses one (an unknown option, a value outside its choices) or reads it as another
    value. run_with_accelerate sets the options on the parsed arguments unchecked (an
    unknown name only warns), so they are checked here before anything is launched."""
    from accelerate.commands.launch import launch_command_parser

    argv: list[str] = []
    for key, value in kwargs.items():
        if value is True:
            argv.append(f"--{key}")  # a store_true flag
        elif value is not False and value is not None:
            argv += [f"--{key}", str(value)]
    errors = io.StringIO()
    try:
        with redirect_stderr(errors):
            args = launch_command_parser().parse_args([*argv, "train.py"])
    except SystemExit:
        said = errors.getvalue().strip().splitlines()
        raise ConfigError(
            f"accelerate launch refuses these options: {said[-1] if said else argv}"
        ) from None
    for key, value in kwargs.items():
        parsed = getattr(args, key)
        if parsed != value and not (value is False and not parsed):
            raise ConfigError(
                f"accelerate launch reads --{key} {value!r} as {parsed!r}: pass it as "
                f"{type(parsed).__name__}"
            )
    return args


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


def trainable_digest(weights: Mapping[str, torch.Tensor]) -> str:
    """sha256 of the trainable weights (`utils.training.fsdp.trainable_state`, whole even
    under FSDP): equal on every rank iff gradients were synchronised."""
    h = hashlib.sha256()
    for name in sorted(weights):
        h.update(name.encode())
        h.update(weights[name].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()
