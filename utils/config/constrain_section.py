"""`evaluation.constrain`: grammar-constrained decoding (`utils.inference.constraints`).

    constrain: null                       # off (default)
    constrain: mr                         # text_to_mr: well-formed ViGGO MRs only
    constrain: {regex: "[A-Z][a-z]+"}     # the answer matches the regex
    constrain: {json_schema: {...}}       # the answer is JSON valid against the schema

A regex or schema is compiled here, by the library that will enforce it, so one that
cannot be used stops the run before any step, in one line.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError, model_validator

from utils.config.base import Section

SHAPE = "expected null, 'mr', {regex: ...} or {json_schema: {...}}"


class ConstrainSection(Section):
    """A user's grammar for outputs: exactly one of `regex` and `json_schema`."""

    regex: str | None = None
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_usable_grammar(self) -> ConstrainSection:
        if (self.regex is None) == (self.json_schema is None):
            raise ValueError(f"give exactly one of regex and json_schema ({SHAPE})")
        from utils.inference.constraints import constraint_problem

        problem = constraint_problem(self.regex, self.json_schema)
        if problem is not None:
            raise ValueError(problem)
        return self


def constrain_value(value: Any) -> Any:
    """`evaluation.constrain` in one of its shapes, or a ValueError in one line (a union's
    validation would list one error per shape it failed)."""
    if value is None or value == "mr" or isinstance(value, ConstrainSection):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"{SHAPE}, got {value!r}")
    try:
        return ConstrainSection.model_validate(value)
    except ValidationError as e:
        parts = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                parts.append(f"unknown key {key!r} ({SHAPE})")
            elif err["type"] == "value_error":
                parts.append(err["msg"].removeprefix("Value error, "))
            else:
                parts.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
        raise ValueError("; ".join(parts)) from None
