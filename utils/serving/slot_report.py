"""The per-output slot report a served data_to_text answer carries, so a caller can reject
a generation that drops or invents a slot (ViGGO's SER rules, as the evaluation counts)."""

from __future__ import annotations

from typing import Any

from utils.viggo import slot_report, try_parse_mr


def slot_error_report(mr: str, sentence: str) -> dict[str, Any] | None:
    """Which slots of `mr` the sentence misses, gets wrong or invents, and how many errors
    that makes; None for an input that is not an MR."""
    parsed = try_parse_mr(mr)
    if parsed is None:
        return None
    per_slot, invented = slot_report(parsed, sentence)
    missing = [s for s, (m, _, _) in per_slot.items() if m]
    wrong = [s for s, (_, w, _) in per_slot.items() if w]
    hallucinated = [s for s, (_, _, h) in per_slot.items() if h] + invented
    errors = sum(m + w + h for m, w, h in per_slot.values()) + len(invented)
    return {"missing": missing, "wrong": wrong, "hallucinated": hallucinated, "errors": errors}
