"""Reference faithfulness: the project's slot checker run on the dataset's own references.

A reference that misses, gets wrong or invents a slot of its MR teaches the model to do the
same: label noise. The data report lists these rows (worst first) and
`dataset.drop_unfaithful` removes them from training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from utils.data.mr_rows import mr_and_text
from utils.viggo import slot_report


@dataclass(frozen=True)
class Unfaithful:
    """One row whose reference fails the checker, with what it got wrong per slot."""

    row: int  # position among the split's usable rows, from 0
    errors: int
    missing: tuple[str, ...]
    wrong: tuple[str, ...]
    hallucinated: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "errors": self.errors,
            "missing": list(self.missing),
            "wrong": list(self.wrong),
            "hallucinated": list(self.hallucinated),
        }


def check_reference(mr: str, text: str, row: int = 0) -> Unfaithful | None:
    """The slot errors of `text` against `mr`, or None when it realises the MR exactly."""
    per_slot, extra = slot_report(mr, text)
    missing = tuple(s for s, (m, _, _) in per_slot.items() for _ in range(m))
    wrong = tuple(s for s, (_, w, _) in per_slot.items() for _ in range(w))
    invented = tuple(s for s, (_, _, h) in per_slot.items() for _ in range(h)) + tuple(extra)
    errors = len(missing) + len(wrong) + len(invented)
    return Unfaithful(row, errors, missing, wrong, invented) if errors else None


def unfaithful_rows(rows: list[dict[str, Any]], task: str) -> list[Unfaithful]:
    """Every row of `rows` whose reference fails the slot checker, in row order.

    Empty for tasks without an MR (text_to_text has nothing to check against)."""
    out = []
    for i, row in enumerate(rows):
        pair = mr_and_text(row, task)
        if pair is None:
            return []
        found = check_reference(*pair, row=i)
        if found is not None:
            out.append(found)
    return out
