import json
from pathlib import Path

from zenml import log_metadata, step

from steps.finetune import FinetuneOutputs, finetune, training_curve_png
from utils.config import PipelineConfig
from utils.core.names import TRACKER_METRICS, TRAINING
from utils.modeling.precision import precision_for
from utils.training.distributed import launch_env, launch_kwargs
from utils.training.remote_checkpoints import prefetch
from utils.zenml_ops.scratch import adopt_scratch_folder
from utils.zenml_ops.tracker_logging import flat_params, log_training_result, replay, step_tracker


@step
def finetune_distributed(config_json: str, dataset: Path) -> FinetuneOutputs:
    """`finetune` on `accelerate.num_processes` ranks, launched by ZenML's run_with_accelerate.

    The decorator is applied here, to a copy of the `finetune` step, when this step runs:
    not at import for every pipeline, not in the pipeline body, and from a module-level step
    that remote orchestrators can load by source. The children have no step context, so
    this (parent) step logs what they return, to ZenML and to the experiment tracker.
    """
    from zenml.integrations.huggingface.steps import run_with_accelerate

    cfg = PipelineConfig.from_json(config_json)
    precision = precision_for(cfg.model.source())
    launch = launch_kwargs(cfg.accelerate, precision.launcher_mixed_precision)
    launched = run_with_accelerate(finetune.copy(), **launch)
    prefetch(cfg)  # a retry on another machine: every rank resumes what the store holds
    tracker = step_tracker()
    if tracker is not None:
        tracker.log_params(flat_params(json.loads(config_json)))  # visible while it trains
    with launch_env():
        adapter, summary, curve = launched.entrypoint(config_json=config_json, dataset=str(dataset))
    adopt_scratch_folder(Path(adapter))  # made by rank 0: removed once ZenML stored it
    rows = summary.pop(TRACKER_METRICS, [])
    log_metadata(metadata={TRAINING: summary})
    if tracker is not None:
        replay(tracker, rows)  # rank 0's, one row per logging step
        log_training_result(tracker, summary, training_curve_png(summary))
    return Path(adapter), summary, curve
