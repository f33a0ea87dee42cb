from pathlib import Path
from typing import Annotated, Any

from zenml import ArtifactConfig, step
from zenml.types import HTMLString

from utils.config import EvaluationSection, ModelSource
from utils.core.names import (
    STAGE_METRICS,
    STAGE_PREDICTIONS,
    STAGE_REPORT,
    STEP_MEMORY,
    EvalStage,
)
from utils.evaluation.evaluator import evaluate_on_split
from utils.evaluation.report import predictions_report_html
from utils.zenml_ops.step_context import step_memory
from utils.zenml_ops.tracker_logging import log_evaluation, step_tracker


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
    report lists rows worst first, next to the base model's output when given. With an
    experiment tracker, the metrics go to it as `<stage>_<metric>`, with the report. The
    step's own peak memory is in the metrics, the report and the step's metadata.
    """
    stage = EvalStage.FINETUNED if adapter is not None else EvalStage.BASE
    with step_memory() as memory:
        metrics, records = evaluate_on_split(
            Path(dataset),
            task,
            model,
            evaluation,
            Path(adapter) if adapter is not None else None,
            desc=f"evaluate {stage}",
        )
        # The model is gone by now: this is the step's peak (the model version gets it).
        metrics[STEP_MEMORY] = memory.figures()
        report = predictions_report_html(
            task, records, metrics, f"{task}: {stage} model", baseline_predictions
        )
        tracker = step_tracker()
        if tracker is not None:
            settings = {"model": model.model_dump(), "evaluation": evaluation.model_dump()}
            log_evaluation(tracker, stage, metrics, report, settings)
    # A literal tuple: ZenML reads multiple outputs from the return statement's shape.
    return metrics, records, HTMLString(report)
