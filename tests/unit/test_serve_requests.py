"""The serving request checks (no deployment): each bad request kind's status and reason, the
middleware's replay of a good body, the cross-request batcher, the slot-error report."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from utils.serving.middleware import RequestCheckMiddleware
from utils.serving.request_checks import BadRequest, RequestLimits, check_invoke_body
from utils.serving.served_model import Batcher, slot_error_report

MR = "inform(name[Portal 2], rating[excellent])"
LIMITS = RequestLimits("data_to_text", max_inputs_per_request=3, max_input_chars=60)


def body(inputs: object, **extra: object) -> bytes:
    return json.dumps({"parameters": {"inputs": inputs}, **extra}).encode()


# (body, status, a phrase of the reason) for every kind of bad request.
BAD = [
    (b'{"parameters": {"inputs": [', 400, "malformed JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[1, 2]", 422, "expected a JSON object"),
    (b'{"inputs": ["x"]}', 422, "unknown field 'inputs'"),
    (b'{"run_name": "a"}', 422, 'missing "parameters"'),
    (json.dumps({"parameters": {"inputs": [MR], "x": 1}}).encode(), 422, "unknown parameter 'x'"),
    (body(MR), 422, "must be a list of strings"),
    (body([]), 422, "is empty"),
    (body([MR, 3]), 422, "inputs[1] is not a string"),
    (body([MR, "  "]), 422, "inputs[1] is blank"),
    (body([MR] * 4), 413, "at most 3 per request (serving.max_inputs_per_request)"),
    (body(["inform(name[" + "x" * 60 + "])"]), 413, "at most 60 (serving.max_input_chars)"),
    (body([MR, "Portal 2 is great."]), 422, "inputs[1] is not a meaning representation"),
    (body([MR], run_name=3), 422, "field 'run_name' has the wrong type"),
    (b" " * (LIMITS.max_body_bytes + 1), 413, "request body over"),
]


@pytest.mark.parametrize(("raw", "status", "phrase"), BAD)
def test_bad_requests_are_refused_with_status_and_one_line(
    raw: bytes, status: int, phrase: str
) -> None:
    with pytest.raises(BadRequest) as e:
        check_invoke_body(raw, LIMITS)
    assert (e.value.status, "\n" in e.value.reason) == (status, False)
    assert phrase in e.value.reason


def test_good_requests_pass() -> None:
    assert check_invoke_body(body([MR, MR]), LIMITS) == [MR, MR]
    # Sentences are inputs of text_to_mr: no MR check there.
    sentences = RequestLimits("text_to_mr", 3, 60)
    assert check_invoke_body(body(["Portal 2 is great."]), sentences) == ["Portal 2 is great."]
    assert check_invoke_body(body([MR], skip_artifact_materialization=True), LIMITS) == [MR]


def _call(app: RequestCheckMiddleware, raw: bytes, content_type: bytes, path: str = "/invoke"):
    """Run the middleware on one request; (status, JSON reply, body the app received)."""
    received: list[bytes] = []
    sent: list[dict] = []

    async def inner(scope, receive, send) -> None:
        received.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app.app = inner
    chunks = [raw[:5], raw[5:]]

    async def receive() -> dict:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": []}
    scope["headers"] = [(b"content-type", content_type)]
    asyncio.run(app(scope, receive, send))
    reply = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(reply), received


def test_middleware_refuses_or_replays_the_body_unchanged() -> None:
    app = RequestCheckMiddleware(None, ["/invoke"], "data_to_text", 3, 60)
    good = body([MR])
    assert _call(app, good, b"application/json") == (200, {}, [good])
    assert _call(app, body([]), b"application/json")[:2] == (
        422,
        {"detail": "parameters.inputs is empty: send at least one input"},
    )
    status, reply, received = _call(app, good, b"application/x-www-form-urlencoded")
    assert (status, received) == (415, [])
    assert "Content-Type: application/json" in reply["detail"]
    # Other paths are not its business: their requests pass as they come (the first chunk
    # reaches the app, not a buffered body).
    assert _call(app, b"anything", b"text/plain", path="/health") == (200, {}, [b"anyth"])


def test_batcher_decodes_waiting_requests_together_in_order() -> None:
    calls: list[list[str]] = []
    gate = threading.Event()

    def decode(inputs: list[str]) -> list[str]:
        gate.wait(5)
        calls.append(list(inputs))
        return [s.upper() for s in inputs]

    batcher = Batcher(decode, max_inputs=4)
    results: dict[str, list[str]] = {}

    def client(name: str, inputs: list[str]) -> None:
        results[name] = batcher.submit(inputs)

    threads = [threading.Thread(target=client, args=("a", ["a1"]))]
    threads[0].start()
    time.sleep(0.2)  # "a" is decoding (held at the gate); the others queue up meanwhile
    for name, inputs in (("b", ["b1", "b2"]), ("c", ["c1"]), ("d", ["d1", "d2"])):
        threads.append(threading.Thread(target=client, args=(name, inputs)))
        threads[-1].start()
        time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(10)
    assert results == {"a": ["A1"], "b": ["B1", "B2"], "c": ["C1"], "d": ["D1", "D2"]}
    # b and c fit in one batch of 4; d would overflow it and goes next.
    assert calls == [["a1"], ["b1", "b2", "c1"], ["d1", "d2"]]


def test_batcher_reports_a_failed_batch_and_keeps_serving() -> None:
    def decode(inputs: list[str]) -> list[str]:
        if "boom" in inputs:
            raise RuntimeError("boom")
        return inputs

    batcher = Batcher(decode, max_inputs=8)
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit(["boom"])
    assert batcher.submit(["ok"]) == ["ok"]


def test_slot_error_report_names_the_slots() -> None:
    from utils.viggo import slot_errors

    mr = "inform(name[Portal 2], rating[excellent], has_multiplayer[yes])"
    sentence = "Portal 2 is a poor game from 2011."
    report = slot_error_report(mr, sentence)
    assert "has_multiplayer" in report["missing"]
    assert report["errors"] == slot_errors(mr, sentence).errors > 0
    assert slot_error_report(mr, "Portal 2 is an excellent multiplayer game.")["errors"] == 0
    assert slot_error_report("not an MR", "text") is None
