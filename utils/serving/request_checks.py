"""What a request to the deployment may hold, checked before ZenML's endpoint sees it.

ZenML's `/invoke` answers a body it cannot validate with FastAPI's 422 and a list of
pydantic errors, and an input the step fails on with a 200 whose `success` is false. The
checks here turn every bad request into one status code and a one-line reason instead:

* 400 the body is not JSON (or not UTF-8), is nested deeper than 32 levels or holds a
  number Python refuses to convert (an integer of thousands of digits)
* 413 the body, the number of inputs or one input is over its `serving.*` limit
* 415 the body is not sent as `application/json` (ZenML would ignore it)
* 422 the JSON is not `{"parameters": {"inputs": [str, ...]}}`, the list is empty, an input
  is blank, or (data_to_text) an input is not a ViGGO meaning representation
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from utils.core.errors import one_line
from utils.core.tasks import get_task
from utils.viggo import MRParseError, parse_mr

# Besides `parameters`, what ZenML's invoke request model accepts, and of which type.
_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "run_name": (str, type(None)),
    "skip_artifact_materialization": (bool,),
}
# JSON escapes (\uXXXX) can make one character six bytes.
_BYTES_PER_CHAR = 6
# No valid request nests deeper than 4; a limit well above that but far below Python's
# recursion limit keeps the parser (and any repr of the value) safe.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")


class BadRequest(ValueError):
    """A request the service refuses: an HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RequestLimits:
    task: str
    max_inputs_per_request: int
    max_input_chars: int

    @property
    def max_body_bytes(self) -> int:
        per_input = self.max_input_chars * _BYTES_PER_CHAR + 8
        return self.max_inputs_per_request * per_input + 4096


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise BadRequest(
            415, f"send the body as JSON (Content-Type: application/json), not {media or 'none'!r}"
        )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_json(body: bytes, max_bytes: int) -> Any:
    """The JSON value of a request body, or BadRequest (413 too large, 400 not UTF-8 JSON,
    nested too deeply, or a number Python will not convert)."""
    if len(body) > max_bytes:
        raise BadRequest(413, f"request body over {max_bytes} bytes")
    depth = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub(b"", body)):
        depth += 1 if bracket in b"[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise BadRequest(400, f"malformed JSON: {e.msg} at {where}") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of 5,000 digits
        raise BadRequest(400, f"malformed JSON: {' '.join(str(e).split())[:120]}") from None


def check_invoke_body(body: bytes, limits: RequestLimits) -> list[str]:
    """The task inputs of an invoke request, or BadRequest saying what is wrong."""
    data = parse_json(body, limits.max_body_bytes)
    if not isinstance(data, dict):
        raise BadRequest(422, 'expected a JSON object {"parameters": {"inputs": [...]}}')
    for key, value in data.items():
        if key == "parameters":
            continue
        if key not in _OPTIONAL_FIELDS:
            raise BadRequest(422, f"unknown field {key!r}; expected 'parameters'")
        if not isinstance(value, _OPTIONAL_FIELDS[key]):
            raise BadRequest(422, f"field {key!r} has the wrong type: {_short(value)}")
    params = data.get("parameters")
    if not isinstance(params, dict):
        raise BadRequest(422, 'missing "parameters": expected {"parameters": {"inputs": [...]}}')
    unknown = sorted(set(params) - {"inputs"})
    if unknown:
        raise BadRequest(422, f"unknown parameter {unknown[0]!r}; the only one is 'inputs'")
    inputs = params.get("inputs")
    if not isinstance(inputs, list):
        raise BadRequest(422, f"parameters.inputs must be a list of strings, got {_short(inputs)}")
    if not inputs:
        raise BadRequest(422, "parameters.inputs is empty: send at least one input")
    if len(inputs) > limits.max_inputs_per_request:
        raise BadRequest(
            413,
            f"{len(inputs)} inputs, at most {limits.max_inputs_per_request} per request "
            "(serving.max_inputs_per_request)",
        )
    for i, text in enumerate(inputs):
        check_input(f"parameters.inputs[{i}]", text, limits)
    return inputs


def check_input(where: str, text: Any, limits: RequestLimits) -> str:
    """One task input: a non-blank string of valid Unicode within `max_input_chars`, and a
    ViGGO MR where the task's input is one."""
    if not isinstance(text, str):
        raise BadRequest(422, f"{where} is not a string: {_short(text)}")
    if not text.strip():
        raise BadRequest(422, f"{where} is blank")
    if len(text) > limits.max_input_chars:
        raise BadRequest(
            413,
            f"{where} has {len(text)} characters, at most {limits.max_input_chars} "
            "(serving.max_input_chars)",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(422, f"{where} is not valid Unicode (a lone surrogate)") from None
    if get_task(limits.task).mr_role == "input":
        try:
            parse_mr(text)
        except MRParseError as e:
            reason = one_line(e)
            raise BadRequest(422, f"{where} is not a meaning representation: {reason}") from None
    return text
