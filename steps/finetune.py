import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import step

from utils.config import PipelineConfig
from utils.training import train_lora


@step
def finetune(
    config_json: str, dataset: Path
) -> tuple[Annotated[Path, "adapter"], Annotated[dict[str, Any], "training_summary"]]:
    """Train the LoRA adapter. Parameters are primitives so Accelerate can relaunch this step.

    The config comes as a JSON string and the prepared data as a folder path because
    `run_with_accelerate` passes step arguments on a command line.
    """
    cfg = PipelineConfig.from_json(config_json)
    out_dir = Path(tempfile.mkdtemp(prefix="viggo-finetune-"))
    summary = train_lora(cfg, Path(dataset), out_dir)
    return out_dir / "adapter", summary
