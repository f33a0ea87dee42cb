"""The serving request checks (no deployment): each bad request kind's status and reason, the
middleware's replay of a good body, the cross-request batcher, the slot-error report.

The batcher tests order requests with events, never with sleeps: a test that passes only
when the machine is fast enough proves nothing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import CancelledError

import pytest

from utils.serving.batcher import Batcher, DecoderDead, QueueFull
from utils.serving.middleware import RequestCheckMiddleware
from utils.serving.request_checks import BadRequest, RequestLimits, check_invoke_body
from utils.serving.slot_report import slot_error_report

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
    (b"[" * 40 + b"]" * 40, 400, "nested deeper than 32"),
    (b'{"parameters": {"inputs": [' + b"9" * 5000 + b"]}}", 400, "malformed JSON"),
    (body(["\ud800"]), 422, "inputs[0] is not"),
    (b'{"parameters": {"inputs": ["\\ud800"]}}', 422, "inputs[0] is not"),
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


class GatedDecoder:
    """A decode that signals when a batch starts and holds it until the test opens the gate."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        self.fail_on = fail_on

    def __call__(self, inputs: list[str]) -> list[str]:
        self.calls.append(list(inputs))
        self.started.set()
        assert self.gate.wait(10), "the test never opened the gate"
        if self.fail_on is not None and self.fail_on in inputs:
            raise ValueError(f"cannot decode {self.fail_on}")
        return [s.upper() for s in inputs]


def test_batcher_decodes_waiting_requests_together_in_order() -> None:
    decode = GatedDecoder()
    batcher = Batcher(decode, max_inputs=4)
    a = batcher.submit(["a1"])
    assert decode.started.wait(10)  # "a" is decoding, held at the gate
    b, c, d = (batcher.submit(x) for x in (["b1", "b2"], ["c1"], ["d1", "d2"]))
    decode.gate.set()
    results = [t.future.result(10) for t in (a, b, c, d)]
    assert results == [["A1"], ["B1", "B2"], ["C1"], ["D1", "D2"]]
    # b and c fit in one batch of 4; d would overflow it and goes next.
    assert decode.calls == [["a1"], ["b1", "b2", "c1"], ["d1", "d2"]]


def test_a_failing_input_fails_only_its_own_request() -> None:
    decode = GatedDecoder(fail_on="bad")
    batcher = Batcher(decode, max_inputs=8)
    first = batcher.submit(["x"])
    assert decode.started.wait(10)
    good, bad, other = (batcher.submit(x) for x in (["g1", "g2"], ["bad"], ["o"]))
    decode.gate.set()
    assert first.future.result(10) == ["X"]
    assert good.future.result(10) == ["G1", "G2"]
    assert other.future.result(10) == ["O"]
    with pytest.raises(ValueError, match="cannot decode bad"):
        bad.future.result(10)
    # The shared batch failed, then each of its requests was decoded alone.
    assert decode.calls[1] == ["g1", "g2", "bad", "o"]
    assert decode.calls[2:] == [["g1", "g2"], ["bad"], ["o"]]
    assert batcher(["ok"]) == ["OK"]  # and the thread lives on


def test_a_full_queue_refuses_and_a_cancelled_request_never_decodes() -> None:
    decode = GatedDecoder()
    batcher = Batcher(decode, max_inputs=2, max_queued_inputs=3)
    running = batcher.submit(["r"])
    assert decode.started.wait(10)
    queued = batcher.submit(["q1", "q2"])
    dropped = batcher.submit(["c"])
    with pytest.raises(QueueFull, match=r"serving.max_queued_inputs") as full:
        batcher.submit(["x"])  # 3 waiting + 1 > 3
    assert 1 <= full.value.retry_after_s <= 60
    assert dropped.cancel()  # its caller gave up while it waited
    assert batcher.queued_inputs == 3  # counted until the decoding thread drops it
    decode.gate.set()
    assert running.future.result(10) == ["R"]
    assert queued.future.result(10) == ["Q1", "Q2"]
    with pytest.raises(CancelledError):
        dropped.future.result(0)
    assert ["c"] not in decode.calls
    assert batcher(["y"]) == ["Y"]
    assert batcher.queued_inputs == 0


def test_the_window_waits_for_company_but_never_longer_than_itself() -> None:
    decode = GatedDecoder()
    decode.gate.set()
    window = 0.5
    batcher = Batcher(decode, max_inputs=8, window_s=window)
    start = time.monotonic()
    assert batcher(["alone"]) == ["ALONE"]  # nobody joins: answered after the window
    assert time.monotonic() - start >= window * 0.9
    # Requests that wait together go in one batch.
    held = GatedDecoder()
    batcher = Batcher(held, max_inputs=8, window_s=window)
    first = batcher.submit(["1"])
    assert held.started.wait(10)
    late = [batcher.submit([str(i)]) for i in (2, 3)]
    held.gate.set()
    assert [t.future.result(10) for t in (first, *late)] == [["1"], ["2"], ["3"]]
    assert held.calls == [["1"], ["2", "3"]]


class Fatal(BaseException):
    """What kills a thread (an `except Exception` does not catch it)."""


def test_a_dead_decoding_thread_fails_waiting_and_new_requests() -> None:
    decode = GatedDecoder()

    def dying(inputs: list[str]) -> list[str]:
        decode(inputs)
        raise Fatal("out of memory")

    batcher = Batcher(dying, max_inputs=1)
    doomed = batcher.submit(["a"])
    assert decode.started.wait(10)
    waiting = batcher.submit(["b"])
    decode.gate.set()
    for ticket in (doomed, waiting):  # the batch it died on, and the one behind it
        with pytest.raises(DecoderDead, match="out of memory"):
            ticket.future.result(10)
    batcher._thread.join(10)
    assert not batcher.alive
    with pytest.raises(DecoderDead, match="out of memory"):
        batcher.submit(["c"])


def test_setup_runs_on_the_decoding_thread_before_any_batch() -> None:
    """The model is loaded on the thread that decodes with it (one OpenMP team)."""
    threads: dict[str, int] = {}

    def setup() -> None:
        threads["setup"] = threading.get_ident()

    def decode(inputs: list[str]) -> list[str]:
        threads["decode"] = threading.get_ident()
        return [i.upper() for i in inputs]

    batcher = Batcher(decode, max_inputs=4, setup=setup)
    batcher.ready(10)
    assert batcher(["a"], timeout=10) == ["A"]
    assert threads["setup"] == threads["decode"] != threading.get_ident()


def test_a_failing_setup_is_raised_and_nothing_is_served() -> None:
    def setup() -> None:
        raise OSError("no adapter")

    batcher = Batcher(lambda inputs: inputs, max_inputs=4, setup=setup)
    with pytest.raises(OSError, match="no adapter"):
        batcher.ready(10)
    batcher._thread.join(10)
    with pytest.raises(DecoderDead, match="no adapter"):
        batcher.submit(["a"])


def test_slot_error_report_names_the_slots() -> None:
    from utils.viggo import slot_errors

    mr = "inform(name[Portal 2], rating[excellent], has_multiplayer[yes])"
    sentence = "Portal 2 is a poor game from 2011."
    report = slot_error_report(mr, sentence)
    assert "has_multiplayer" in report["missing"]
    assert report["errors"] == slot_errors(mr, sentence).errors > 0
    assert slot_error_report(mr, "Portal 2 is an excellent multiplayer game.")["errors"] == 0
    assert slot_error_report("not an MR", "text") is None
