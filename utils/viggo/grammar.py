"""ViGGO meaning representations (MRs): the grammar, parsing and canonical formatting.

An MR looks like ``inform(name[Tetris], genres[puzzle, strategy], has_multiplayer[yes])``:
one dialogue act wrapping comma-separated ``slot[value]`` pairs. ``genres``, ``platforms``
and ``player_perspective`` hold comma-separated lists whose order carries no meaning, so
parsed MRs compare order-insensitively (slots and list items alike).
``request_attribute`` MRs carry one slot with an empty value, e.g. ``esrb[]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DIALOGUE_ACTS: tuple[str, ...] = (
    "inform",
    "confirm",
    "give_opinion",
    "recommend",
    "request",
    "request_attribute",
    "request_explanation",
    "suggest",
    "verify_attribute",
)

# Order used by format_mr; it is the order the ViGGO MRs mostly follow.
SLOTS: tuple[str, ...] = (
    "name",
    "release_year",
    "exp_release_date",
    "developer",
    "genres",
    "player_perspective",
    "platforms",
    "esrb",
    "rating",
    "has_multiplayer",
    "available_on_steam",
    "has_linux_release",
    "has_mac_release",
    "specifier",
)

LIST_SLOTS: frozenset[str] = frozenset({"genres", "platforms", "player_perspective"})
BOOLEAN_SLOTS: frozenset[str] = frozenset(
    {"has_multiplayer", "available_on_steam", "has_linux_release", "has_mac_release"}
)


class MRParseError(ValueError):
    """Raised by parse_mr for text that is not a well-formed ViGGO MR."""


@dataclass(frozen=True)
class MeaningRepresentation:
    """A parsed MR in canonical order, so that == and hash ignore slot and item order."""

    act: str
    slots: tuple[tuple[str, tuple[str, ...]], ...]

    def get(self, slot: str) -> tuple[str, ...] | None:
        """Values of ``slot`` (``()`` for an empty slot), or None when the MR lacks it."""
        for name, values in self.slots:
            if name == slot:
                return values
        return None

    def slot_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.slots)

    def pairs(self) -> set[tuple[str, str]]:
        """(slot, value) pairs with list values expanded per item; empty slots map to ''."""
        out: set[tuple[str, str]] = set()
        for name, values in self.slots:
            for value in values or ("",):
                out.add((name, value))
        return out


# ---------------------------------------------------------------------------- parsing

_MR_RE = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.DOTALL)
_SLOT_RE = re.compile(r"\s*([A-Za-z_]+)\s*\[([^\[\]]*)\]\s*")


def _item_key(slot: str, item: str) -> tuple[int, str]:
    # Platforms keep the dataset's conventional order; other lists sort alphabetically.
    order = ("PlayStation", "Xbox", "Nintendo", "Nintendo Switch", "PC")
    if slot == "platforms" and item in order:
        return (order.index(item), "")
    return (len(order), item.lower())


def _canonical_slots(
    raw: Iterable[tuple[str, tuple[str, ...]]],
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    items = []
    for slot, values in raw:
        unique = sorted(set(values), key=lambda v: _item_key(slot, v))
        items.append((slot, tuple(unique)))
    return tuple(sorted(items, key=lambda kv: SLOTS.index(kv[0])))


def _split_value(slot: str, value: str) -> tuple[str, ...]:
    value = " ".join(value.split())
    if not value:
        return ()
    if slot in LIST_SLOTS:
        items = tuple(v.strip() for v in value.split(","))
        if any(not v for v in items):
            raise MRParseError(f"empty item in list slot {slot}[{value}]")
        return items
    return (value,)


def parse_mr(text: str) -> MeaningRepresentation:
    """Parse ``act(slot[value], ...)``; raise MRParseError saying what is wrong."""
    if not isinstance(text, str):
        raise MRParseError(f"MR must be a string, got {type(text).__name__}")
    match = _MR_RE.match(text)
    if match is None:
        raise MRParseError(f"expected 'act(slot[value], ...)', got {text!r}")
    act, body = match.group(1), match.group(2)
    if act not in DIALOGUE_ACTS:
        raise MRParseError(f"unknown dialogue act {act!r} in {text!r}; valid: {DIALOGUE_ACTS}")
    raw: list[tuple[str, tuple[str, ...]]] = []
    pos = 0
    while pos < len(body):
        slot_match = _SLOT_RE.match(body, pos)
        if slot_match is None:
            raise MRParseError(f"expected 'slot[value]' at {body[pos:]!r} in {text!r}")
        slot = slot_match.group(1)
        if slot not in SLOTS:
            raise MRParseError(f"unknown slot {slot!r} in {text!r}")
        if any(slot == seen for seen, _ in raw):
            raise MRParseError(f"slot {slot!r} appears twice in {text!r}")
        raw.append((slot, _split_value(slot, slot_match.group(2))))
        pos = slot_match.end()
        if pos < len(body):
            if body[pos] != ",":
                raise MRParseError(f"expected ',' between slots at {body[pos:]!r} in {text!r}")
            pos += 1
            if not body[pos:].strip():
                raise MRParseError(f"trailing ',' in {text!r}")
    if not raw:
        raise MRParseError(f"MR has no slots: {text!r}")
    return MeaningRepresentation(act=act, slots=_canonical_slots(raw))


def try_parse_mr(text: str) -> MeaningRepresentation | None:
    """parse_mr, but None instead of an exception (for model outputs)."""
    try:
        return parse_mr(text)
    except MRParseError:
        return None


def format_mr(mr: MeaningRepresentation) -> str:
    """Canonical string: slots in SLOTS order, list items sorted."""
    slots = _canonical_slots(mr.slots)
    inner = ", ".join(f"{slot}[{', '.join(values)}]" for slot, values in slots)
    return f"{mr.act}({inner})"
