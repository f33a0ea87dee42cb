from pathlib import Path
from typing import Annotated, Any

from zenml import ArtifactConfig, step
from zenml.types import HTMLString

from utils.config import EvaluationSection
from utils.evaluation import evaluate_on_split
from utils.report import predictions_report_html
from utils.secrets import hf_token


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
    baseline_predictions: list[dict[str, Any]] | None = None,
    hf_token_secret: str | None = None,
    allow_pickle_weights: bool = False,
) -> tuple[
    Annotated[dict[str, Any], ArtifactConfig(name="{stage}_metrics")],
    Annotated[list[dict[str, Any]], ArtifactConfig(name="{stage}_predictions")],
    Annotated[HTMLString, ArtifactConfig(name="{stage}_report")],
]:
    """Generate on the evaluation split (base model, or base + `adapter`) and score it.

    Used twice in the pipeline; `{stage}` (base / finetuned) names the artifacts. The HTML
    report lists rows worst first, next to the base model's output when given.
    """
    stage = "finetuned" if adapter is not None else "base"
    metrics, records = evaluate_on_split(
        Path(dataset),
        EvaluationSection.model_validate(evaluation),
        task,
        base_model_id,
        Path(adapter) if adapter is not None else None,
        quantization,
        dtype,
        trust_remote_code,
        desc=f"evaluate {stage}",
        token=hf_token(hf_token_secret),
        allow_pickle_weights=allow_pickle_weights,
    )
    report = predictions_report_html(
        task, records, metrics, f"{task}: {stage} model", baseline_predictions
    )
    # A literal tuple: ZenML reads multiple outputs from the return statement's shape.
    return metrics, records, HTMLString(report)
