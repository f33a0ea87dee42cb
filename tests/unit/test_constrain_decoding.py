"""Grammar-constrained decoding on a tiny random model: outputs inside the grammar, in both
engines, greedy and sampled, and greedy unchanged wherever the grammar already accepts it."""

from __future__ import annotations

import json
import re

import pytest

from utils.config import validate_config
from utils.core.tasks import get_task
from utils.data.embedded import gem_rows, viggo_mr_schema
from utils.data.prompts import build_prompt
from utils.inference.constraints import completion_grammar, grammars_for
from utils.inference.decoder import Decoder
from utils.inference.engine import Sampling
from utils.inference.transformers_engine import TransformersEngine, generate
from utils.viggo import DIALOGUE_ACTS, SLOTS, try_parse_mr

# Rows of a random model's constrained MR stay short enough for this (see the test).
MAX_NEW = 160


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    rows = gem_rows("test")
    return list(dict.fromkeys(r["target"] for r in rows[::97]))[:8]


def _prompts(tok, inputs: list[str], task: str = "text_to_mr") -> list[str]:
    return [build_prompt(tok, x, get_task(task).system_prompt) for x in inputs]


def _assert_schema_mr(text: str, sentence: str) -> None:
    mr = try_parse_mr(text)
    assert mr is not None, text
    assert mr.act in DIALOGUE_ACTS
    closed = dict(viggo_mr_schema().closed)
    for slot, values in mr.slots:
        assert slot in SLOTS
        for value in values:
            # A closed slot's value is in its vocabulary; any other is copied verbatim.
            assert value in closed.get(slot, ()) or value in sentence, (slot, value, sentence)


@pytest.mark.parametrize("engine", ["continuous", "generate"])
def test_every_constrained_output_is_a_schema_mr(tiny, sentences, engine: str) -> None:
    model, tok = tiny
    prompts = _prompts(tok, sentences)
    free = generate(model, tok, prompts, 4, 40, engine=engine, stop_at_newline=True)
    assert all(try_parse_mr(t) is None for t in free.texts)  # the random model writes noise
    grammars = grammars_for("mr", prompts, sentences, True)
    got = generate(
        model, tok, prompts, 3, MAX_NEW, engine=engine, stop_at_newline=True, grammars=grammars
    )
    for text, sentence in zip(got.texts, sentences, strict=True):
        _assert_schema_mr(text, sentence)
    # Finished by the grammar (EOS once the MR closes), not cut by the token limit.
    assert got.new_tokens < MAX_NEW * len(prompts) / 2


def test_both_engines_give_the_same_constrained_greedy_outputs(tiny, sentences) -> None:
    model, tok = tiny
    prompts = _prompts(tok, sentences)
    grammars = grammars_for("mr", prompts, sentences, True)
    continuous, plain = (
        generate(model, tok, prompts, 3, MAX_NEW, engine=e, stop_at_newline=True, grammars=grammars)
        for e in ("continuous", "generate")
    )
    assert continuous.texts == plain.texts


def test_sampled_constrained_candidates_are_schema_mrs(tiny, sentences) -> None:
    model, tok = tiny
    prompts = _prompts(tok, sentences[:4]) * 3
    inputs = sentences[:4] * 3
    grammars = grammars_for("mr", prompts, inputs, True)
    got = generate(
        model, tok, prompts, 6, MAX_NEW, stop_at_newline=True, grammars=grammars,
        sampling=Sampling(temperature=1.0, top_p=1.0, seed=1),
    )  # fmt: skip
    for text, sentence in zip(got.texts, inputs, strict=True):
        _assert_schema_mr(text, sentence)
    assert len(set(got.texts)) > 4  # draws of one input differ
    assert all(s is not None and s < 0 for s in got.scores)  # the model's own log-probability


@pytest.mark.parametrize("engine", ["continuous", "generate"])
@pytest.mark.parametrize("stop_at_newline", [True, False])
def test_constrained_greedy_equals_greedy_where_the_grammar_accepts_it(
    tiny, engine: str, stop_at_newline: bool
) -> None:
    """A grammar of exactly each unconstrained completion masks almost every token at every
    step, yet must leave greedy unchanged; a grammar that refuses it must change it."""
    model, tok = tiny
    inputs = ["inform(name[A])", "a b c d", "yes", "request(specifier[fun])", "q r", "x"]
    prompts = _prompts(tok, inputs, "data_to_text")
    engine_ = TransformersEngine(model, tok, engine, stop_at_newline)
    free = engine_.generate(prompts, batch_size=4, max_new_tokens=12, scores=True)
    raw = [_raw_completion(engine_, tok, p, stop_at_newline) for p in prompts]
    assert all(raw) and len(set(raw)) > 1
    exact = {
        p: completion_grammar(f"answer: {json.dumps(r)}\n", stop_at_newline)
        for p, r in zip(prompts, raw, strict=True)
    }
    got = engine_.generate(prompts, batch_size=4, max_new_tokens=12, scores=True, grammars=exact)
    assert got.texts == free.texts
    assert got.new_tokens == free.new_tokens
    if engine == "continuous":
        assert got.scores == free.scores  # scores stay the model's, unmasked
    other = {p: completion_grammar('answer: "yes"\n', stop_at_newline) for p in prompts}
    forced = engine_.generate(prompts, batch_size=4, max_new_tokens=12, grammars=other)
    assert forced.texts == ["yes"] * len(prompts)


def _raw_completion(engine: TransformersEngine, tok, prompt: str, stop_at_newline: bool) -> str:
    """The completion as decoded text up to its stop token (what a grammar sees), the stop
    (a line break) included."""
    from utils.data.prompts import encode_prompt
    from utils.inference.generate_decoder import decode_generate
    from utils.inference.token_batches import pad_id

    class _Bar:
        def update(self, n: int) -> None:
            pass

    ids = decode_generate(
        engine.model, [encode_prompt(tok, prompt)], 1, 12, engine.stops, pad_id(tok), _Bar()
    ).tokens[0]
    return tok.decode(ids, skip_special_tokens=True)


def test_regex_and_json_schema_constrain_text_to_text(tiny) -> None:
    model, tok = tiny
    inputs = ["first", "second input", "a third one", "4"]
    prompts = _prompts(tok, inputs, "text_to_text")
    pattern = r"[A-Z][a-z]{1,8}( [a-z]{1,8}){0,3}\."
    for engine in ("continuous", "generate"):
        cfg = validate_config(
            {"dataset": {"task": "text_to_text"}, "evaluation": {"constrain": {"regex": pattern}}}
        )
        grammars = grammars_for(cfg.evaluation.constrain, prompts, inputs, True)
        got = generate(model, tok, prompts, 4, 60, engine=engine, stop_at_newline=True,
                       grammars=grammars)  # fmt: skip
        assert all(re.fullmatch(pattern, t) for t in got.texts), got.texts
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 10},
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["name", "stars"],
        "additionalProperties": False,
    }
    cfg = validate_config(
        {"dataset": {"task": "text_to_text"}, "evaluation": {"constrain": {"json_schema": schema}}}
    )
    grammars = grammars_for(cfg.evaluation.constrain, prompts, inputs, True)
    got = generate(model, tok, prompts, 4, 80, stop_at_newline=True, grammars=grammars)
    for text in got.texts:
        value = json.loads(text)
        assert set(value) == {"name", "stars"}, text
        assert isinstance(value["name"], str) and len(value["name"]) <= 10
        assert value["stars"] in range(1, 6)


def test_the_decoder_constrains_greedy_and_reranked_decodes(tiny, sentences) -> None:
    """`Decoder` (evaluation, `run.py generate`, serving) builds each input's grammar; the
    metrics' `decoding` says so."""
    model, tok = tiny
    engine = TransformersEngine(model, tok, "continuous", True)
    prompts = _prompts(tok, sentences[:4])
    rerank = {"method": "sample", "candidates": 2, "only_failing": False, "apply_to": "both"}
    for section in ({"constrain": "mr"}, {"constrain": "mr", "rerank": rerank}):
        cfg = validate_config({"dataset": {"task": "text_to_mr"}, "evaluation": section})
        ev = cfg.evaluation
        decoder = Decoder(engine, "text_to_mr", ev.rerank_for(finetuned=True), 4, ev.constrain)
        out = decoder.decode(prompts, sentences[:4], MAX_NEW)
        for text, sentence in zip(out.generations.texts, sentences[:4], strict=True):
            _assert_schema_mr(text, sentence)
        assert out.stats["decoding"].endswith(", constrain:mr")
