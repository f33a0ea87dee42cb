"""The slot error rate (SER): which slots of a ViGGO MR a sentence realises, gets wrong,
misses or adds.

``slot_errors(mr, sentence)`` checks a generated sentence against its MR with hand-written
surface rules. The unit of counting is one *slot item*: every item of a list slot counts on
its own (``genres[action, shooter]`` is two units), every other slot, including an empty
request_attribute slot, is one unit. ``total`` is the number of units in the MR.

Per unit the outcome is one of:

* **realised** - a surface form of the value is found (lexicons below: "RPG" for
  role-playing, "rated M" for M (for Mature), "single-player" for has_multiplayer[no],
  "loved" for rating[excellent], ...). Booleans are decided by polarity: a mention of the
  keyword ("multiplayer", "Steam", "Linux", "Mac") is negative when a negation cue ("no",
  "not", "n't", "without", "lacks", ...) sits in the same clause a few words before it or
  right after it ("Linux and Mac are not supported").
* **wrong** - the value is not found but a *different* value of the same slot is: another
  game name / developer / year / ESRB class / platform / genre / perspective, a boolean
  realised with the opposite polarity, or an explicit rating of another class ("poor
  reviews" for rating[excellent]). A mention consumed as "wrong" is not also counted as a
  hallucination. For list slots, missing items and foreign items of the same slot are paired
  up: each pair is one wrong unit.
* **missing** - neither the value nor a rival value of the slot is found.

A **hallucination** is a value mention not licensed by the MR, found after all MR values
have been located and masked out of the sentence. Only closed vocabularies are scanned: the
game names and developers of the training split (case-sensitive, so "driver" the word is not
the game "Driver"), four-digit years 1970-2029, ESRB classes, platforms, genres, player
perspectives, explicit rating phrases ("excellent reviews", "rated poorly") and, when their
slot is absent, the words "multiplayer"/"single-player", "Steam", "Linux" and "Mac". Each
distinct foreign value counts once. A few forms realise two values without being used up:
"FPS" (first person + shooter), "first and third person" (both perspectives).

``ser = (missing + wrong + hallucinated) / total``; it can exceed 1 for a sentence that
hallucinates more values than the MR has slots.

Empty request_attribute slots count as realised when the sentence mentions the attribute
itself ("perspective", "platform", "ESRB", "Steam", ...) or any value of it.

Known limits: rating is the loosest slot. Opinions are phrased freely ("didn't have strong
feelings about", "hit the jackpot"), so the lexicons are generous and the rating classes
overlap (excellent/good share positive words, average/poor share lukewarm ones); a sentence
gets "wrong" for rating only through an explicit rating of a clearly other class. Negation
is a clause-local heuristic, not a parse, so rhetorical questions ("Don't you like games on
Mac?") can flip a boolean. ``specifier`` is matched literally (light inflection allowed).
Names and developers are matched case-insensitively with punctuation ignored when they are
the MR's own value (a title may be shortened to the part before ':'), but case-sensitively
when scanned as rivals.

Reference check (each human reference scored against its own MR): corpus SER 0.62% on test
(31 errors / 4,965 units), 0.63% on train, 0.88% on validation; most remaining "errors" are
genuine slips in the references.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from utils.viggo.grammar import (
    BOOLEAN_SLOTS,
    MeaningRepresentation,
    parse_mr,
)
from utils.viggo.lexicon import (
    AFTER_NEGATION_CUE,
    AFTER_STOP,
    CLAUSE_BREAK,
    EXCEPT_BUT,
    FILLERS,
    GENRES,
    MONTHS,
    NEGATION_CUE,
    OPINION_NEGATION,
    PERSPECTIVES,
    YEAR_RE,
)
from utils.viggo.matching import (
    Text,
    fold,
    literal_rx,
    phrase_rx,
)
from utils.viggo.patterns import (
    BOOL_KEY_RX,
    BOOL_NEG_RX,
    CONCEPT_RX,
    DEV_RX,
    ESRB_STRICT_RX,
    GENRE_RX,
    NAME_RX,
    PLATFORM_RX,
    RATING_RX,
    RATING_STRICT_RX,
    specifier_rx,
    value_rx,
)


def _date_found(text: Text, value: str) -> bool:
    """exp_release_date: 'June 29, 2018' needs its month and day; a bare year its year."""
    year = re.search(r"\d{4}", value)
    month = next((m for m in MONTHS if m.lower() in value.lower()), None)
    day = re.search(r"\b(\d{1,2})\b", value)
    if month and day:
        month_rx = rf"(?:{month}|{month[:3]}\.?)"
        d = day.group(1)
        pat = re.compile(
            rf"{month_rx}\s+{d}(?:st|nd|rd|th)?\b|\b{d}(?:st|nd|rd|th)?\s+(?:of\s+)?{month_rx}",
            re.IGNORECASE,
        )
        found = text.take(pat)
        if found and year:
            text.take(re.compile(rf"\b{year.group(0)}\b"))
        return found
    if year:
        return text.take(re.compile(rf"(?<!\w){year.group(0)}(?!\w)"))
    return text.take(literal_rx(value))


@dataclass(frozen=True)
class SlotErrorCounts:
    """Slot units of an MR and the errors found for them in one sentence."""

    total: int
    missing: int = 0
    wrong: int = 0
    hallucinated: int = 0

    @property
    def errors(self) -> int:
        return self.missing + self.wrong + self.hallucinated

    @property
    def ser(self) -> float:
        if self.total == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.total

    def __add__(self, other: SlotErrorCounts) -> SlotErrorCounts:
        return SlotErrorCounts(
            self.total + other.total,
            self.missing + other.missing,
            self.wrong + other.wrong,
            self.hallucinated + other.hallucinated,
        )


def _strict_genre_rx() -> dict[str, re.Pattern[str]]:
    # Drop the loose forms ("race", "sim", "real time", ...) that occur in plain prose.
    loose = {"race", "races", "drive", r"sims?", r"real time", r"shoot", r"simulate[sd]?",
             r"vehicular", r"text based", r"action packed", r"independent(?:ly)?", r"FPS",
             r"simula\w*", r"fight(?:s)?"}  # fmt: skip
    return {g: phrase_rx(*(p for p in phrases if p not in loose)) for g, phrases in GENRES.items()}


def _strict_perspective_rx() -> dict[str, re.Pattern[str]]:
    loose = {r"side", r"bird", r"2D", r"overhead", r"aerial", r"side on"}
    return {
        p: phrase_rx(*(x for x in phrases if x not in loose)) for p, phrases in PERSPECTIVES.items()
    }


# Words inside a compound genre that must not count as extra genres once it is realised.
_GENRE_PARTS: dict[str, tuple[str, ...]] = {
    "action-adventure": ("action", "adventure"),
    "real-time strategy": ("strategy",),
    "turn-based strategy": ("strategy",),
    "text adventure": ("adventure",),
    "MMORPG": ("role-playing",),
    "trivia/board game": ("trivia/board game",),
    "driving/racing": ("driving/racing",),
}

# Boolean keywords that count as hallucinated when their slot is not in the MR. Multiplayer
# is narrowed to the word itself: "with friends", "online" are too common in plain prose.
_BOOL_HALLUCINATION_RX: dict[str, re.Pattern[str]] = {
    "has_multiplayer": phrase_rx(r"multi ?player", r"single ?player"),
    "available_on_steam": phrase_rx(r"Steam"),
    "has_linux_release": phrase_rx(r"Linux"),
    "has_mac_release": phrase_rx(r"Mac", r"Mac ?OS", r"OS ?X"),
}

_STRICT_GENRE_RX = _strict_genre_rx()
_STRICT_PERSPECTIVE_RX = _strict_perspective_rx()


class _Vocab:
    """The rival values of one slot, with a cheap substring pre-check before each regex."""

    def __init__(self, patterns: dict[str, re.Pattern[str]], literal: bool = False) -> None:
        # Longest values first, so "Half-Life 2" is consumed before a shorter name.
        self.items = [
            (value, rx, _needle(value) if literal else "")
            for value, rx in sorted(patterns.items(), key=lambda kv: -len(kv[0]))
        ]

    def take(self, text: Text, exclude: Iterable[str] = ()) -> set[str]:
        """Values mentioned in ``text`` (minus ``exclude``); their mentions get masked."""
        skip = set(exclude)
        lowered = text.text.lower()
        found: set[str] = set()
        for value, rx, needle in self.items:
            if value not in skip and needle in lowered and text.take(rx):
                found.add(value)
        return found


def _needle(value: str) -> str:
    """First token of a name: every accepted form of it (short forms too) starts with it."""
    tokens = re.findall(r"[^\W_]+", fold(value).lower())
    return tokens[0] if tokens else ""


_RIVALS: dict[str, _Vocab] = {
    "name": _Vocab(NAME_RX, literal=True),
    "developer": _Vocab(DEV_RX, literal=True),
    "genres": _Vocab(_STRICT_GENRE_RX),
    "platforms": _Vocab(PLATFORM_RX),
    "player_perspective": _Vocab(_STRICT_PERSPECTIVE_RX),
    "esrb": _Vocab(ESRB_STRICT_RX),
}

# Slots are checked in this order: developers and names first, so the words inside them
# ("Little Big *Adventure*", "*Nintendo* EAD") are masked before genres/platforms look;
# developers before names because "SUPERHOT Team" contains the game name "Superhot".
_CHECK_ORDER: tuple[str, ...] = (
    "developer", "name", "exp_release_date", "release_year", "esrb", "player_perspective",
    "genres", "platforms", "has_multiplayer", "available_on_steam", "has_linux_release",
    "has_mac_release", "specifier", "rating",
)  # fmt: skip


def _polarity_mentions(text: Text, slot: str) -> tuple[int, int]:
    """Count (positive, negative) mentions of a boolean slot, masking them."""
    pos = neg = 0
    neg_rx = BOOL_NEG_RX[slot]
    if neg_rx is not None:
        neg += len(text.find(neg_rx))
        text.take(neg_rx)
    for m in text.find(BOOL_KEY_RX[slot]):
        if _is_negated(text.text, m.start(), m.end()):
            neg += 1
        else:
            pos += 1
        text.mask(m.start(), m.end())
    return pos, neg


def _is_negated(sentence: str, start: int, end: int) -> bool:
    """Clause-local negation: a cue a few words before the keyword, or just after it."""
    before = sentence[:start]
    if EXCEPT_BUT.search(before):
        return True
    breaks = list(CLAUSE_BREAK.finditer(before))
    clause = before[breaks[-1].end() :] if breaks else before
    clause = OPINION_NEGATION.sub(" ", clause)
    words = [w for w in re.findall(r"[\w']+", clause) if w.lower() not in FILLERS]
    if NEGATION_CUE.search(" ".join(words[-5:])):
        return True
    after = sentence[end:]
    stop = AFTER_STOP.search(after)
    after = after[: stop.start()] if stop else after
    return bool(AFTER_NEGATION_CUE.search(after))


_BOTH_PERSPECTIVES = (
    r"(?:first|third)[\s,-]+(?:and|or|to|&)\s+(?:the\s+)?(?:first|third)[\s-]+person"
)
# Forms that realise a value without being used up by it: "FPS" is both first person and
# shooter; "first and third person" realises both perspectives.
_SHARED_FORMS: dict[tuple[str, str], re.Pattern[str]] = {
    ("player_perspective", "first person"): phrase_rx(r"FPS", _BOTH_PERSPECTIVES),
    ("player_perspective", "third person"): phrase_rx(_BOTH_PERSPECTIVES),
}


def _match_categorical(text: Text, slot: str, values: tuple[str, ...]) -> tuple[int, int, int]:
    """(missing, wrong, hallucinated) for a slot with a closed vocabulary of rival values."""
    unmatched = 0
    # Longest values first so "real-time strategy" is consumed before "strategy".
    for value in sorted(values, key=len, reverse=True):
        shared = _SHARED_FORMS.get((slot, value))
        if not text.take(value_rx(slot, value)) and not (shared and text.find(shared)):
            unmatched += 1
    if slot == "genres":
        # Parts of a realised compound genre are not extra genres ("turn-based RPG strategy").
        for value in values:
            for part in _GENRE_PARTS.get(value, ()):
                text.take(GENRE_RX[part])
    foreign = _count_rivals(text, slot, exclude=set(values))
    wrong = min(unmatched, foreign)
    return unmatched - wrong, wrong, foreign - wrong


def _count_rivals(text: Text, slot: str, exclude: set[str]) -> int:
    return len(_RIVALS[slot].take(text, exclude))


def _check_empty(text: Text, slot: str) -> bool:
    """request_attribute slot: the attribute itself or any of its values is mentioned."""
    found = False
    if slot in CONCEPT_RX:
        found |= text.take(CONCEPT_RX[slot])
    if slot in BOOL_KEY_RX:
        found |= text.take(BOOL_KEY_RX[slot])
    if slot in _RIVALS:
        found |= bool(_RIVALS[slot].take(text))
    if slot == "release_year":
        found |= text.take(YEAR_RE)
    return found


def _check_boolean(text: Text, slot: str, value: str) -> tuple[int, int]:
    """(missing, wrong) for a yes/no slot: any mention of the asked polarity satisfies it."""
    pos, neg = _polarity_mentions(text, slot)
    good, bad = (pos, neg) if value.lower() in {"yes", "true"} else (neg, pos)
    if good:
        return 0, 0
    return (0, 1) if bad else (1, 0)


def _check_rating(text: Text, value: str) -> tuple[int, int]:
    """(missing, wrong): lenient lexicon first; only explicit rival ratings make it wrong."""
    for rx in (RATING_STRICT_RX.get(value), RATING_RX.get(value), literal_rx(value)):
        if rx is not None and text.take(rx):
            return 0, 0
    for other, rx in RATING_STRICT_RX.items():
        if other != value and text.take(rx):
            return 0, 1
    return 1, 0


def _check_year(text: Text, value: str) -> tuple[int, int]:
    own = re.compile(rf"(?<!\w)(?:{re.escape(value)}|'{re.escape(value[-2:])})(?!\w)")
    if text.take(own):
        return 0, 0
    return (0, 1) if text.take(YEAR_RE) else (1, 0)


def _check_slot(text: Text, slot: str, values: tuple[str, ...]) -> tuple[int, int, int]:
    """(missing, wrong, hallucinated) for one MR slot; masks what it uses."""
    if not values:
        return int(not _check_empty(text, slot)), 0, 0
    if slot in _RIVALS:
        return _match_categorical(text, slot, values)
    if slot in BOOLEAN_SLOTS:
        return (*_check_boolean(text, slot, values[0]), 0)
    if slot == "rating":
        return (*_check_rating(text, values[0]), 0)
    if slot == "release_year":
        return (*_check_year(text, values[0]), 0)
    if slot == "exp_release_date":
        return int(not _date_found(text, values[0])), 0, 0
    return int(not text.take(specifier_rx(values[0]))), 0, 0


def _hallucinations(text: Text, present: set[str]) -> list[str]:
    """Closed-vocabulary values left in the masked sentence, one entry per distinct value."""
    found: list[str] = []
    for slot in ("name", "developer", "esrb", "player_perspective", "genres", "platforms"):
        found += [f"{slot}={value}" for value in sorted(_RIVALS[slot].take(text))]
    found += sorted({f"year={m.group(0)}" for m in text.find(YEAR_RE)})
    if "rating" not in present:
        found += [f"rating={v}" for v, rx in RATING_STRICT_RX.items() if text.take(rx)]
    for slot in sorted(BOOLEAN_SLOTS - present):
        if text.take(_BOOL_HALLUCINATION_RX[slot]):
            found.append(slot)
    return found


def slot_report(
    mr: MeaningRepresentation | str, sentence: str
) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    """Per-slot (missing, wrong, hallucinated) and the hallucinated values, for debugging."""
    if isinstance(mr, str):
        mr = parse_mr(mr)
    text = Text(sentence)
    slots = dict(mr.slots)
    per_slot = {s: _check_slot(text, s, slots[s]) for s in _CHECK_ORDER if s in slots}
    return per_slot, _hallucinations(text, set(slots))


def slot_errors(mr: MeaningRepresentation | str, sentence: str) -> SlotErrorCounts:
    """Count missing / wrong / hallucinated slot units of ``mr`` in ``sentence``.

    See the module docstring for the rules; ``mr`` may also be given as a string.
    """
    if isinstance(mr, str):
        mr = parse_mr(mr)
    per_slot, extra = slot_report(mr, sentence)
    total = sum(max(1, len(values)) for _, values in mr.slots)
    return SlotErrorCounts(
        total=total,
        missing=sum(m for m, _, _ in per_slot.values()),
        wrong=sum(w for _, w, _ in per_slot.values()),
        hallucinated=sum(h for _, _, h in per_slot.values()) + len(extra),
    )
