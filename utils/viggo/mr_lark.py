"""The grammar of the MRs a sentence can mean, in llguidance's Lark syntax: what
`evaluation.constrain: mr` lets a text_to_mr model write.

An output is an MR of the learned schema (`utils.viggo.mr_schema`): a dialogue act, then
its slots in the training data's order, each at most once (one empty slot for
`request_attribute`); closed slots take values of their vocabulary (lists up to the most
items a training MR has), the others a run of the input sentence's words as written
there. So every output parses, and no open value is invented: a name or developer the
sentence does not contain cannot be written.

The schema's rules are written once (`MRGrammar`); per sentence only the `SPAN` terminal
is added, which llguidance compiles from the sentence itself (`substring_words`), so a
row's grammar costs a few milliseconds to build.
"""

from __future__ import annotations

import json

from utils.viggo.mr_schema import CLOSED_SLOTS, MRSchema

# A copied value: a run of the sentence's words (llguidance's `substring_words`) that
# starts with a letter or digit and ends with one or a period (ViGGO's only other ending:
# "Spectrum HoloByte, Inc."), without brackets (they would end the slot).
_SPAN_SHAPE = r"/\w([^\[\]]*[\w.])?/"


def _literal(text: str) -> str:
    # A JSON string is a valid Lark string literal (same escapes).
    return json.dumps(text, ensure_ascii=False)


def span_terminal(sentence: str) -> str:
    """The Lark terminal `SPAN`: the values `sentence` states verbatim."""
    words = json.dumps({"substring_words": sentence}, ensure_ascii=False)
    return f"SPAN: %regex {words} & {_SPAN_SHAPE}\n"


class MRGrammar:
    """The Lark grammar of an MRSchema; `for_sentence` adds one sentence's values."""

    def __init__(self, schema: MRSchema) -> None:
        self.schema = schema
        self._rules = "\n".join(self._schema_rules()) + "\n"

    def for_sentence(self, sentence: str) -> str:
        """The grammar whose rule `answer` matches the MRs `sentence` can mean."""
        return self._rules + span_terminal(sentence)

    def _schema_rules(self) -> list[str]:
        s = self.schema
        lines = ["answer: " + " | ".join(f"act_{act}" for act, _ in s.acts)]
        for act, empty in s.acts:
            chain = "empty_0" if empty else "slots_0"
            lines.append(f'act_{act}: {_literal(act + "(")} {chain} ")"')
        # slots_{i}: one or more of the slots from the i-th on, in order, comma separated
        # (empty_{i}: the same with empty values, one slot at most).
        for i, slot in enumerate(s.order):
            more = i + 1 < len(s.order)
            lines.append(
                f"slots_{i}: slot_{slot}"
                + (f' ("," " " slots_{i + 1})? | slots_{i + 1}' if more else "")
            )
            lines.append(f"empty_{i}: {_literal(slot + '[]')}" + (
                f" | empty_{i + 1}" if more else ""))  # fmt: skip
        closed, items = dict(s.closed), dict(s.max_items)
        for slot in s.order:
            value = f"V_{slot.upper()}" if slot in closed else "SPAN"
            if items.get(slot, 1) > 1:
                value = f'{value} ("," " " {value}){{0,{items[slot] - 1}}}'
            lines.append(f'slot_{slot}: {_literal(slot + "[")} {value} "]"')
        for slot, values in s.closed:
            lines.append(f"V_{slot.upper()}: " + " | ".join(_literal(v) for v in values))
        assert set(closed) == CLOSED_SLOTS
        return lines
