import logging
from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.enums import ModelStages

from utils.config import PipelineConfig
from utils.core.names import CONFIG, PROMOTION, TRAINING, EvalStage, metrics_name
from utils.zenml_ops.promotion import (
    decide_promotion,
    metric_value,
    stage_holder_metrics,
    staging_figure,
)
from utils.zenml_ops.step_context import step_memory

logger = logging.getLogger(__name__)


@step(enable_cache=False)
def promote(
    base_metrics: dict[str, Any],
    finetuned_metrics: dict[str, Any],
    training_summary: dict[str, Any],
    config: PipelineConfig,
) -> Annotated[dict[str, Any], PROMOTION]:
    """Record all model-version metadata, then promote if the candidate beats base and stage.

    Metadata is written here (not in the evaluation steps) so a cached evaluation still
    lands on the new model version.
    """
    with step_memory():
        rule = config.promotion
        version = get_step_context().model_version
        candidate = metric_value(finetuned_metrics, rule.metric, EvalStage.FINETUNED)
        base = metric_value(base_metrics, rule.metric, EvalStage.BASE)
        holder = stage_holder_metrics(version.model.name, rule.stage, version.id)
        staging, not_comparable = staging_figure(finetuned_metrics, holder, rule.metric)
        promoted, reason = decide_promotion(
            rule.metric, candidate, base, staging, rule.min_improvement, not_comparable
        )
        if promoted and not rule.enabled:
            promoted, reason = False, f"promotion.enabled is false (would have: {reason})"
        if promoted:
            version.set_stage(ModelStages(rule.stage), force=True)
        decision = {
            "promoted": promoted,
            "reason": reason,
            "metric": rule.metric,
            "candidate": candidate,
            "base": base,
            "staging_before": staging,
        }
        logger.info("Promotion to %s: %s (%s)", rule.stage, promoted, reason)
        log_metadata(
            metadata={
                metrics_name(EvalStage.BASE): base_metrics,
                metrics_name(EvalStage.FINETUNED): finetuned_metrics,
                TRAINING: training_summary,
                CONFIG: config.model_dump(),
                PROMOTION: decision,
            },
            infer_model=True,
        )
        return decision
