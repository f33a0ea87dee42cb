"""`evaluation.constrain`: the grammar each output must follow, written for llguidance
(Lark syntax), one per prompt, for any engine that masks tokens (`Engine.generate`'s
`grammars`).

- `mr` (text_to_mr): the MRs the input sentence can mean (`utils.viggo.mr_lark`).
- `{regex: ...}`: the whole answer matches the regex (Rust `regex` syntax: no
  look-around, no back-references).
- `{json_schema: {...}}`: the answer is JSON valid against the schema.

A grammar describes the completion up to the token that stops it. With
`stop_at_newline` a line break stops a row and the text after it is cut off, so the
grammar is the answer optionally followed by a line break and anything: a token that
holds the answer's last characters and the line break is as allowed as it is without a
grammar, and JSON is written without line breaks (they would stop it half-way).
"""

from __future__ import annotations

import functools
import json
from typing import Any

MR = "mr"
# Where a grammar forces a string, llguidance by default allows only that string's
# canonical tokenization; exact masks (every token whose bytes fit) keep constrained greedy
# equal to greedy wherever the grammar accepts greedy's output.
_EXACT_MASKS = '%llguidance {"no_forcing": true}\n'
# After the answer: a line break, then anything (the stop cuts it off).
_AFTER_LINE_BREAK = "NL_TAIL: /\\n(.|\\n)*/\n"


def completion_grammar(answer_rules: str, stop_at_newline: bool) -> str:
    """The grammar of a completion whose answer matches rule `answer` of `answer_rules`."""
    if stop_at_newline:
        return _EXACT_MASKS + "start: answer NL_TAIL?\n" + _AFTER_LINE_BREAK + answer_rules
    return _EXACT_MASKS + "start: answer\n" + answer_rules


def regex_rules(regex: str) -> str:
    import llguidance

    # Escapes what would end a Lark regex; keeps Rust's Unicode classes (\d, \w, \s).
    return f"answer: /{llguidance.regex_to_lark(regex, '')}/\n"


def json_schema_rules(schema: dict[str, Any], stop_at_newline: bool) -> str:
    if stop_at_newline:
        # One space at most between JSON tokens: no line break (it would stop the row), and
        # no run of spaces a weak model could fill its token budget with.
        options = {"whitespace_pattern": " ?", **schema.get("x-guidance", {})}
        schema = {**schema, "x-guidance": options}
    return f"answer: %json {json.dumps(schema, ensure_ascii=False)}\n"


@functools.cache
def _mr_grammar() -> Any:
    from utils.data.embedded import viggo_mr_schema
    from utils.viggo.mr_lark import MRGrammar

    return MRGrammar(viggo_mr_schema())


def grammars_for(
    constrain: Any, prompts: list[str], inputs: list[str], stop_at_newline: bool
) -> dict[str, str] | None:
    """Per prompt, the grammar of its completion under `constrain` (`EvaluationSection.
    constrain`: None, `mr`, or a section with `regex` or `json_schema`); None when off.
    `inputs[i]` is the task input behind `prompts[i]` (the sentence an MR copies from)."""
    if constrain is None:
        return None
    if constrain == MR:
        mr = _mr_grammar()
        return {
            p: completion_grammar(mr.for_sentence(x), stop_at_newline)
            for p, x in zip(prompts, inputs, strict=True)
        }
    if constrain.regex is not None:
        rules = regex_rules(constrain.regex)
    else:
        rules = json_schema_rules(constrain.json_schema, stop_at_newline)
    return dict.fromkeys(prompts, completion_grammar(rules, stop_at_newline))


def constraint_kind(constrain: Any) -> str:
    """`mr`, `regex` or `json_schema`: what the metrics' `decoding` names."""
    if constrain == MR:
        return MR
    return "regex" if constrain.regex is not None else "json_schema"


def constraint_problem(regex: str | None, json_schema: dict[str, Any] | None) -> str | None:
    """Why a user's regex or JSON schema cannot constrain outputs (one line); None if it
    can. The check is llguidance compiling it, as decoding will."""
    from utils.inference.grammar_mask import grammar_problem

    if regex is not None:
        problem = grammar_problem(completion_grammar(regex_rules(regex), False))
        return None if problem is None else f"regex {regex!r} does not compile: {problem}"
    assert json_schema is not None
    problem = grammar_problem(completion_grammar(json_schema_rules(json_schema, False), False))
    return None if problem is None else f"json_schema is not a usable JSON schema: {problem}"
