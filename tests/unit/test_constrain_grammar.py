"""Grammar-constrained decoding without a model: the MR schema learned from training MRs,
what its grammar accepts and refuses, and `evaluation.constrain`'s validation."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from utils.config import validate_config
from utils.config.base import ConfigError
from utils.data.embedded import gem_rows, viggo_mr_schema
from utils.inference.constraints import grammars_for
from utils.inference.grammar_mask import ll_tokenizer
from utils.viggo.mr_lark import MRGrammar
from utils.viggo.mr_schema import CLOSED_SLOTS, learn_mr_schema


@pytest.fixture(scope="module")
def tok(smollm2_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def accepts(tok, grammar: str, text: str) -> bool:
    """Whether `grammar` accepts the completion `text` (then EOS)."""
    import llguidance

    matcher = llguidance.LLMatcher(ll_tokenizer(tok, [tok.eos_token_id]), grammar, log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return matcher.consume_tokens(ids) and matcher.consume_token(tok.eos_token_id)


def mr_accepts(tok, sentence: str, mr: str, stop_at_newline: bool = False) -> bool:
    grammar = grammars_for("mr", ["p"], [sentence], stop_at_newline)["p"]
    return accepts(tok, grammar, mr)


def test_schema_is_learned_from_training_mrs() -> None:
    schema = learn_mr_schema(
        [
            "inform(name[A], rating[good], genres[puzzle, indie], platforms[PC])",
            "request_attribute(esrb[])",
            "confirm(name[B], genres[shooter], has_multiplayer[no])",
        ]
    )
    order = schema.order
    assert order.index("name") < order.index("rating") < order.index("genres")
    assert dict(schema.acts) == {"inform": False, "request_attribute": True, "confirm": False}
    closed = dict(schema.closed)
    assert set(closed) == CLOSED_SLOTS
    assert closed["genres"] == ("indie", "puzzle", "shooter")
    assert closed["rating"] == ("good",)
    assert dict(schema.max_items)["genres"] == 2
    with pytest.raises(ValueError, match="inconsistently"):
        learn_mr_schema(["inform(name[A], rating[good])", "inform(rating[good], name[A])"])


def test_viggo_writes_slots_in_one_order_that_is_not_slots_order() -> None:
    schema = viggo_mr_schema()
    # esrb and rating come before genres in ViGGO's MRs, after them in `SLOTS`.
    assert schema.order.index("esrb") < schema.order.index("genres")
    assert dict(schema.acts)["request_attribute"] is True


SENTENCE = "Portal 2 is a puzzle game by Valve Corporation from 2011 that people love."


@pytest.mark.parametrize(
    ("mr", "ok"),
    [
        ("inform(name[Portal 2], release_year[2011], rating[excellent])", True),
        ("inform(name[Portal 2], developer[Valve Corporation], genres[puzzle, platformer])", True),
        ("give_opinion(name[Portal 2], rating[good])", True),
        ("request_attribute(genres[])", True),
        # A value the sentence does not hold, nor the slot's vocabulary.
        ("inform(name[Portal 3])", False),
        ("inform(developer[Valve])", True),  # a run of the sentence's words
        ("inform(rating[amazing])", False),
        ("inform(genres[puzzle game])", False),
        # Unknown act or slot, a slot twice, slots out of the learned order.
        ("describe(name[Portal 2])", False),
        ("inform(title[Portal 2])", False),
        ("inform(name[Portal 2], name[Portal 2])", False),
        ("inform(rating[good], name[Portal 2])", False),
        # Empty slots only where the act takes them, and never a dangling comma.
        ("inform(name[])", False),
        ("request_attribute(genres[puzzle])", False),
        ("inform(name[Portal 2], )", False),
        ("inform()", False),
        # Copied values start with a word character: no punctuation or spaces around.
        ("inform(name[ Portal 2])", False),
        ("inform(name[Portal 2 ])", False),
        ("inform(specifier[love.])", True),
    ],
)
def test_mr_grammar_accepts_exactly_schema_mrs(tok, mr: str, ok: bool) -> None:
    assert mr_accepts(tok, SENTENCE, mr) is ok


def test_a_line_break_after_the_mr_is_allowed_where_it_stops_the_row(tok) -> None:
    mr = "inform(name[Portal 2])"
    assert mr_accepts(tok, SENTENCE, mr + "\nmore", stop_at_newline=True)
    assert not mr_accepts(tok, SENTENCE, mr + "\nmore", stop_at_newline=False)
    assert not mr_accepts(tok, SENTENCE, "inform(name[Portal\n 2])", stop_at_newline=True)


def test_reference_mrs_are_accepted_by_their_sentences_grammar(tok) -> None:
    """The grammar is no stricter than ViGGO: a held-out reference MR is accepted by the
    grammar of its own sentence unless the sentence spells a value otherwise (a few rows
    write "Spellforce 3" for SpellForce 3)."""
    rows = random.Random(0).sample(gem_rows("test"), 200)
    refused = [r for r in rows if not mr_accepts(tok, r["target"], r["meaning_representation"])]
    assert len(refused) <= 2, [(r["meaning_representation"], r["target"]) for r in refused]


def test_grammar_rules_are_written_once_per_schema() -> None:
    grammar = MRGrammar(viggo_mr_schema())
    a, b = grammar.for_sentence("one sentence"), grammar.for_sentence("another one")
    # Only the SPAN terminal differs from one sentence to the next.
    assert a.rsplit("SPAN:", 1)[0] == b.rsplit("SPAN:", 1)[0]
    assert "substring_words" in a.rsplit("SPAN:", 1)[1]


def test_a_compiled_grammar_is_dropped_with_its_last_row(tok) -> None:
    """Each text_to_mr input has its own grammar (~1 MiB compiled): a decode of the whole
    test split must not keep every one of them until it ends."""
    from utils.inference.grammar_mask import RowGrammars

    grammars = grammars_for("mr", ["a", "b"], [SENTENCE, "Dirt: Showdown is fun."], False)
    rows = RowGrammars(tok, [tok.eos_token_id], [grammars["a"], grammars["a"], grammars["b"]])
    vocab = len(tok)
    assert rows.allowed([0, 1, 2], vocab).shape == (3, vocab)
    assert len(rows._compiled) == 2
    rows.forget(0)
    rows.forget(0)  # twice: still one row of grammar "a" left
    assert grammars["a"] in rows._compiled
    rows.forget(1)
    assert list(rows._compiled) == [grammars["b"]]
    # A row asked again after it was forgotten still gets its grammar (compiled anew).
    assert rows.allowed([0], vocab)[0].any()
    rows.forget(2)
    assert grammars["b"] not in rows._compiled


def test_regex_and_json_schema_grammars(tok) -> None:
    import json

    constraint = validate_config(
        {
            "dataset": {"task": "text_to_text"},
            "evaluation": {"constrain": {"regex": r"\d+ (apples|pears)"}},
        }
    ).evaluation.constrain
    regex = grammars_for(constraint, ["p"], ["x"], True)["p"]
    assert accepts(tok, regex, "12 pears")
    assert accepts(tok, regex, "12 pears\nand more")  # the line break stops the row
    assert not accepts(tok, regex, "12 plums")
    assert not accepts(tok, regex, "twelve pears")
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    section = {"json_schema": schema}
    constraint = validate_config(
        {"dataset": {"task": "text_to_text"}, "evaluation": {"constrain": section}}
    ).evaluation.constrain
    for stop_at_newline in (True, False):
        grammar = grammars_for(constraint, ["p"], ["x"], stop_at_newline)["p"]
        assert accepts(tok, grammar, json.dumps({"n": 3, "ok": True}))
        assert not accepts(tok, grammar, json.dumps({"n": "3"}))
        assert not accepts(tok, grammar, json.dumps({"n": 3, "other": 1}))
        # A line break inside the JSON would stop the row half-way: not with stop_at_newline.
        assert accepts(tok, grammar, '{\n"n": 3}') is not stop_at_newline


def _config(constrain, task: str = "text_to_text", **evaluation):
    return validate_config(
        {"dataset": {"task": task}, "evaluation": {"constrain": constrain, **evaluation}}, "x"
    )


@pytest.mark.parametrize(
    ("constrain", "task", "evaluation", "message"),
    [
        ("json", "text_to_text", {}, "expected null, 'mr', {regex: ...} or {json_schema"),
        (3, "text_to_text", {}, "got 3"),
        ("mr", "data_to_text", {}, "needs dataset.task=text_to_mr, not 'data_to_text'"),
        ("mr", "text_to_text", {}, "needs dataset.task=text_to_mr"),
        ({"regex": "a(b"}, "text_to_text", {}, "regex 'a(b' does not compile: error: unclosed"),
        ({"regex": "(?=a)b"}, "text_to_text", {}, "look-around"),
        ({"json_schema": {"type": "nope"}}, "text_to_text", {}, "not a usable JSON schema"),
        ({"json_schema": "x"}, "text_to_text", {}, "json_schema: Input should be a valid dict"),
        ({"regex": "a", "json_schema": {}}, "text_to_text", {}, "exactly one of regex and"),
        ({}, "text_to_text", {}, "exactly one of regex and json_schema"),
        ({"pattern": "a"}, "text_to_text", {}, "unknown key 'pattern'"),
        ("mr", "text_to_mr", {"engine": "vllm"}, "needs the continuous or generate engine"),
        ("mr", "text_to_mr", {"rerank": {"method": "beam"}}, "not beam search"),
    ],
)
def test_bad_constraints_are_refused_in_one_line(constrain, task, evaluation, message) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        _config(constrain, task, **evaluation)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_good_constraints_validate() -> None:
    assert _config(None).evaluation.constrain is None
    assert _config("mr", "text_to_mr").evaluation.constrain == "mr"
    assert _config({"regex": "[a-z]+"}, "data_to_text").evaluation.constrain.regex == "[a-z]+"
    cfg = _config({"json_schema": {"type": "object"}}, engine="generate")
    # The config travels as JSON (step parameters, model metadata) and comes back equal.
    assert type(cfg).from_json(cfg.to_json()) == cfg
