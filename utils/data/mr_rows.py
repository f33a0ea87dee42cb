"""Which side of a task row is a ViGGO meaning representation (MRs in their written order:
`utils.viggo.written_order`)."""

from __future__ import annotations

from typing import Any

from utils.core.tasks import get_task
from utils.viggo.written_order import OrderedMR, join_mr, split_mr

__all__ = ["OrderedMR", "join_mr", "mr_and_text", "split_mr", "with_mr_and_text"]


def mr_and_text(row: dict[str, Any], task: str) -> tuple[str, str] | None:
    """(MR, sentence) of a ViGGO task row; None for tasks without an MR."""
    role = get_task(task).mr_role
    if role is None:
        return None
    return (row["input"], row["target"]) if role == "input" else (row["target"], row["input"])


def with_mr_and_text(row: dict[str, Any], task: str, mr: str, text: str) -> dict[str, Any]:
    """A new task row holding `mr` and `text` on the sides `task` puts them."""
    inp, target = (mr, text) if get_task(task).mr_role == "input" else (text, mr)
    return {"input": inp, "target": target, "references": [target]}
