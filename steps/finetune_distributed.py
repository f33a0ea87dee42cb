import json
import sys
from pathlib import Path

import torch
from zenml import log_metadata, step

from steps.finetune import FinetuneOutputs, finetune, training_curve_png
from utils.config import ConfigError, PipelineConfig
from utils.core.errors import UserError
from utils.core.names import TRACKER_METRICS, TRAINING
from utils.modeling.architecture import fsdp_wrap_layer
from utils.modeling.precision import precision_for
from utils.training.distributed import (
    launch_arguments,
    launch_env,
    launch_kwargs,
    machines_for,
)
from utils.training.fsdp import cpu_fsdp_problem
from utils.training.rank_failures import ranks_report_failures
from utils.training.remote_checkpoints import prefetch
from utils.zenml_ops.scratch import adopt_scratch_folder
from utils.zenml_ops.step_context import step_memory
from utils.zenml_ops.tracker_logging import flat_params, log_training_result, replay, step_tracker


def launch_finetune(config_json: str, dataset: Path) -> FinetuneOutputs | None:
    """Launch this machine's `finetune` ranks through ZenML's run_with_accelerate and wait.

    Returns what global rank 0 returns, on the machine that runs it (machine_rank 0); None
    on the other machines of a multi-node launch, whose ranks train but save nothing.
    The decorator is applied here, to a copy of the `finetune` step, when it runs: not at
    import for every pipeline, and not in a pipeline body.
    """
    from zenml.integrations.huggingface.steps import run_with_accelerate

    cfg = PipelineConfig.from_json(config_json)
    precision = precision_for(cfg.model.source())
    fsdp = cfg.accelerate.strategy == "fsdp"
    wrap = fsdp_wrap_layer(cfg.model.source(), cfg.accelerate.fsdp) if fsdp else None
    problem = cpu_fsdp_problem(cfg.accelerate.fsdp.version, torch.cuda.is_available())
    if fsdp and problem is not None:
        raise ConfigError(problem)
    launch = launch_kwargs(cfg.accelerate, precision.launcher_mixed_precision, wrap)
    launch_arguments(launch)  # what accelerate's own parser accepts, before anything runs
    launched = run_with_accelerate(finetune.copy(), **launch)
    prefetch(cfg)  # a retry on another machine: every rank resumes what the store holds
    with launch_env():
        try:
            with ranks_report_failures():  # a failed rank: one line, RankFailed
                return launched.entrypoint(config_json=config_json, dataset=str(dataset))
        except FileNotFoundError:
            # ZenML's launcher reads the return value that global rank 0 pickled on its
            # own machine; another machine's launch finds no such file once its ranks
            # finished (a failed rank raises RuntimeError, not this).
            if machines_for(cfg.accelerate).machine_rank == 0:
                raise
            return None


@step
def finetune_distributed(config_json: str, dataset: Path) -> FinetuneOutputs:
    """`finetune` on `accelerate.num_processes` ranks, launched by ZenML's run_with_accelerate.

    A module-level step that remote orchestrators can load by source. The children have no
    step context, so this (parent) step logs what they return, to ZenML and to the
    experiment tracker. In a multi-node run this step runs on the main machine
    (machine_rank 0); see docs/distributed.md for the other machines.
    """
    # This (launcher) process's memory; the ranks' is rank 0's, in the training summary.
    with step_memory():
        tracker = step_tracker()
        if tracker is not None:
            tracker.log_params(flat_params(json.loads(config_json)))  # visible while it trains
        outputs = launch_finetune(config_json, dataset)
        if outputs is None:
            raise RuntimeError(
                "this machine is not machine_rank 0: its ranks trained, the adapter and the "
                "step's outputs come from machine_rank 0"
            )
    adapter, summary, curve = outputs
    adopt_scratch_folder(Path(adapter))  # made by rank 0: removed once ZenML stored it
    rows = summary.pop(TRACKER_METRICS, [])
    log_metadata(metadata={TRAINING: summary})
    if tracker is not None:
        replay(tracker, rows)  # rank 0's, one row per logging step
        log_training_result(tracker, summary, training_curve_png(summary))
    return Path(adapter), summary, curve


def main(argv: list[str]) -> None:
    """One machine's share of a launch, without ZenML's step machinery: what the other
    machines of a multi-node run execute (each with its machine_rank from the config or its
    environment), and what the multi-node test runs on each "machine".

    usage: python -m steps.finetune_distributed CONFIG_JSON_FILE DATASET_DIR [SUMMARY_JSON]
    Machine 0 writes rank 0's summary (with the adapter folder) to SUMMARY_JSON.
    """
    config_file, dataset = argv[:2]
    try:
        outputs = launch_finetune(Path(config_file).read_text(), Path(dataset))
    except UserError as err:
        sys.exit("error: " + " ".join(str(err).split()))  # one line, exit status 1
    if outputs is not None and len(argv) > 2:
        adapter, summary, _ = outputs
        Path(argv[2]).write_text(json.dumps({**summary, "adapter": str(adapter)}))


if __name__ == "__main__":
    main(sys.argv[1:])
