"""The lexicon compiled: one regex per slot value, and the value-specific patterns (names,
developers, specifiers) built from the vocabularies."""

from __future__ import annotations

import re

from utils.viggo.lexicon import (
    BOOLEAN_KEYWORDS,
    BOOLEAN_NEGATIVE,
    CONCEPTS,
    ESRB,
    ESRB_STRICT,
    GENRES,
    PERSPECTIVES,
    PLATFORMS,
    RATING_LEX,
    RATING_STRICT,
)
from utils.viggo.matching import (
    fold,
    literal_rx,
    phrase_rx,
)
from utils.viggo.vocabulary import (
    DEVELOPERS,
    GAME_NAMES,
)


def _compile_all(table: dict[str, tuple[str, ...]]) -> dict[str, re.Pattern[str]]:
    return {value: phrase_rx(*phrases) for value, phrases in table.items()}


GENRE_RX = _compile_all(GENRES)
PLATFORM_RX = _compile_all(PLATFORMS)
_PERSPECTIVE_RX = _compile_all(PERSPECTIVES)
_ESRB_RX = _compile_all(ESRB)
ESRB_STRICT_RX = _compile_all(ESRB_STRICT)
RATING_RX = _compile_all(RATING_LEX)
RATING_STRICT_RX = _compile_all(RATING_STRICT)
BOOL_KEY_RX = _compile_all(BOOLEAN_KEYWORDS)
BOOL_NEG_RX = {k: phrase_rx(*v) if v else None for k, v in BOOLEAN_NEGATIVE.items()}
CONCEPT_RX = _compile_all(CONCEPTS)
NAME_RX = {n: literal_rx(n, flags=0) for n in GAME_NAMES}

_DEV_SUFFIXES = {
    "corporation", "inc", "ltd", "studios", "studio", "entertainment", "software", "games",
    "digital", "interactive", "team", "international", "online", "north", "ce",
}  # fmt: skip


# Short forms that are ordinary words; "Sports" alone must not stand for Sports Interactive.
_DEV_SHORT_STOP = {
    "sports", "visual", "massive", "evolution", "climax", "core", "ghost", "red", "moon",
    "ivory", "triumph", "upper", "black", "tin", "ninja", "slightly", "crystal", "remedy",
    "fuse", "days", "square", "ea", "the", "spectrum", "electronic", "illusion", "reflections",
}  # fmt: skip


def _developer_rx(value: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """Full developer name, or it with corporate suffixes dropped ("Valve" for Valve Corp.).

    Shortened forms must keep the original capitalisation and not be a common word.
    """
    tokens = re.findall(r"[^\W_]+", fold(value))
    full = r"[\W_]*".join(re.escape(t) for t in tokens)
    shorts = []
    while len(tokens) > 1 and tokens[-1].lower() in _DEV_SUFFIXES:
        tokens = tokens[:-1]
        if " ".join(tokens).lower() not in _DEV_SHORT_STOP:
            shorts.append(r"[\W_]*".join(re.escape(t) for t in tokens))
    body = full + "".join(f"|(?-i:{short})" for short in shorts)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", flags)


DEV_RX = {d: _developer_rx(d, flags=0) for d in DEVELOPERS}


def _name_rx(value: str) -> re.Pattern[str]:
    """Full name, or its main title before ':' (references shorten long titles)."""
    parts = [literal_rx(value).pattern]
    if ":" in value:
        parts.append(literal_rx(value.split(":")[0]).pattern)
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


def value_rx(slot: str, value: str) -> re.Pattern[str]:
    tables = {
        "genres": GENRE_RX,
        "platforms": PLATFORM_RX,
        "player_perspective": _PERSPECTIVE_RX,
        "esrb": _ESRB_RX,
    }
    if slot in tables and value in tables[slot]:
        return tables[slot][value]
    if slot == "name":
        return _name_rx(value)
    if slot == "developer":
        return _developer_rx(value)
    if slot == "specifier":
        return specifier_rx(value)
    return literal_rx(value)


def specifier_rx(value: str) -> re.Pattern[str]:
    # Allow light inflection: "cheap" ~ "cheapest", "addictive" ~ "addicting".
    stem = re.sub(r"(?:est|er|e|y|ive|ing|ed|ly)$", "", fold(value).lower()) or value
    body = r"[\W_]*".join(re.escape(t) for t in re.findall(r"[^\W_]+", stem))
    return re.compile(rf"(?<!\w){body}\w*", re.IGNORECASE)
