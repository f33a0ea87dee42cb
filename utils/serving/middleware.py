"""The request checks as an ASGI middleware, installed through ZenML's supported hook for it
(`DeploymentSettings.custom_middlewares`): a bad request is answered here with its 4xx
and `{"detail": "<one line>"}`, a good one goes on to ZenML's endpoint unchanged."""

from __future__ import annotations

import json
import logging
from typing import Any

from utils.serving.request_checks import (
    BadRequest,
    RequestLimits,
    check_content_type,
    check_invoke_body,
)

logger = logging.getLogger(__name__)


class RequestCheckMiddleware:
    """ZenML registers it with `app.add_middleware(cls, **extra_kwargs)`; the kwargs are
    JSON values, as they travel inside the pipeline snapshot."""

    def __init__(
        self,
        app: Any,
        paths: list[str],
        task: str,
        max_inputs_per_request: int,
        max_input_chars: int,
    ) -> None:
        self.app = app
        self.paths = {p.rstrip("/") for p in paths}
        self.limits = RequestLimits(task, max_inputs_per_request, max_input_chars)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        guarded = (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and scope.get("path", "").rstrip("/") in self.paths
        )
        if not guarded:
            await self.app(scope, receive, send)
            return
        try:
            headers = dict(scope.get("headers") or [])
            check_content_type(headers.get(b"content-type", b"").decode("latin-1"))
            body = await _read_body(receive, self.limits.max_body_bytes)
            check_invoke_body(body, self.limits)
        except BadRequest as e:
            logger.info("refused %s: %d %s", scope.get("path"), e.status, e.reason)
            await _reply(send, e.status, e.reason)
            return

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


async def _reply(send: Any, status: int, reason: str) -> None:
    body = json.dumps({"detail": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
