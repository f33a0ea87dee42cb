import logging
from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ModelStages

from utils.promotion import decide_promotion, metric_value, staging_figure

logger = logging.getLogger(__name__)


def _stage_holder_metrics(model_name: str, stage: str, current_id: Any) -> dict | None:
    """The stage holder's own finetuned metrics (never the running version's)."""
    try:
        holder = Client().get_model_version(model_name, stage)
    except KeyError:
        return None
    if holder.id == current_id:
        return None
    metrics = holder.run_metadata.get("finetuned_metrics")
    return metrics if isinstance(metrics, dict) else None


@step(enable_cache=False)
def promote(
    base_metrics: dict[str, Any],
    finetuned_metrics: dict[str, Any],
    training_summary: dict[str, Any],
    metric: str,
    min_improvement: float,
    stage: str,
    config: dict[str, Any],
) -> Annotated[dict[str, Any], "promotion"]:
    """Record all model-version metadata, then promote if the candidate beats base and stage.

    Metadata is written here (not in the evaluation steps) so a cached evaluation still
    lands on the new model version.
    """
    version = get_step_context().model_version
    candidate = metric_value(finetuned_metrics, metric, "finetuned")
    base = metric_value(base_metrics, metric, "base")
    holder = _stage_holder_metrics(version.model.name, stage, version.id)
    staging, not_comparable = staging_figure(finetuned_metrics, holder, metric)
    promoted, reason = decide_promotion(
        metric, candidate, base, staging, min_improvement, not_comparable
    )
    if promoted:
        version.set_stage(ModelStages(stage), force=True)
    decision = {
        "promoted": promoted,
        "reason": reason,
        "metric": metric,
        "candidate": candidate,
        "base": base,
        "staging_before": staging,
    }
    logger.info("Promotion to %s: %s (%s)", stage, promoted, reason)
    log_metadata(
        metadata={
            "base_metrics": base_metrics,
            "finetuned_metrics": finetuned_metrics,
            "training": training_summary,
            "config": config,
            "promotion": decision,
        },
        infer_model=True,
    )
    return decision
