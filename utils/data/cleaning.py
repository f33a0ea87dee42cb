"""Opt-in cleaning of the training split, each step measured: what it removed, and which.

`dataset.dedupe` drops rows repeating an earlier row's input and target;
`dataset.drop_unfaithful` drops rows whose reference fails the slot checker (ViGGO tasks);
`dataset.drop_test_leaks` drops rows whose input (nearly) repeats a test input. Only train is
cleaned: validation and test stay as the source has them, so scores stay comparable.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from utils.data.faithfulness import unfaithful_rows
from utils.data.similarity import near_duplicates

if TYPE_CHECKING:
    from utils.config import DatasetSection

logger = logging.getLogger(__name__)

Rows = list[dict[str, Any]]
# Removed rows listed per step (the count is always complete).
MAX_LISTED = 200


def _duplicate_rows(rows: Rows, task: str, test: Rows, similarity: float) -> dict[int, str]:
    seen: dict[tuple[str, str], int] = {}
    why = {}
    for i, r in enumerate(rows):
        first = seen.setdefault((r["input"], r["target"]), i)
        if first != i:
            why[i] = f"repeats row {first}"
    return why


def _unfaithful(rows: Rows, task: str, test: Rows, similarity: float) -> dict[int, str]:
    why = {}
    for u in unfaithful_rows(rows, task):
        kinds = (("missing", u.missing), ("wrong", u.wrong), ("invented", u.hallucinated))
        parts = [f"{kind} {', '.join(slots)}" for kind, slots in kinds if slots]
        why[u.row] = "; ".join(parts)
    return why


def _test_leaks(rows: Rows, task: str, test: Rows, similarity: float) -> dict[int, str]:
    # Each train input checked against every test input: train rows are what we drop.
    matches = near_duplicates([r["input"] for r in rows], [r["input"] for r in test], similarity)
    return {m.query: f"test row {m.corpus} (similarity {m.similarity:.2f})" for m in matches}


# Config key -> what finds the rows it removes; applied in this order.
STEPS = {
    "dedupe": _duplicate_rows,
    "drop_unfaithful": _unfaithful,
    "drop_test_leaks": _test_leaks,
}


def clean_train(train: Rows, test: Rows, cfg: DatasetSection) -> tuple[Rows, dict[str, Any]]:
    """The training rows left after every enabled cleaning step, and what each removed.

    Row numbers in the result are those of the uncleaned training split."""
    numbered = list(enumerate(train))
    done: dict[str, Any] = {}
    for key, find in STEPS.items():
        if not getattr(cfg, key):
            continue
        rows = [r for _, r in numbered]
        why = find(rows, cfg.task, test, cfg.near_duplicate_similarity)
        removed = [
            {"row": numbered[i][0], "why": why[i], **{k: rows[i][k] for k in ("input", "target")}}
            for i in sorted(why)
        ]
        numbered = [item for i, item in enumerate(numbered) if i not in why]
        done[key] = {"removed": len(removed), "rows": removed[:MAX_LISTED]}
        logger.info("dataset.%s removed %d training row(s)", key, len(removed))
    return [r for _, r in numbered], done
