from pathlib import Path
from typing import Annotated, Any

from zenml import ArtifactConfig, step

from utils.config import EvaluationSection
from utils.evaluation import evaluate_on_split


@step
def evaluate(
    dataset: Path,
    evaluation: dict[str, Any],
    task: str,
    base_model_id: str,
    quantization: str = "none",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    adapter: Path | None = None,
) -> tuple[
    Annotated[dict[str, Any], ArtifactConfig(name="{stage}_metrics")],
    Annotated[list[dict[str, Any]], ArtifactConfig(name="{stage}_predictions")],
]:
    """Generate on the evaluation split (base model, or base + `adapter`) and score it.

    Used twice in the pipeline; `{stage}` (base / finetuned) names the artifacts.
    """
    metrics, records = evaluate_on_split(
        Path(dataset),
        EvaluationSection.model_validate(evaluation),
        task,
        base_model_id,
        Path(adapter) if adapter is not None else None,
        quantization,
        dtype,
        trust_remote_code,
        desc="evaluate " + ("finetuned" if adapter is not None else "base"),
    )
    # A literal tuple: ZenML reads multiple outputs from the return statement's shape.
    return metrics, records
