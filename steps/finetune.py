import io
import tempfile
from pathlib import Path
from typing import Annotated, Any

# ZenML registers its PIL materializer (PNG + dashboard image view) only when imported.
import zenml.integrations.pillow.materializers  # noqa: F401
from PIL import Image
from zenml import step

from utils.callbacks import in_zenml_step
from utils.config import PipelineConfig
from utils.plots import loss_curve_png
from utils.training import train_lora

# Shared with finetune_distributed: both steps produce the same artifacts.
FinetuneOutputs = tuple[
    Annotated[Path, "adapter"],
    Annotated[dict[str, Any], "training_summary"],
    Annotated[Image.Image, "loss_curve"],
]


@step
def finetune(config_json: str, dataset: Path) -> FinetuneOutputs:
    """Train the LoRA adapter. Parameters are primitives so Accelerate can relaunch this step.

    The config comes as a JSON string and the prepared data as a folder path because
    `run_with_accelerate` passes step arguments on a command line. Everything ZenML should
    record comes back in the return value: child processes have no step context.
    """
    cfg = PipelineConfig.from_json(config_json)
    out_dir = Path(tempfile.mkdtemp(prefix="viggo-finetune-"))
    summary = train_lora(cfg, Path(dataset), out_dir)
    curve = Image.open(io.BytesIO(loss_curve_png(summary["loss_history"])))
    curve.load()
    if in_zenml_step():
        from zenml import log_metadata

        log_metadata(metadata={"training": summary})
    return out_dir / "adapter", summary, curve
