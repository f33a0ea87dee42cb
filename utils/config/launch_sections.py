"""How training is launched: processes, machines, and the DDP / FSDP strategy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from utils.config.base import Section

# The autocast each `model.dtype` means on a GPU (`utils.modeling.precision.autocast_for`;
# `auto` is bf16 where the GPU has it).
GPU_AUTOCAST_FOR_DTYPE = {"auto": "bf16", "bfloat16": "bf16", "float16": "fp16", "float32": "no"}


class FsdpSection(Section):
    """Fully sharded data parallelism (`accelerate.strategy: fsdp`): accelerate's FSDP plugin
    options by name, passed to `accelerate launch` (its `--fsdp_*` flags)."""

    # 2 = FSDP2 (`fully_shard`, per-parameter DTensor shards); 1 = the FlatParameter FSDP.
    version: Literal[1, 2] = 2
    # FSDP2: free the gathered weights after each block's forward (true, ZeRO-3-like) or keep
    # them until backward (false, ZeRO-2-like: more memory, one all-gather fewer).
    # FSDP1 maps true/false to sharding strategy FULL_SHARD / SHARD_GRAD_OP.
    reshard_after_forward: bool = True
    # The class each FSDP unit wraps; null = the model's decoder layer class, found from the
    # architecture (`utils.modeling.architecture.decoder_layer_class`).
    wrap_layer: str | None = Field(None, min_length=1)
    # Only rank 0 of each machine reads the weights; the others start on the meta device
    # and receive rank 0's weights when the model is sharded (host RAM: one copy per node).
    cpu_ram_efficient_loading: bool = True
    # Offload the parameter shards (and their gradients) to host memory between uses.
    offload_params: bool = False
    # How the Trainer's checkpoints hold the weights. The final adapter is always gathered
    # from the shards and written whole, by rank 0 alone.
    state_dict_type: Literal["FULL_STATE_DICT", "SHARDED_STATE_DICT"] = "FULL_STATE_DICT"


class AccelerateSection(Section):
    # 1 = train in the step's own process (no launcher). >1 = `accelerate launch` children:
    # one per GPU, or CPU processes talking over gloo where no GPU exists. The total over all
    # machines (accelerate's meaning): each machine runs num_processes / num_machines.
    num_processes: int = Field(1, ge=1)
    # ddp: every rank holds the whole model; fsdp: parameters sharded over the ranks.
    strategy: Literal["ddp", "fsdp"] = "ddp"
    fsdp: FsdpSection = FsdpSection()
    # auto: derived from model.dtype by the precision policy, the same for 1 process and N.
    # An explicit value is accepted only where it says the same (`GPU_AUTOCAST_FOR_DTYPE`).
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    # Multi-node. null = from the environment the cluster sets on each machine
    # (`utils.training.distributed.MACHINE_ENV`), else one machine / rank 0 / this host.
    num_machines: int | None = Field(None, ge=1)
    machine_rank: int | None = Field(None, ge=0)
    main_process_ip: str | None = Field(None, min_length=1)
    main_process_port: int | None = Field(None, gt=0, lt=65536)

    @model_validator(mode="after")
    def _machines_consistent(self) -> AccelerateSection:
        # null = the environment's, checked at launch (`machines_for`) and in preflight.
        machines = self.num_machines
        if machines is not None and self.num_processes % machines:
            raise ValueError(
                f"accelerate.num_processes={self.num_processes} is the total over all "
                f"machines and must be a multiple of accelerate.num_machines={machines}"
            )
        if machines is not None and (self.machine_rank or 0) >= machines:
            raise ValueError(
                f"accelerate.machine_rank={self.machine_rank} must be below "
                f"accelerate.num_machines={machines}"
            )
        if self.strategy == "fsdp" and self.num_processes < 2:
            raise ValueError(
                "accelerate.strategy=fsdp shards the model over processes and needs "
                f"accelerate.num_processes >= 2, not {self.num_processes}: use strategy ddp "
                "(the default) for one process"
            )
        return self
