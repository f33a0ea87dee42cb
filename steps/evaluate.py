from pathlib import Path
from typing import Annotated, Any

from zenml import ArtifactConfig, step
from zenml.types import HTMLString

from utils.config import EvaluationSection, ModelSource
from utils.core.names import STAGE_METRICS, STAGE_PREDICTIONS, STAGE_REPORT, EvalStage
from utils.evaluation.evaluator import evaluate_on_split
from utils.evaluation.report import predictions_report_html


@step
def evaluate(
    dataset: Path,
    task: str,
    model: ModelSource,
    evaluation: EvaluationSection,
    adapter: Path | None = None,
    baseline_predictions: list[dict[str, Any]] | None = None,
) -> tuple[
    Annotated[dict[str, Any], ArtifactConfig(name=STAGE_METRICS)],
    Annotated[list[dict[str, Any]], ArtifactConfig(name=STAGE_PREDICTIONS)],
    Annotated[HTMLString, ArtifactConfig(name=STAGE_REPORT)],
]:
    """Generate on the evaluation split (base model, or base + `adapter`) and score it.

    Used twice in the pipeline; `{stage}` (base / finetuned) names the artifacts. The HTML
    report lists rows worst first, next to the base model's output when given.
    """
    stage = EvalStage.FINETUNED if adapter is not None else EvalStage.BASE
    metrics, records = evaluate_on_split(
        Path(dataset),
        task,
        model,
        evaluation,
        Path(adapter) if adapter is not None else None,
        desc=f"evaluate {stage}",
    )
    report = predictions_report_html(
        task, records, metrics, f"{task}: {stage} model", baseline_predictions
    )
    # A literal tuple: ZenML reads multiple outputs from the return statement's shape.
    return metrics, records, HTMLString(report)
