"""ViGGO MR parsing and the slot error rate (SER) rules."""

from __future__ import annotations

import random
import re

import pytest

from tests.conftest import viggo_rows
from utils.viggo import (
    DIALOGUE_ACTS,
    SLOTS,
    MeaningRepresentation,
    MRParseError,
    SlotErrorCounts,
    format_mr,
    parse_mr,
    slot_errors,
    try_parse_mr,
)


def _rows(split: str) -> list[dict]:
    return viggo_rows(split)


# ------------------------------------------------------------------------------ parsing


def test_parse_basic_fields() -> None:
    mr = parse_mr("inform(name[Tetris], genres[puzzle, arcade], has_multiplayer[no])")
    assert mr.act == "inform"
    assert mr.get("name") == ("Tetris",)
    assert set(mr.get("genres") or ()) == {"puzzle", "arcade"}
    assert mr.get("has_multiplayer") == ("no",)
    assert mr.get("platforms") is None


def test_slot_and_list_order_do_not_matter() -> None:
    a = parse_mr("inform(name[X], genres[driving/racing, sport], platforms[PC, Xbox])")
    b = parse_mr("inform(platforms[Xbox, PC], genres[sport, driving/racing], name[X])")
    assert a == b
    assert hash(a) == hash(b)
    assert format_mr(a) == format_mr(b)
    assert a != parse_mr("inform(name[X], genres[sport], platforms[PC, Xbox])")
    assert a != parse_mr("confirm(name[X], genres[driving/racing, sport], platforms[PC, Xbox])")


def test_empty_slot_and_comma_inside_scalar_value() -> None:
    mr = parse_mr("request_attribute(player_perspective[])")
    assert mr.get("player_perspective") == ()
    assert format_mr(mr) == "request_attribute(player_perspective[])"
    # Only list slots split on commas; this developer name contains one.
    dev = parse_mr("inform(name[Tetris], developer[Spectrum HoloByte, Inc])")
    assert dev.get("developer") == ("Spectrum HoloByte, Inc",)


def test_format_uses_canonical_slot_order() -> None:
    mr = parse_mr("inform(rating[good], name[X], platforms[PC, PlayStation])")
    assert format_mr(mr) == "inform(name[X], platforms[PlayStation, PC], rating[good])"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "expected 'act(slot[value], ...)'"),
        ("inform", "expected 'act(slot[value], ...)'"),
        ("inform(name[X]", "expected 'act(slot[value], ...)'"),
        ("inform()", "no slots"),
        ("inform(name[X],)", "trailing ','"),
        ("inform(name X)", "expected 'slot[value]'"),
        ("inform(name[X] genres[Y])", "expected ','"),
        ("shout(name[X])", "unknown dialogue act"),
        ("inform(colour[red])", "unknown slot"),
        ("inform(name[X], name[Y])", "appears twice"),
        ("inform(genres[a, , b])", "empty item"),
    ],
)
def test_malformed_mrs_raise_clear_errors(text: str, fragment: str) -> None:
    with pytest.raises(MRParseError, match=re.escape(fragment)):
        parse_mr(text)
    assert try_parse_mr(text) is None


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(MRParseError, ValueError)


def test_constants_cover_exactly_what_the_data_uses() -> None:
    acts, slots = set(), set()
    for split in ("train", "validation", "test"):
        for row in _rows(split):
            mr = parse_mr(row["meaning_representation"])
            acts.add(mr.act)
            slots.update(mr.slot_names())
    assert acts == set(DIALOGUE_ACTS)
    assert slots == set(SLOTS)


def test_round_trip_on_test_split() -> None:
    for row in _rows("test"):
        mr = parse_mr(row["meaning_representation"])
        assert parse_mr(format_mr(mr)) == mr
        assert format_mr(parse_mr(format_mr(mr))) == format_mr(mr)


# ---------------------------------------------------------------------------------- SER

FULL_MR = (
    "inform(name[Little Big Adventure], release_year[1994], rating[average], "
    "genres[action-adventure, puzzle], platforms[PlayStation, PC], esrb[E (for Everyone)], "
    "has_multiplayer[no], available_on_steam[yes], has_linux_release[no], has_mac_release[yes])"
)
FULL_TEXT = (
    "Little Big Adventure is an average action-adventure puzzle game from 1994 for "
    "PlayStation and PC. It is rated E (for Everyone), single-player only, and available on "
    "Steam. It has a Mac release but no Linux release."
)


def test_fully_realised_mr_has_no_errors() -> None:
    counts = slot_errors(FULL_MR, FULL_TEXT)
    # Two genres and two platforms count one unit per item.
    assert counts == SlotErrorCounts(total=12, missing=0, wrong=0, hallucinated=0)
    assert counts.ser == 0.0


def test_one_genre_of_a_list_missing() -> None:
    counts = slot_errors(FULL_MR, FULL_TEXT.replace(" puzzle", ""))
    assert (counts.missing, counts.wrong, counts.hallucinated) == (1, 0, 0)
    assert counts.ser == pytest.approx(1 / 12)


def test_missing_slot() -> None:
    counts = slot_errors(FULL_MR, FULL_TEXT.replace("It is rated E (for Everyone), ", "It is "))
    assert (counts.missing, counts.wrong, counts.hallucinated) == (1, 0, 0)


def test_boolean_with_flipped_polarity_is_wrong() -> None:
    flipped = FULL_TEXT.replace("single-player only", "multiplayer")
    assert slot_errors(FULL_MR, flipped).wrong == 1
    not_on_steam = FULL_TEXT.replace("available on Steam", "not available on Steam")
    assert slot_errors(FULL_MR, not_on_steam).wrong == 1


@pytest.mark.parametrize(
    ("mr", "sentence", "expected"),
    [
        ("inform(name[X], has_multiplayer[yes])", "X supports multiplayer.", (0, 0)),
        ("inform(name[X], has_multiplayer[no])", "X has no multiplayer mode.", (0, 0)),
        ("inform(name[X], has_multiplayer[no])", "X is a single-player game.", (0, 0)),
        ("inform(name[X], has_multiplayer[no])", "X has a multiplayer mode.", (0, 1)),
        ("inform(name[X], has_mac_release[yes])", "X runs on macOS.", (0, 0)),
        ("inform(name[X], has_mac_release[no])", "X doesn't have a Mac release.", (0, 0)),
        (
            "inform(name[X], has_linux_release[no], has_mac_release[no])",
            "X is not available on Linux or Mac.",
            (0, 0),
        ),
        (
            "inform(name[X], available_on_steam[yes], has_linux_release[no])",
            "X is on Steam and is not available for Linux.",
            (0, 0),
        ),
        ("inform(name[X], available_on_steam[yes])", "X is a game.", (1, 0)),
    ],
)
def test_boolean_slots(mr: str, sentence: str, expected: tuple[int, int]) -> None:
    counts = slot_errors(mr.replace("X", "Tetris"), sentence.replace("X", "Tetris"))
    assert (counts.missing, counts.wrong) == expected
    assert counts.hallucinated == 0


def test_years_wrong_missing_and_present() -> None:
    mr = "inform(name[Tetris], release_year[2014])"
    assert slot_errors(mr, "Tetris came out in 2014.").errors == 0
    assert slot_errors(mr, "Tetris came out in 2015.").wrong == 1
    assert slot_errors(mr, "Tetris is old.").missing == 1


def test_exp_release_date_needs_month_and_day() -> None:
    mr = "inform(name[Anthem], exp_release_date[February 22, 2019])"
    assert slot_errors(mr, "Anthem is due on February 22, 2019.").errors == 0
    assert slot_errors(mr, "Anthem is due in March.").missing == 1


def test_hallucinated_values_are_counted() -> None:
    mr = "inform(name[Tetris], genres[puzzle])"
    assert slot_errors(mr, "Tetris is a puzzle game.").errors == 0
    on_pc = slot_errors(mr, "Tetris is a puzzle game for PC released in 1986.")
    assert (on_pc.missing, on_pc.wrong, on_pc.hallucinated) == (0, 0, 2)
    other_game = slot_errors(mr, "Tetris is a puzzle game, a bit like Portal 2.")
    assert other_game.hallucinated == 1


def test_wrong_categorical_values() -> None:
    assert slot_errors("inform(name[Tetris], platforms[PC])", "Tetris is on Xbox.").wrong == 1
    esrb = slot_errors("inform(name[Tetris], esrb[T (for Teen)])", "Tetris is rated M.")
    assert esrb.wrong == 1
    name = slot_errors("inform(name[Tetris])", "Portal 2 is a game.")
    assert (name.wrong, name.hallucinated) == (1, 0)


@pytest.mark.parametrize(
    ("value", "sentence"),
    [
        ("M (for Mature)", "It is rated M."),
        ("M (for Mature)", "A mature game."),
        ("T (for Teen)", "Great for teens."),
        ("E (for Everyone)", "An E rated game."),
        ("E 10+ (for Everyone 10 and Older)", "It is rated E 10+."),
    ],
)
def test_esrb_paraphrases(value: str, sentence: str) -> None:
    assert slot_errors(f"inform(esrb[{value}])", sentence).errors == 0


@pytest.mark.parametrize(
    ("value", "sentence", "expected"),
    [
        ("role-playing", "It is an RPG.", 0),
        ("real-time strategy", "An RTS classic.", 0),
        ("driving/racing", "A racing game.", 0),
        ("hack-and-slash", "A hack and slash game.", 0),
        ("shooter", "A puzzle game.", 1),
    ],
)
def test_genre_paraphrases(value: str, sentence: str, expected: int) -> None:
    assert slot_errors(f"inform(genres[{value}])", sentence).errors == expected


def test_rating_lexicon_and_explicit_rival_rating() -> None:
    assert slot_errors("give_opinion(rating[excellent])", "I loved it.").errors == 0
    assert slot_errors("give_opinion(rating[poor])", "I really disliked it.").errors == 0
    assert slot_errors("inform(rating[excellent])", "It got poor reviews.").wrong == 1
    assert slot_errors("inform(rating[good])", "It exists.").missing == 1


def test_perspective_and_first_and_third_person() -> None:
    mr = "inform(player_perspective[first person, third person])"
    assert slot_errors(mr, "Play it in first or third person.").errors == 0
    assert slot_errors(mr, "Play it in third person.").missing == 1


def test_request_attribute_concept_mention() -> None:
    mr = "request_attribute(player_perspective[])"
    assert slot_errors(mr, "What player perspective do you prefer?").errors == 0
    assert slot_errors(mr, "What is your favorite game?").missing == 1
    steam = slot_errors("request_attribute(available_on_steam[])", "Do you buy games on Steam?")
    assert steam.errors == 0


def test_slot_errors_accepts_parsed_mr() -> None:
    mr = parse_mr("inform(name[Tetris])")
    assert isinstance(mr, MeaningRepresentation)
    assert slot_errors(mr, "Tetris!") == slot_errors("inform(name[Tetris])", "Tetris!")


def test_counts_add_up() -> None:
    total = SlotErrorCounts(4, 1, 0, 0) + SlotErrorCounts(6, 0, 1, 1)
    assert total == SlotErrorCounts(10, 1, 1, 1)
    assert total.ser == pytest.approx(0.3)
    assert SlotErrorCounts(0).ser == 0.0


def test_reference_ser_on_test_split_is_at_most_3_percent() -> None:
    total = SlotErrorCounts(0)
    for row in _rows("test"):
        total = total + slot_errors(row["meaning_representation"], row["target"])
    assert total.total > 4000
    assert total.ser <= 0.03, total


def test_ser_flags_references_paired_with_the_wrong_mr() -> None:
    # Guards against rules so lenient that anything passes: another game's MR must fail.
    rows = _rows("test")
    rng = random.Random(0)
    sample = rng.sample(rows, 150)
    total = SlotErrorCounts(0)
    for row in sample:
        mr = row["meaning_representation"]
        other = next(r for r in rng.sample(rows, 20) if r["meaning_representation"] != mr)
        total = total + slot_errors(other["meaning_representation"], row["target"])
    assert total.ser > 0.5, total
