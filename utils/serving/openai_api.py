"""The OpenAI-compatible face of the service: `POST /v1/chat/completions`, `GET /v1/models`
and `GET /v1/models/{id}`.

The last user message is the task input (an MR for data_to_text). The served model decodes
as its evaluation did, so what would change that is refused with a 400 naming the field:
`n` > 1, a `temperature` other than 0, `top_p` other than 1, tools, logprobs.
`stream: true` is answered as server-sent events in OpenAI's chunk shape, so streaming
clients (chat UIs, `stream=True`) work unchanged; the answer is whole before its first
chunk (a reranked answer is chosen among whole candidates), so it arrives as one content
delta, then the finish chunk, the usage chunk if `stream_options.include_usage`, `[DONE]`.
`max_tokens` / `max_completion_tokens` cut the output to that many tokens and `stop` at the
first stop string (`finish_reason: "length"` / `"stop"`). Fields OpenAI defines that do not
change the output (`user`, `seed`, `metadata`, ...) are ignored, as OpenAI ignores unknown
ones. `usage` counts the prompt's and the output's tokens; `slot_errors` (an extra field)
carries the slot report of each choice, as `/invoke` does.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from utils.serving.request_checks import BadRequest, RequestLimits, check_input, parse_json

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
MODEL_PATH = MODELS_PATH + "/{model_id}"

# Sampling controls the service cannot honour: the allowed value(s) of each.
_FIXED: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "temperature": (None, 0, 0.0),
    "top_p": (None, 1, 1.0),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
}
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


class ChatBadRequest(BadRequest):
    """A refused chat request; `param` names the field, as OpenAI's errors do."""

    def __init__(self, status: int, reason: str, param: str | None = None) -> None:
        super().__init__(status, reason)
        self.param = param


def error_body(reason: str, status: int, param: str | None = None) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        kind = "authentication_error"
    return {"error": {"message": reason, "type": kind, "param": param, "code": None}}


@dataclass(frozen=True)
class ChatRequest:
    input: str
    max_tokens: int | None
    stop: tuple[str, ...]
    stream: bool = False
    include_usage: bool = False


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}, ...]
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ChatBadRequest(400, f"{where}[{i}] is not a text part", where)
            if not isinstance(part.get("text"), str):
                raise ChatBadRequest(400, f"{where}[{i}].text is not a string", where)
            parts.append(part["text"])
        return "".join(parts)
    raise ChatBadRequest(400, f"{where} must be a string or a list of text parts", where)


def _positive_int(data: dict, key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ChatBadRequest(400, f"{key} must be a positive integer", key)
    return value


def check_chat_body(body: bytes, limits: RequestLimits) -> ChatRequest:
    """The task input and output limits of a chat request, or ChatBadRequest."""
    try:
        data = parse_json(body, limits.max_body_bytes)
    except BadRequest as e:
        raise ChatBadRequest(e.status, e.reason) from None
    if not isinstance(data, dict):
        raise ChatBadRequest(400, "expected a JSON object with 'messages'")
    for key, allowed in _FIXED.items():
        value = data.get(key)
        if not any(value == a and type(value) is type(a) for a in allowed) and value is not None:
            raise ChatBadRequest(
                400,
                f"{key}={value!r} is not supported: this deployment decodes as its model "
                f"version was evaluated (one greedy or reranked answer); omit {key}",
                key,
            )
    if data.get("model") is not None and not isinstance(data["model"], str):
        raise ChatBadRequest(400, "model must be a string", "model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatBadRequest(400, "messages must be a non-empty list", "messages")
    last_user = None
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ChatBadRequest(400, f"{where} is not an object", "messages")
        if message.get("role") not in _ROLES:
            raise ChatBadRequest(400, f"{where}.role must be one of {sorted(_ROLES)}", "messages")
        if message["role"] == "user":
            last_user = _text_of(message.get("content"), f"{where}.content")
    if last_user is None:
        raise ChatBadRequest(400, "messages hold no user message (the task input)", "messages")
    try:
        text = check_input("the last user message", last_user, limits)
    except BadRequest as e:
        raise ChatBadRequest(e.status, e.reason, "messages") from None
    max_tokens = _positive_int(data, "max_completion_tokens") or _positive_int(data, "max_tokens")
    stop = data.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise ChatBadRequest(400, "stop must be a string or a list of up to 4 strings", "stop")
    if any(not s for s in stops):
        raise ChatBadRequest(400, "stop strings must not be empty", "stop")
    stream, include_usage = _stream_options(data)
    return ChatRequest(text, max_tokens, stops, stream, include_usage)


def _stream_options(data: dict) -> tuple[bool, bool]:
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ChatBadRequest(400, "stream must be a boolean", "stream")
    options = data.get("stream_options")
    if options is None:
        return bool(stream), False
    if not stream:  # as OpenAI answers it
        raise ChatBadRequest(
            400, "stream_options is only allowed when stream is true", "stream_options"
        )
    if not isinstance(options, dict):
        raise ChatBadRequest(400, "stream_options must be an object", "stream_options")
    include_usage = options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise ChatBadRequest(
            400, "stream_options.include_usage must be a boolean", "stream_options"
        )
    return True, bool(include_usage)


def apply_limits(served: Any, text: str, request: ChatRequest) -> tuple[str, str]:
    """The output as the request asked for it (cut at a stop string, then at max_tokens),
    and its finish_reason."""
    cuts = [text.index(s) for s in request.stop if s in text]
    if cuts:
        text = text[: min(cuts)]
    if request.max_tokens is not None:
        text, cut = served.truncate_tokens(text, request.max_tokens)
        if cut:
            return text, "length"
    return text, "stop"


def chat_reply(served: Any, request: ChatRequest, output: str) -> dict[str, Any]:
    text, finish = apply_limits(served, output, request)
    prompt_tokens = served.prompt_tokens(request.input)
    completion_tokens = served.count_tokens(text)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "slot_errors": served.slot_errors([request.input], [text]),
    }


def chat_events(served: Any, request: ChatRequest, output: str) -> list[str]:
    """The reply as OpenAI streams it (server-sent events): one chunk with the whole answer
    as its delta, one with the finish_reason (and the `slot_errors` extra), the usage chunk
    when asked for, then `[DONE]`."""
    reply = chat_reply(served, request, output)
    (choice,) = reply["choices"]
    head = {"id": reply["id"], "object": "chat.completion.chunk", "created": reply["created"]}
    head["model"] = reply["model"]
    # With include_usage OpenAI sends `usage: null` on every chunk but the last.
    usage = {"usage": None} if request.include_usage else {}

    def chunk(delta: dict, finish: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}

    chunks = [
        {**head, "choices": [chunk(choice["message"], None)], **usage},
        {
            **head,
            "choices": [chunk({}, choice["finish_reason"])],
            **usage,
            "slot_errors": reply["slot_errors"],
        },
    ]
    if request.include_usage:
        chunks.append({**head, "choices": [], "usage": reply["usage"]})
    return [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]


def models_reply(served: Any, created: float) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": served.name, "object": "model", "created": int(created), "owned_by": "zenml"}
        ],
    }
