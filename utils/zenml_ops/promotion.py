"""Promotion: the candidate must beat its base model and the current stage holder, on
`promotion.metric`, scored on the same evaluation set."""

from __future__ import annotations

from typing import Any

from utils.core.names import EVAL_SET, EvalStage, metrics_name
from utils.core.tasks import METRICS, Direction


def decide_promotion(
    metric: str,
    candidate: float,
    base: float,
    staging: float | None,
    min_improvement: float = 0.0,
    not_comparable: str | None = None,
) -> tuple[bool, str]:
    """`not_comparable`: why the staging figure cannot be compared (never promote then)."""
    spec = METRICS[metric]
    word = "higher" if spec.direction is Direction.HIGHER else "lower"
    if not spec.better(candidate, base, min_improvement):
        return False, (
            f"finetuned {metric}={candidate:.4f} is not {word} than base {base:.4f}"
            f" by more than {min_improvement}"
        )
    if not_comparable:
        return False, f"not promoted: {not_comparable}"
    if staging is not None and not spec.better(candidate, staging, min_improvement):
        return False, (
            f"finetuned {metric}={candidate:.4f} is not {word} than the current staging "
            f"version's {staging:.4f} by more than {min_improvement}"
        )
    against = f" and staging {staging:.4f}" if staging is not None else " (no staging version yet)"
    return True, f"finetuned {metric}={candidate:.4f} beats base {base:.4f}{against}"


def metric_value(metrics: dict[str, Any], metric: str, who: str) -> float:
    if metric not in metrics or metrics[metric] is None:
        raise KeyError(f"{who} metrics have no {metric!r}; found {sorted(metrics)}")
    return float(metrics[metric])


def staging_figure(
    candidate_metrics: dict[str, Any], staging_metrics: dict[str, Any] | None, metric: str
) -> tuple[float | None, str | None]:
    """(the staging version's metric, or None; a reason when it is not comparable).

    Scores on different evaluation sets (split, row sample) say nothing about which model
    is better, so they are never compared.
    """
    if staging_metrics is None:
        return None, None
    ours, theirs = candidate_metrics.get(EVAL_SET), staging_metrics.get(EVAL_SET)
    if ours != theirs:
        return None, (
            f"the staging version was evaluated on {theirs!r}, this run on {ours!r}; "
            "evaluate both on the same set or promote by hand"
        )
    return metric_value(staging_metrics, metric, "staging"), None


def stage_holder_metrics(model_name: str, stage: str, current_id: Any) -> dict | None:
    """The stage holder's own finetuned metrics (never the running version's)."""
    from zenml.client import Client

    try:
        holder = Client().get_model_version(model_name, stage)
    except KeyError:
        return None
    if holder.id == current_id:
        return None
    metrics = holder.run_metadata.get(metrics_name(EvalStage.FINETUNED))
    return metrics if isinstance(metrics, dict) else None
