"""Which side of a task row is a ViGGO meaning representation, and MRs kept in their
written order (the grammar's parsed form is canonical: it forgets the order a row used)."""

from __future__ import annotations

import re
from typing import Any

from utils.core.tasks import get_task
from utils.viggo import LIST_SLOTS

# A validated MR (rows.py parsed every one): act, then slot[value] groups.
_ACT_RE = re.compile(r"^\s*([A-Za-z_]+)\s*\(")
_SLOT_RE = re.compile(r"([A-Za-z_]+)\s*\[([^\[\]]*)\]")

OrderedMR = tuple[str, list[tuple[str, list[str]]]]


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


def split_mr(text: str) -> OrderedMR:
    """(act, [(slot, [items])]) in the order the MR was written."""
    match = _ACT_RE.match(text)
    if match is None:
        raise ValueError(f"not an MR: {text!r}")
    slots = []
    for slot, value in _SLOT_RE.findall(text[match.end() :]):
        value = " ".join(value.split())
        items = [v.strip() for v in value.split(",")] if slot in LIST_SLOTS else [value]
        slots.append((slot, [v for v in items if v]))
    return match.group(1), slots


def join_mr(mr: OrderedMR) -> str:
    act, slots = mr
    return f"{act}(" + ", ".join(f"{s}[{', '.join(items)}]" for s, items in slots) + ")"
