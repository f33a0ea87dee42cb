"""What a well-formed ViGGO MR looks like, learned from training MRs: the shape that
grammar-constrained decoding (`utils.viggo.mr_lark`) lets a model write.

Learned, not written by hand, so the grammar accepts every training MR and nothing the
training data never showed:
- the slot order: ViGGO writes slots in one consistent order (no two training MRs disagree
  on any pair), which is not `SLOTS`' order;
- the dialogue acts, and which of them take one empty slot (`request_attribute(esrb[])`);
- the closed vocabularies (`CLOSED_SLOTS`: yes/no, ratings, ESRB, genres, platforms,
  perspectives), and how many items a list holds at most. The other slots (names,
  developers, years, dates, specifiers) take values a sentence states verbatim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from utils.viggo.grammar import BOOLEAN_SLOTS, LIST_SLOTS, SLOTS, parse_mr
from utils.viggo.written_order import split_mr

# Slots whose values come from a small closed set; the others are copied from the sentence.
CLOSED_SLOTS: frozenset[str] = LIST_SLOTS | BOOLEAN_SLOTS | {"esrb", "rating"}


@dataclass(frozen=True)
class MRSchema:
    order: tuple[str, ...]  # every slot, in the order MRs write them
    # act -> whether it takes one empty slot instead of valued ones
    acts: tuple[tuple[str, bool], ...]
    closed: tuple[tuple[str, tuple[str, ...]], ...]  # slot -> its values (CLOSED_SLOTS)
    max_items: tuple[tuple[str, int], ...]  # list slot -> most items in one MR


def _slot_order(mrs: list[tuple[str, list[tuple[str, list[str]]]]]) -> tuple[str, ...]:
    """Slots sorted so that each training MR is in order; ties keep `SLOTS`' order."""
    before: dict[str, set[str]] = {s: set() for s in SLOTS}
    for _, slots in mrs:
        names = [s for s, _ in slots]
        for i, later in enumerate(names):
            before[later].update(names[:i])
    order: list[str] = []
    while len(order) < len(SLOTS):
        ready = [s for s in SLOTS if s not in order and before[s] <= set(order)]
        if not ready:
            cycle = sorted(s for s in SLOTS if s not in order)
            raise ValueError(f"training MRs order the slots {cycle} inconsistently")
        order.append(ready[0])
    return tuple(order)


def learn_mr_schema(texts: Iterable[str]) -> MRSchema:
    """The schema of the MRs in `texts` (each must parse)."""
    mrs = []
    for text in texts:
        parse_mr(text)  # the grammar's own check, with its message
        mrs.append(split_mr(text))
    if not mrs:
        raise ValueError("no MRs to learn a schema from")
    empty: dict[str, bool] = {}
    values: dict[str, set[str]] = {s: set() for s in CLOSED_SLOTS}
    items: dict[str, int] = dict.fromkeys(LIST_SLOTS, 1)
    for act, slots in mrs:
        no_values = len(slots) == 1 and not slots[0][1]
        if empty.setdefault(act, no_values) != no_values:
            raise ValueError(f"training MRs of {act!r} mix empty and valued slots")
        for slot, vals in slots:
            if slot in CLOSED_SLOTS:
                values[slot].update(vals)
            if slot in LIST_SLOTS:
                items[slot] = max(items[slot], len(vals))
    return MRSchema(
        order=_slot_order(mrs),
        acts=tuple(sorted(empty.items())),
        closed=tuple((s, tuple(sorted(values[s]))) for s in SLOTS if s in CLOSED_SLOTS),
        max_items=tuple((s, items[s]) for s in SLOTS if s in LIST_SLOTS),
    )
