"""ViGGO MRs kept in their written order: the grammar's parsed form is canonical and forgets
the order a row used; augmentation, synthetic rows and the constrained-decoding schema need it."""

from __future__ import annotations

import re

from utils.viggo.grammar import LIST_SLOTS

# A validated MR: act, then slot[value] groups.
_ACT_RE = re.compile(r"^\s*([A-Za-z_]+)\s*\(")
_SLOT_RE = re.compile(r"([A-Za-z_]+)\s*\[([^\[\]]*)\]")

OrderedMR = tuple[str, list[tuple[str, list[str]]]]


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
