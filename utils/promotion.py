"""Promotion decision: the candidate must beat its base model and the current stage holder."""

from __future__ import annotations

from typing import Any

from utils.config import PROMOTION_METRICS


def _better(a: float, b: float, direction: str, margin: float) -> bool:
    # Strict: a tie never promotes.
    return a > b + margin if direction == "max" else a < b - margin


def decide_promotion(
    metric: str,
    candidate: float,
    base: float,
    staging: float | None,
    min_improvement: float = 0.0,
    not_comparable: str | None = None,
) -> tuple[bool, str]:
    """`not_comparable`: why the staging figure cannot be compared (never promote then)."""
    direction = PROMOTION_METRICS[metric]
    word = "higher" if direction == "max" else "lower"
    if not _better(candidate, base, direction, min_improvement):
        return False, (
            f"finetuned {metric}={candidate:.4f} is not {word} than base {base:.4f}"
            f" by more than {min_improvement}"
        )
    if not_comparable:
        return False, f"not promoted: {not_comparable}"
    if staging is not None and not _better(candidate, staging, direction, min_improvement):
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
    ours, theirs = candidate_metrics.get("eval_set"), staging_metrics.get("eval_set")
    if ours != theirs:
        return None, (
            f"the staging version was evaluated on {theirs!r}, this run on {ours!r}; "
            "evaluate both on the same set or promote by hand"
        )
    return metric_value(staging_metrics, metric, "staging"), None
