"""The request checks as an ASGI middleware, installed through ZenML's supported hook for it
(`DeploymentSettings.custom_middlewares`). On the POST routes it guards, in this order:

1. the bearer key (401), before a byte of the body is read, when the deployment has one;
2. the content type (415) and the body's size while it streams in (413);
3. the body itself (`check_invoke_body` / `check_chat_body`: 400, 413, 422).

A bad request is answered here with its 4xx (`{"detail": "<one line>"}`, or OpenAI's
`{"error": {...}}` on the OpenAI route); a good one goes on with its body replayed and its
checked contents in `request.state.checked` (the raw body in `.body`), so the endpoint
neither reads nor parses it again.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from utils.serving.openai_api import ChatBadRequest, check_chat_body, error_body
from utils.serving.request_checks import (
    BadRequest,
    RequestLimits,
    check_content_type,
    check_invoke_body,
)

logger = logging.getLogger(__name__)

# The state keys the checked request and its raw body travel under (`request.state.*`):
# the endpoint must not read the body again, since a disconnect check may have consumed
# the one replayed message.
CHECKED = "checked"
BODY = "body"


class RequestCheckMiddleware:
    """ZenML registers it with `app.add_middleware(cls, **extra_kwargs)`; the kwargs are
    JSON values, as they travel inside the pipeline snapshot. `paths` take invoke bodies,
    `chat_paths` OpenAI chat bodies."""

    def __init__(
        self,
        app: Any,
        paths: list[str],
        task: str,
        max_inputs_per_request: int,
        max_input_chars: int,
        chat_paths: list[str] | None = None,
    ) -> None:
        self.app = app
        self.checks = {p.rstrip("/"): check_invoke_body for p in paths}
        self.checks.update({p.rstrip("/"): check_chat_body for p in chat_paths or []})
        self.limits = RequestLimits(task, max_inputs_per_request, max_input_chars)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        check = None
        if scope["type"] == "http" and scope.get("method") == "POST":
            check = self.checks.get(scope.get("path", "").rstrip("/"))
        if check is None:
            await self.app(scope, receive, send)
            return
        chat = check is check_chat_body
        headers = dict(scope.get("headers") or [])
        try:
            _check_auth(scope, headers)
            check_content_type(headers.get(b"content-type", b"").decode("latin-1"))
            length = headers.get(b"content-length", b"").decode("latin-1")
            if length.isdigit() and int(length) > self.limits.max_body_bytes:
                raise BadRequest(413, f"request body over {self.limits.max_body_bytes} bytes")
            body = await _read_body(receive, self.limits.max_body_bytes)
            checked = check(body, self.limits)
        except BadRequest as e:
            logger.info("refused %s: %d %s", scope.get("path"), e.status, e.reason)
            _count_refusal(scope, e.status)
            param = e.param if isinstance(e, ChatBadRequest) else None
            reply = error_body(e.reason, e.status, param) if chat else {"detail": e.reason}
            extra = [(b"www-authenticate", b"Bearer")] if e.status == 401 else []
            await _reply(send, e.status, reply, extra)
            return
        state = scope.setdefault("state", {})
        state[CHECKED], state[BODY] = checked, body

        # The body is consumed: hand it on as one message, then whatever the client sends next
        # (a disconnect).
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _runner(scope: dict) -> Any:
    """ZenML's app runner, which the app carries in its state."""
    return getattr(getattr(scope.get("app"), "state", None), "app_runner", None)


def _count_refusal(scope: dict, status: int) -> None:
    core = getattr(getattr(_runner(scope), "service", None), "core", None)
    if core is not None:
        core.stats.failed(status)


def _check_auth(scope: dict, headers: dict[bytes, bytes]) -> None:
    """401 unless the request carries the deployment's key (ZenML's endpoints check it too,
    but only after the body has been read and validated)."""
    key = getattr(getattr(_runner(scope), "deployment", None), "auth_key", None)
    if not key:
        return
    given = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise BadRequest(401, "Authorization header required: send 'Authorization: Bearer <key>'")
    if not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise BadRequest(401, "Invalid authentication token")


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest(400, "client disconnected before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            # Stop reading: a body this large is refused whatever it holds.
            raise BadRequest(413, f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _reply(
    send: Any, status: int, reply: dict, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(reply).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
