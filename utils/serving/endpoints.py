"""The service's routes, registered through `DeploymentSettings.custom_endpoints` (an
endpoint with the same method and path replaces ZenML's default one). Each entry here is
an endpoint builder: ZenML calls it with the app runner and registers what it returns.

* `POST /invoke`: the fast path (the model loaded once answers; no run per request) with
  ZenML's request and response shape; `serving.record: every` sends it down ZenML's own
  path instead (a pipeline run per request, as before).
* `GET /health`: 503 with the reason when the decoding thread has stopped.
* `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}`: the OpenAI-compatible
  routes.

The endpoints read `app_runner.service.core` (a ServingCore): in a deployment the
ServingService's, in tests any app runner stand-in that has one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

# FastAPI reads the handlers' annotations from this module's globals.
from fastapi import Request

from utils.serving.core import Disconnected, Refused, ServingCore
from utils.serving.middleware import BODY, CHECKED
from utils.serving.openai_api import chat_events, chat_reply, error_body, models_reply

logger = logging.getLogger(__name__)

# nginx's status for "client closed the request": logged, never seen by the client.
_CLIENT_CLOSED = 499


def _core(app_runner: Any) -> ServingCore:
    return app_runner.service.core


def _checked(request: Request) -> Any:
    """What the middleware checked (the body as inputs or a ChatRequest)."""
    checked = getattr(request.state, CHECKED, None)
    if checked is None:
        raise Refused(500, f"{request.url.path} was not checked: RequestCheckMiddleware missing")
    return checked


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content=body, headers=headers)


def invoke_endpoint(app_runner: Any) -> Callable[..., Any]:
    service = app_runner.service

    async def invoke(request: Request) -> Any:
        core = _core(app_runner)
        if core.serving.record == "every":
            return await _invoke_recorded(service, request)
        start = time.monotonic()
        try:
            inputs = _checked(request)
            outputs = await core.outputs(inputs, request.is_disconnected)
        except Refused as e:
            core.stats.failed(e.status)
            return _json(e.status, {"detail": e.reason}, e.headers)
        except Disconnected:
            core.stats.failed(_CLIENT_CLOSED)
            return _json(_CLIENT_CLOSED, {"detail": "client disconnected"})
        seconds = time.monotonic() - start
        core.stats.answered(len(inputs), seconds)
        if core.record is not None:
            core.record(json.loads(getattr(request.state, BODY)), inputs, outputs)
        return _json(200, core.invoke_reply(inputs, outputs, seconds))

    return invoke


async def _invoke_recorded(service: Any, request: Any) -> Any:
    """ZenML's own invoke path: a pipeline run per request, its step decoding through the
    same batcher (in a worker thread, as ZenML runs its endpoint)."""
    from anyio import to_thread

    core = service.core
    start = time.monotonic()
    _checked(request)
    invoke_request = service.invoke_request(json.loads(getattr(request.state, BODY)))
    reply = await to_thread.run_sync(service.execute_pipeline, invoke_request)
    body = reply.model_dump(mode="json")
    if reply.success:
        core.stats.answered(len(invoke_request.parameters.inputs), time.monotonic() - start)
        return _json(200, body)
    core.stats.failed(500)
    return _json(500, body)


def health_endpoint(app_runner: Any) -> Callable[..., Any]:
    def health() -> Any:
        core = _core(app_runner)
        if not core.healthy:
            return _json(503, {"status": "unhealthy", "detail": core.health_reason()})
        return {"status": "healthy", "queued_inputs": core.served.batcher.queued_inputs}

    return health


def chat_completions_endpoint(app_runner: Any) -> Callable[..., Any]:
    async def chat_completions(request: Request) -> Any:
        core = _core(app_runner)
        start = time.monotonic()
        try:
            chat = _checked(request)
            (output,) = await core.outputs([chat.input], request.is_disconnected)
        except Refused as e:
            core.stats.failed(e.status)
            return _json(e.status, error_body(e.reason, e.status), e.headers)
        except Disconnected:
            core.stats.failed(_CLIENT_CLOSED)
            return _json(_CLIENT_CLOSED, error_body("client disconnected", _CLIENT_CLOSED))
        core.stats.answered(1, time.monotonic() - start)
        if chat.stream:
            from fastapi.responses import StreamingResponse

            events = chat_events(core.served, chat, output)
            # no-cache and no proxy buffering: what a server-sent event stream asks of both.
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(iter(events), media_type="text/event-stream", headers=headers)
        return _json(200, chat_reply(core.served, chat, output))

    return chat_completions


# The model list's `created`: when this process started serving, the same for both routes.
_STARTED = time.time()


def models_endpoint(app_runner: Any) -> Callable[..., Any]:
    def models() -> Any:
        return models_reply(_core(app_runner).served, _STARTED)

    return models


def model_endpoint(app_runner: Any) -> Callable[..., Any]:
    """`GET /v1/models/{model_id}` (the client's `models.retrieve`): the served model, or
    OpenAI's 404 for any other id."""

    def model(model_id: str) -> Any:
        served = _core(app_runner).served
        if model_id != served.name:
            reason = (
                f"The model '{model_id}' does not exist: this deployment serves '{served.name}'"
            )
            return _json(404, error_body(reason, 404, "model"))
        return models_reply(served, _STARTED)["data"][0]

    return model
