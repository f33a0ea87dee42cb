"""The service's routes in process (no deployment, a fake model that answers at once): auth
before anything else, 503 + Retry-After on a full queue, 504 on a deadline, a disconnected
client's request dropped, a dead decoding thread reported by /health, the OpenAI route's
shape and refusals, and a property-based fuzz: no body ever gets a 5xx."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_serve_requests import GatedDecoder
from utils.config import ServingSection
from utils.serving import endpoints
from utils.serving.batcher import Batcher
from utils.serving.core import Disconnected, Refused, ServingCore
from utils.serving.middleware import RequestCheckMiddleware
from utils.serving.openai_api import CHAT_PATH, MODEL_PATH, MODELS_PATH
from utils.serving.slot_report import slot_error_report

MR = "inform(name[Portal 2], rating[excellent])"
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class FakeServed:
    """What the routes need of a ServedModel; decoding upper-cases the MR's name."""

    task = "data_to_text"
    name = "fake-model"
    description = "fake-model version 1"

    def __init__(self, decode=None, max_queued: int | None = None) -> None:
        self.batcher = Batcher(decode or self._decode, 8, 0.0, max_queued)

    @staticmethod
    def _decode(inputs: list[str]) -> list[str]:
        return [f"{mr.split('[')[1].split(']')[0]} is an excellent game." for mr in inputs]

    def slot_errors(self, inputs, outputs):
        return [slot_error_report(i, o) for i, o in zip(inputs, outputs, strict=True)]

    def prompt_tokens(self, text: str) -> int:
        return len(text.split()) + 5

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate_tokens(self, text: str, max_tokens: int) -> tuple[str, bool]:
        words = text.split()
        return " ".join(words[:max_tokens]), len(words) > max_tokens


def make_app(
    served, auth_key: str | None = KEY, record=None, **serving
) -> tuple[FastAPI, ServingCore]:
    core = ServingCore(served, ServingSection(**serving), {"deployment_name": "fake"}, record)
    runner = SimpleNamespace(
        deployment=SimpleNamespace(auth_key=auth_key), service=SimpleNamespace(core=core)
    )
    app = FastAPI()
    app.state.app_runner = runner
    app.add_middleware(
        RequestCheckMiddleware,
        paths=["/invoke"],
        chat_paths=[CHAT_PATH],
        task="data_to_text",
        max_inputs_per_request=4,
        max_input_chars=200,
    )
    app.post("/invoke")(endpoints.invoke_endpoint(runner))
    app.get("/health")(endpoints.health_endpoint(runner))
    app.post(CHAT_PATH)(endpoints.chat_completions_endpoint(runner))
    app.get(MODELS_PATH)(endpoints.models_endpoint(runner))
    app.get(MODEL_PATH)(endpoints.model_endpoint(runner))
    return app, core


@pytest.fixture(scope="module")
def client() -> TestClient:
    app, _ = make_app(FakeServed())
    return TestClient(app, raise_server_exceptions=False)


def invoke(client: TestClient, inputs, headers=AUTH):
    return client.post("/invoke", json={"parameters": {"inputs": inputs}}, headers=headers)


def test_invoke_answers_in_zenml_shape_and_needs_the_key(client: TestClient) -> None:
    reply = invoke(client, [MR])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["success"] and body["error"] is None
    assert body["outputs"]["texts"] == ["Portal 2 is an excellent game."]
    assert body["outputs"]["slot_errors"][0]["errors"] == 0
    assert body["metadata"]["parameters_used"] == {"inputs": [MR]}
    # No key, a wrong key, a wrong scheme: 401 before the body is even read.
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}):
        r = client.post("/invoke", content=b"garbage", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = client.post(CHAT_PATH, json={}, headers={})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert client.get("/health").json()["status"] == "healthy"


def test_a_slow_answer_is_recorded_with_its_body() -> None:
    """A request that waits long enough to look for a disconnect (which consumes the replayed
    body message) still reaches the record hook with its body, and is answered."""
    recorded = []

    def slow(inputs):
        time.sleep(0.5)  # several disconnect checks while it decodes
        return [s.upper() for s in inputs]

    app, _ = make_app(FakeServed(slow), record=lambda *a: recorded.append(a))
    with TestClient(app) as c:
        r = c.post(
            "/invoke",
            json={"parameters": {"inputs": [MR]}, "run_name": "audit"},
            headers=AUTH,
        )
    assert r.status_code == 200 and r.json()["outputs"]["texts"] == [MR.upper()]
    assert recorded == [({"parameters": {"inputs": [MR]}, "run_name": "audit"}, [MR], [MR.upper()])]


def test_a_full_queue_is_503_with_retry_after() -> None:
    decode = GatedDecoder()
    served = FakeServed(decode, max_queued=2)
    app, core = make_app(served)
    busy = served.batcher.submit([MR])  # decoding, held at the gate
    assert decode.started.wait(10)
    queued = served.batcher.submit([MR, MR])  # the queue is full now
    with TestClient(app) as c:
        r = invoke(c, [MR])
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert "serving.max_queued_inputs" in r.json()["detail"]
    decode.gate.set()
    assert busy.future.result(10) and queued.future.result(10)
    assert core.stats.snapshot()["errors"] == {"503": 1}


def test_a_request_past_its_deadline_is_504_and_dropped() -> None:
    decode = GatedDecoder()
    served = FakeServed(decode)
    app, _ = make_app(served, request_timeout_s=0.3)
    busy = served.batcher.submit(["first"])
    assert decode.started.wait(10)
    with TestClient(app) as c:
        r = invoke(c, [MR])
    assert r.status_code == 504 and "serving.request_timeout_s" in r.json()["detail"]
    decode.gate.set()
    busy.future.result(10)
    assert served.batcher(["after"]) == ["AFTER"]
    assert [MR] not in decode.calls  # it waited in the queue, and was dropped there


def test_a_disconnected_client_cancels_its_queued_work() -> None:
    decode = GatedDecoder()
    served = FakeServed(decode)
    core = ServingCore(served, ServingSection())
    busy = served.batcher.submit(["first"])
    assert decode.started.wait(10)
    asked = threading.Event()

    async def gone() -> bool:
        asked.set()
        return True

    with pytest.raises(Disconnected):
        asyncio.run(core.outputs(["mine"], gone))
    assert asked.is_set()
    decode.gate.set()
    busy.future.result(10)
    assert served.batcher(["next"]) == ["NEXT"]
    assert decode.calls == [["first"], ["next"]]


def test_a_dead_decoding_thread_makes_health_unhealthy_and_requests_fail_fast() -> None:
    def die(inputs):
        raise SystemExit("decoder crashed")

    served = FakeServed(die)
    app, core = make_app(served)
    with pytest.raises(Refused) as e:
        asyncio.run(core.outputs([MR]))
    assert e.value.status == 503
    served.batcher._thread.join(10)
    with TestClient(app) as c:
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        assert "decoder crashed" in health.json()["detail"]
        r = invoke(c, [MR])
        assert r.status_code == 503 and "decoding thread has stopped" in r.json()["detail"]


def test_the_openai_route_answers_and_refuses_what_it_cannot_honour(client) -> None:
    chat = {"model": "anything", "messages": [{"role": "user", "content": MR}]}
    r = client.post(CHAT_PATH, json=chat, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "fake-model"
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Portal 2 is an excellent game."}
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 6
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 6
    assert body["slot_errors"][0]["errors"] == 0
    # max_tokens and stop cut the output; a list of text parts is one input.
    parts = [{"type": "text", "text": MR}]
    r = client.post(
        CHAT_PATH,
        json={"messages": [{"role": "user", "content": parts}], "max_tokens": 2},
        headers=AUTH,
    )
    assert r.json()["choices"][0]["message"]["content"] == "Portal 2"
    assert r.json()["choices"][0]["finish_reason"] == "length"
    r = client.post(CHAT_PATH, json={**chat, "stop": [" excellent"]}, headers=AUTH)
    assert r.json()["choices"][0]["message"]["content"] == "Portal 2 is an"
    for field, value in [("n", 2), ("stream", "yes"), ("temperature", 0.7), ("top_p", 0.5)]:
        r = client.post(CHAT_PATH, json={**chat, field: value}, headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["param"] == field, (field, r.text)
    r = client.post(CHAT_PATH, json={"messages": [{"role": "user", "content": "hi"}]}, headers=AUTH)
    assert r.status_code == 422 and "not a meaning representation" in r.json()["error"]["message"]
    models = client.get(MODELS_PATH).json()
    assert [m["id"] for m in models["data"]] == ["fake-model"]


def _events(reply) -> list:
    assert reply.headers["content-type"].startswith("text/event-stream"), reply.text
    lines = [line for line in reply.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_a_streamed_chat_is_the_same_answer_in_openai_chunks(client) -> None:
    chat = {"messages": [{"role": "user", "content": MR}], "max_tokens": 4, "stream": True}
    whole = client.post(CHAT_PATH, json={**chat, "stream": False}, headers=AUTH).json()
    r = client.post(CHAT_PATH, json=chat, headers=AUTH)
    assert r.status_code == 200
    chunks = _events(r)
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 2
    assert len({c["id"] for c in chunks}) == 1 and "usage" not in chunks[0]
    first, last = (c["choices"][0] for c in chunks)
    assert first["delta"] == whole["choices"][0]["message"] and first["finish_reason"] is None
    assert last["delta"] == {} and last["finish_reason"] == "length"
    assert chunks[1]["slot_errors"] == whole["slot_errors"]
    # include_usage: usage null on the content chunks, then a chunk of usage alone.
    r = client.post(
        CHAT_PATH, json={**chat, "stream_options": {"include_usage": True}}, headers=AUTH
    )
    chunks = _events(r)
    assert [c["usage"] for c in chunks[:2]] == [None, None]
    assert chunks[2]["choices"] == [] and chunks[2]["usage"] == whole["usage"]
    # Refused as OpenAI refuses them, before any decoding.
    for extra in ({"stream": False, "stream_options": {}}, {"stream_options": []}):
        r = client.post(CHAT_PATH, json={**chat, **extra}, headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options", r.text
    bad = {"stream_options": {"include_usage": "yes"}}
    assert client.post(CHAT_PATH, json={**chat, **bad}, headers=AUTH).status_code == 400


def test_the_openai_client_streams_and_finds_the_model(client) -> None:
    import openai

    # TestClient is an httpx.Client: the real client library speaks to the app in process.
    api = openai.OpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=client)
    messages = [{"role": "user", "content": MR}]
    stream = api.chat.completions.create(
        model="fake-model", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Portal 2 is an excellent game."
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, "stop"]
    assert chunks[-1].usage.completion_tokens == 6
    reply = api.chat.completions.create(model="fake-model", messages=messages)
    assert reply.choices[0].message.content == text
    assert api.models.retrieve("fake-model").model_dump() == api.models.list().data[0].model_dump()
    with pytest.raises(openai.NotFoundError, match="this deployment serves 'fake-model'"):
        api.models.retrieve("gpt-4o")


# --- fuzz: whatever the body, never a 5xx, and the service stays healthy ---

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.just(MR),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                ["parameters", "inputs", "messages", "role", "content", "run_name", "x", "n"]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda inputs: json.dumps({"parameters": {"inputs": inputs}}).encode(),
        st.lists(st.text(max_size=40) | st.just(MR) | st.integers(), max_size=6),
    ),
    st.builds(
        lambda messages, extra: json.dumps({"messages": messages, **extra}).encode(),
        st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "system", "bot"]), "content": json_values}
            ),
            max_size=3,
        ),
        st.dictionaries(
            st.sampled_from(["max_tokens", "stop", "n", "temperature", "stream", "model"]),
            json_values,
            max_size=3,
        ),
    ),
    st.binary(max_size=64),
    st.integers(1, 80).map(lambda d: b"[" * d + b"]" * d),
    st.integers(4000, 6000).map(lambda n: b'{"parameters": {"inputs": [' + b"7" * n + b"]}}"),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=bodies,
    path=st.sampled_from(["/invoke", CHAT_PATH]),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_no_body_gets_a_5xx(client: TestClient, raw: bytes, path: str, content_type) -> None:
    headers = {**AUTH, "Content-Type": content_type}
    r = client.post(path, content=raw, headers=headers)
    assert r.status_code < 500, (raw[:200], r.status_code, r.text)
    assert r.status_code in (200, 400, 401, 413, 415, 422), r.text
    assert client.get("/health").status_code == 200


def test_the_printed_curl_carries_the_key_and_splits_as_a_shell_would() -> None:
    import shlex

    from utils.serving.deployment import Served

    served = Served("m", "http://127.0.0.1:8000", "data_to_text", "m version 1", "k'ey")
    words = shlex.split(served.curl())
    assert words[words.index("-H") + 1] == "Authorization: Bearer k'ey"
    assert json.loads(words[-1])["parameters"]["inputs"]
    assert "Authorization" not in Served("m", "http://x", "data_to_text", "d").curl()


def test_serving_settings_refuse_what_would_open_the_service_by_mistake() -> None:
    from pydantic import ValidationError

    assert ServingSection().auth and ServingSection().cors_origins == []
    assert ServingSection().record == "sampled"
    with pytest.raises(ValidationError, match="scheme://host"):
        ServingSection(cors_origins=["evil.example"])
    with pytest.raises(ValidationError):
        ServingSection(record="sometimes")
