import io
import json
import shutil
from pathlib import Path
from typing import Annotated, Any

# ZenML registers its PIL materializer (PNG + dashboard image view) only when imported.
import zenml.integrations.pillow.materializers  # noqa: F401
from PIL import Image
from zenml import step

from utils.config import PipelineConfig
from utils.core.names import (
    ADAPTER,
    LOSS_CURVE,
    STEP_MEMORY,
    TRACKER_METRICS,
    TRAINING,
    TRAINING_SUMMARY,
)
from utils.training.checkpoints import is_main_process
from utils.training.loss_curve import loss_curve_png
from utils.training.metric_log import MetricLog
from utils.training.remote_checkpoints import step_mirror
from utils.training.train import train_lora
from utils.zenml_ops.scratch import scratch_folder
from utils.zenml_ops.step_context import in_zenml_step, step_memory
from utils.zenml_ops.tracker_logging import flat_params, log_training_result, step_tracker

# Shared with finetune_distributed: both steps produce the same artifacts.
FinetuneOutputs = tuple[
    Annotated[Path, ADAPTER],
    Annotated[dict[str, Any], TRAINING_SUMMARY],
    Annotated[Image.Image, LOSS_CURVE],
]


@step
def finetune(config_json: str, dataset: Path) -> FinetuneOutputs:
    """Train the LoRA adapter. Parameters are primitives so Accelerate can relaunch this step.

    The config comes as a JSON string and the prepared data as a folder path because
    `run_with_accelerate` passes step arguments on a command line. Everything ZenML should
    record comes back in the return value: child processes have no step context.
    Checkpoints are mirrored into the active artifact store, so a retry of this step on
    another machine resumes. With an experiment tracker, metrics go to it as they are
    logged (in Accelerate's children: with the summary, to the parent step).
    """
    with step_memory() as memory:
        cfg = PipelineConfig.from_json(config_json)
        adapter = scratch_folder(ADAPTER)
        tracker = step_tracker()
        if tracker is not None:
            tracker.log_params(flat_params(json.loads(config_json)))  # visible while it trains
        metric_log = MetricLog(tracker.log_metrics if tracker is not None else None)
        summary = train_lora(
            cfg, Path(dataset), adapter, mirror=step_mirror(cfg), metric_log=metric_log
        )
        if not is_main_process():
            shutil.rmtree(adapter, ignore_errors=True)  # only rank 0 saved (and returns) one
        png = training_curve_png(summary)
        curve = Image.open(io.BytesIO(png))
        curve.load()
        # This process's (rank 0's, under Accelerate) memory: the model version gets it.
        summary[STEP_MEMORY] = memory.figures()
        if in_zenml_step():
            from zenml import log_metadata

            log_metadata(metadata={TRAINING: summary})
            if tracker is not None:
                log_training_result(tracker, summary, png)
        else:
            # An Accelerate child (rank 0's return is the one used): the parent logs these.
            summary[TRACKER_METRICS] = metric_log.rows
    return adapter, summary, curve


def training_curve_png(summary: dict[str, Any]) -> bytes:
    return loss_curve_png(summary["loss_history"], validation=summary.get("validation_history"))
