"""Offline metrics: ROUGE, BLEU, data_to_text (per row and multi-reference), text_to_mr."""

from __future__ import annotations

import pytest

from tests.conftest import viggo_rows
from utils.metrics.task_metrics import (
    bleu,
    compute_metrics,
    data_to_text_metrics,
    per_row_scores,
    rouge,
    text_to_mr_metrics,
)

KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
MR_A = "inform(name[Tetris], release_year[1986], genres[puzzle])"
MR_B = "inform(name[Portal 2], platforms[PC])"


# -------------------------------------------------------------------------------- ROUGE


def test_rouge_identical_is_one_and_disjoint_is_zero() -> None:
    text = "Tetris is a puzzle game. It came out in 1986."
    assert rouge([text], [text]) == dict.fromkeys(KEYS, 1.0)
    assert rouge(["alpha beta gamma"], ["delta epsilon zeta"]) == dict.fromkeys(KEYS, 0.0)


def test_rouge_is_a_mean_over_rows_and_uses_the_stemmer() -> None:
    scores = rouge(["the cat sat", "alpha beta"], ["the cat sat", "gamma delta"])
    assert scores["rouge1"] == pytest.approx(0.5)
    # "games"/"game" and "played"/"play" only match after stemming.
    assert rouge(["games played"], ["game play"])["rouge1"] == pytest.approx(1.0)


def test_rouge_takes_the_best_reference_per_row() -> None:
    scores = rouge(["a puzzle game"], [["something else entirely", "a puzzle game"]])
    assert scores["rougeL"] == pytest.approx(1.0)


def test_rouge_lsum_sees_sentence_boundaries() -> None:
    # Swapping sentences keeps rougeLsum (per-sentence LCS) perfect but lowers rougeL.
    pred = "Tetris is great. It came out in 1986."
    ref = "It came out in 1986. Tetris is great."
    scores = rouge([pred], [ref])
    assert scores["rougeLsum"] == pytest.approx(1.0)
    assert scores["rougeL"] < 0.9


def test_rouge_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        rouge(["a", "b"], ["a"])


# --------------------------------------------------------------------------------- BLEU


def test_bleu_identical_is_one_and_disjoint_is_zero() -> None:
    text = "Tetris is a puzzle game that came out in 1986 for many platforms ."
    assert bleu([text], [[text]]) == pytest.approx(1.0)
    assert bleu(["alpha beta gamma delta"], [["one two three four"]]) == 0.0


def test_bleu_ragged_references() -> None:
    preds = [
        "Tetris is a puzzle game that came out in 1986 .",
        "Portal 2 is a first person puzzle shooter for PC .",
    ]
    refs = [
        ["Tetris is a puzzle game that came out in 1986 ."],
        ["Portal 2 is on PC .", "Portal 2 is a first person puzzle shooter for PC ."],
    ]
    assert bleu(preds, refs) == pytest.approx(1.0)
    # Padding a short row by repeating its reference must not change the score, while an
    # extra real reference does.
    weaker = [
        "Tetris came out in 1986 and is a puzzle game .",
        "Portal 2 is a first person shooter on the PC .",
    ]
    ragged = bleu(weaker, refs)
    assert ragged == pytest.approx(bleu(weaker, [refs[0] * 2, refs[1]]))
    assert ragged != pytest.approx(bleu(weaker, [refs[0], refs[1][:1]]))
    assert 0.0 < ragged < 1.0


def test_bleu_needs_a_reference_per_row() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        bleu(["x"], [[]])


# ------------------------------------------------------------------------- data_to_text


def test_data_to_text_groups_identical_inputs() -> None:
    inputs = [MR_A, MR_A, MR_B]
    references = [
        "Tetris is a puzzle game from 1986.",
        "Released in 1986, Tetris is a puzzle game.",
        "Portal 2 is available on PC.",
    ]
    # Greedy decoding: both MR_A rows get the same output, equal to the 2nd reference.
    predictions = [references[1], references[1], references[2]]
    m = data_to_text_metrics(inputs, predictions, references)
    assert m["num_rows"] == 3
    assert m["num_distinct_inputs"] == 2
    assert m["multiref_rouge1"] == pytest.approx(1.0)
    assert m["multiref_bleu"] == pytest.approx(1.0)
    assert m["rouge1"] < 1.0
    assert m["bleu"] < 1.0
    assert m["ser"] == 0.0
    assert m["multiref_ser"] == 0.0
    for key, value in m.items():
        if not key.startswith("num_"):
            assert 0.0 <= value <= 1.0, key


def test_data_to_text_ser_counts_slot_units() -> None:
    # MR_A has 3 units; the prediction drops the year (1 missing) -> 1/3 per row.
    inputs = [MR_A, MR_A]
    predictions = ["Tetris is a puzzle game.", "Tetris is a puzzle game."]
    references = ["Tetris is a puzzle game from 1986.", "Tetris, a 1986 puzzle game."]
    m = data_to_text_metrics(inputs, predictions, references)
    assert m["ser"] == pytest.approx(1 / 3)
    assert m["multiref_ser"] == pytest.approx(1 / 3)
    assert m["num_distinct_inputs"] == 1


# --------------------------------------------------------------------------- text_to_mr


def test_text_to_mr_exact_match_is_order_insensitive() -> None:
    refs = ["inform(name[X], genres[puzzle, arcade])"]
    preds = ["inform(genres[arcade, puzzle], name[X])"]
    m = text_to_mr_metrics(["a sentence"], preds, refs)
    assert m["exact_match"] == 1.0
    assert m["slot_f1"] == 1.0
    assert m["parse_rate"] == 1.0


def test_text_to_mr_partial_and_unparsable_predictions() -> None:
    refs = [
        "inform(name[A], genres[x, y])",
        "confirm(name[B])",
        "inform(name[C])",
    ]
    preds = [
        "inform(name[A], genres[x])",  # 2 of 3 gold pairs, no false ones
        "inform(name[B])",  # right slot, wrong act
        "inform(name[C]",  # unparsable
    ]
    m = text_to_mr_metrics(["s1", "s2", "s3"], preds, refs)
    assert m["exact_match"] == 0.0
    assert m["act_accuracy"] == pytest.approx(1 / 3)
    assert m["parse_rate"] == pytest.approx(2 / 3)
    # tp = 2 + 1, predicted pairs = 2 + 1, gold pairs = 3 + 1 + 1
    assert m["slot_precision"] == pytest.approx(1.0)
    assert m["slot_recall"] == pytest.approx(3 / 5)
    assert m["slot_f1"] == pytest.approx(2 * 0.6 / 1.6)
    assert 0.0 < m["rougeL"] < 1.0


def test_text_to_mr_test_split_references_match_themselves() -> None:
    rows = viggo_rows("test")
    mrs = [r["meaning_representation"] for r in rows]
    m = text_to_mr_metrics([r["target"] for r in rows], mrs, mrs)
    assert m["num_rows"] == 1083
    assert m["exact_match"] == 1.0
    assert m["slot_f1"] == 1.0
    # A shifted pairing must not match: guards against an always-true comparison.
    few = mrs[:200]
    shifted = text_to_mr_metrics(few, few[1:] + few[:1], few)
    assert shifted["exact_match"] < 0.8


# --------------------------------------------------------------------- dispatch, per row


def test_compute_metrics_dispatch_and_bad_task() -> None:
    d2t = compute_metrics("data_to_text", [MR_B], ["Portal 2 is on PC."], ["Portal 2 is on PC."])
    assert "multiref_bleu" in d2t
    t2m = compute_metrics("text_to_mr", ["Portal 2 is on PC."], [MR_B], [MR_B])
    assert t2m["exact_match"] == 1.0
    with pytest.raises(ValueError, match=r"'summarize'.*data_to_text.*text_to_mr"):
        compute_metrics("summarize", [], [], [])


def test_per_row_scores() -> None:
    rows = per_row_scores(
        "data_to_text",
        [MR_A, MR_B],
        ["Tetris is a puzzle game from 1986.", "Portal 2 is on Xbox."],
        ["Tetris is a puzzle game from 1986.", "Portal 2 is available on PC."],
    )
    assert [r["index"] for r in rows] == [0, 1]
    assert rows[0]["ser"] == 0.0
    assert rows[0]["rougeL"] == pytest.approx(1.0)
    assert rows[1]["ser"] == pytest.approx(0.5)
    assert rows[1]["wrong"] == 1

    t2m = per_row_scores("text_to_mr", ["s", "t"], [MR_A, "garbage"], [MR_A, MR_B])
    assert (t2m[0]["exact_match"], t2m[0]["slot_f1"], t2m[0]["parsed"]) == (True, 1.0, True)
    assert (t2m[1]["exact_match"], t2m[1]["slot_f1"], t2m[1]["parsed"]) == (False, 0.0, False)
    with pytest.raises(ValueError, match="valid tasks"):
        per_row_scores("nope", [], [], [])
