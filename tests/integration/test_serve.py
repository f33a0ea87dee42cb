"""`run.py serve` end to end on a tiny model: a real local ZenML deployment, real HTTP.

One deployment for most checks (start-up is most of the cost): the printed curl runs as
printed (with its key) and a request without the key gets a 401; outputs equal the
evaluation's (reranked) and `run.py generate`'s; CORS headers only for a configured origin;
the real `openai` client works unchanged; the sampled run and the counters reach the store;
`/submit` still makes a tracked run; each bad request kind gets its 4xx. Then the same
model redeployed with `serving.record=every serving.rerank=false`: ZenML's own path, greedy
outputs. `--stop` frees the port.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import tiny_config
from tests.integration.test_pipeline import _run

MODEL = "tiny-test-model"
MR = "inform(name[Portal 2], rating[excellent])"
ALLOWED = "http://allowed.example"


def _post(url: str, data: bytes, content_type: str = "application/json", headers=None):
    import requests

    # Minutes: a safety net for a loaded machine, not a speed requirement.
    all_headers = {"Content-Type": content_type, **(headers or {})}
    return requests.post(url, data=data, headers=all_headers, timeout=600)


def _port_is_free(port: int) -> bool:
    """Whether a new server could listen there (as uvicorn does: SO_REUSEADDR, so the
    closed connections' TIME_WAIT / FIN_WAIT entries do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _eventually(check, seconds: float = 120.0):
    """`check()`'s first truthy value, polled (the service writes runs and counters in the
    background, after the answer)."""
    end = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > end:
            return value
        time.sleep(0.5)


@pytest.fixture(scope="module")
def varied_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model with larger weights: its outputs are non-empty and differ by input
    (the default init prints nothing for every MR, and equal outputs would prove nothing)."""
    from transformers import AutoTokenizer

    from tests.conftest import load_varied_on_cpu

    out = tmp_path_factory.mktemp("varied-llama")
    model, _ = load_varied_on_cpu(tiny_model_dir)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def _serve(cli, capsys, *extra: str) -> tuple[str, str, str]:
    """(url, auth key, printed curl) of a fresh `serve`."""
    limits = ["--set", "serving.max_inputs_per_request=4", "--set", "serving.max_input_chars=300"]
    limits += ["--set", "serving.startup_timeout=1800", "--set", "serving.stats_every_s=1"]
    limits += ["--set", f"serving.cors_origins=['{ALLOWED}']"]
    capsys.readouterr()
    assert cli.main(["serve", "--model", MODEL, "--stage", "latest", *limits, *extra]) == 0
    printed = capsys.readouterr().out.splitlines()
    (serving,) = [line for line in printed if line.startswith("serving ")]
    url = re.search(r"at (http://\S+)$", serving).group(1)
    (curl,) = [line for line in printed if line.startswith("curl ")]
    key = re.search(r"Authorization: Bearer (\S+?)'", curl)
    return url, key.group(1) if key else "", curl


def test_serve_fast_path_answers_like_the_evaluation_safely_and_stops(
    zenml_env: Path, varied_model_dir, viggo_subset, capsys
) -> None:
    import openai
    import requests
    from zenml.client import Client

    import run as cli
    from utils.core.names import (
        SERVED_SLOT_ERRORS,
        SERVED_TEXTS,
        SERVING_STATS,
        EvalStage,
        predictions_name,
    )
    from utils.inference.adapters import AdapterGenerator, generate_with_adapter
    from utils.viggo import slot_errors
    from utils.zenml_ops.model_versions import (
        evaluated_max_new_tokens,
        extracted_adapter,
        find_version,
        version_config,
    )

    # Reranked evaluation (every input gets candidates), so the comparison covers it.
    rerank = {"rerank": {"candidates": 3, "only_failing": False}}
    _run(tiny_config(varied_model_dir, viggo_subset, evaluation=rerank))
    mv = find_version(MODEL, "latest")
    evaluated = mv.get_artifact(predictions_name(EvalStage.FINETUNED)).load()
    inputs = list(dict.fromkeys(r["input"] for r in evaluated))
    expected = {r["input"]: r["prediction"] for r in evaluated}

    try:
        url, key, curl = _serve(cli, capsys)
        invoke = url + "/invoke"
        auth = {"Authorization": f"Bearer {key}"}
        port = urlparse(url).port
        assert urlparse(url).hostname == "127.0.0.1"

        # The curl line runs as printed, key included; without the key: 401.
        reply = json.loads(subprocess.run(curl, shell=True, capture_output=True, check=True).stdout)
        assert reply["success"], reply
        assert len(reply["outputs"][SERVED_TEXTS]) == 1
        assert (
            key
            and _post(invoke, json.dumps({"parameters": {"inputs": [MR]}}).encode()).status_code
            == 401
        )

        # The evaluated inputs, as concurrent requests of up to 4 in another grouping than
        # the evaluation's batches: the same (reranked) outputs, and run.py generate's.
        chunks = [inputs[i : i + 3] for i in range(0, len(inputs), 3)]
        with ThreadPoolExecutor(len(chunks)) as pool:
            replies = list(
                pool.map(
                    lambda c: _post(
                        invoke, json.dumps({"parameters": {"inputs": c}}).encode(), headers=auth
                    ),
                    chunks,
                )
            )
        assert all(r.status_code == 200 and r.json()["success"] for r in replies)
        outputs = [r.json()["outputs"] for r in replies]
        served = [t for o in outputs for t in o[SERVED_TEXTS]]
        assert len(set(served)) > 1 and all(served)  # the comparison means something
        assert all(r.json()["metadata"]["run_id"] is None for r in replies)  # no run each
        with extracted_adapter(mv) as adapter:
            direct = generate_with_adapter(
                version_config(mv), adapter, inputs, evaluated_max_new_tokens(mv)
            )
        reports = [rep for o in outputs for rep in o[SERVED_SLOT_ERRORS]]
        assert [rep["errors"] for rep in reports] == [
            slot_errors(i, t).errors for i, t in zip(inputs, served, strict=True)
        ]
        capsys.readouterr()
        given = [a for i in inputs for a in ("--input", i)]
        assert cli.main(["generate", "--model", MODEL, "--stage", "latest", *given]) == 0
        generated = capsys.readouterr().out.split("\n")[-len(inputs) - 1 : -1]

        # CORS: headers for the configured origin only.
        mr_body = json.dumps({"parameters": {"inputs": [MR]}}).encode()
        foreign = _post(invoke, mr_body, headers={**auth, "Origin": "http://evil.example"})
        assert foreign.status_code == 200
        assert "access-control-allow-origin" not in foreign.headers
        preflight = requests.options(
            invoke,
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
            timeout=60,
        )
        assert "access-control-allow-origin" not in preflight.headers
        allowed = _post(invoke, mr_body, headers={**auth, "Origin": ALLOWED})
        assert allowed.headers["access-control-allow-origin"] == ALLOWED

        # The OpenAI client, unchanged: base_url and the key.
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=600)
        assert [m.id for m in client.models.list().data] == [MODEL]
        assert client.models.retrieve(MODEL).id == MODEL
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("gpt-4o")
        completion = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": inputs[0]}]
        )
        answered = completion.choices[0].message.content
        assert completion.usage.completion_tokens > 0
        assert completion.slot_errors[0]["errors"] == slot_errors(inputs[0], answered).errors
        streamed = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": inputs[0]}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == answered
        with pytest.raises(openai.BadRequestError, match="n=2 is not supported"):
            client.chat.completions.create(
                model=MODEL, n=2, messages=[{"role": "user", "content": inputs[0]}]
            )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()

        # The first request became a run (serving.record: sampled), off its path; the
        # counters reach the version's metadata.
        def recorded():
            runs = Client().list_pipeline_runs(pipeline="llm_lora_inference", size=50)
            return [r for r in runs.items if r.status.value == "completed"]

        assert _eventually(recorded)
        stats = _eventually(
            lambda: (
                (find_version(MODEL, "latest").run_metadata.get(SERVING_STATS) or {}).get(
                    "requests", 0
                )
                >= len(chunks) + 1
                and find_version(MODEL, "latest").run_metadata[SERVING_STATS]
            )
        )
        assert stats and stats["errors"].get("401") == 1 and stats["latency_p50_s"] > 0

        # /submit still records the full run, as before.
        submitted = _post(url + "/submit", mr_body, headers=auth)
        assert submitted.status_code == 200, submitted.text
        run_id = submitted.json()["run_id"]
        assert _eventually(lambda: Client().get_pipeline_run(run_id).status.value == "completed")

        # Each bad request kind: its status and reason, never a 500.
        bad = [
            (b'{"parameters": {"inputs": [', "application/json", 400, "malformed JSON"),
            (b"x=1", "application/x-www-form-urlencoded", 415, "Content-Type: application/json"),
            (b'{"parameters": {"inputs": []}}', "application/json", 422, "is empty"),
            (b'{"parameters": {"inputs": "x"}}', "application/json", 422, "list of strings"),
            (b"[" * 100 + b"]" * 100, "application/json", 400, "nested deeper"),
            (
                json.dumps({"parameters": {"inputs": [MR, "Portal 2 rocks"]}}).encode(),
                "application/json",
                422,
                "inputs[1] is not a meaning representation",
            ),
            (
                json.dumps({"parameters": {"inputs": [MR] * 5}}).encode(),
                "application/json",
                413,
                "at most 4 per request (serving.max_inputs_per_request)",
            ),
            (
                json.dumps({"parameters": {"inputs": [f"inform(name[{'x' * 300}])"]}}).encode(),
                "application/json",
                413,
                "at most 300 (serving.max_input_chars)",
            ),
        ]
        for data, content_type, status, phrase in bad:
            r = _post(invoke, data, content_type, headers=auth)
            assert r.status_code == status, (phrase, r.status_code, r.text)
            assert phrase in r.json()["detail"] and "\n" not in r.json()["detail"]
        assert requests.get(url + "/health", timeout=10).status_code == 200

        # serving.record=every: ZenML's own path (a run per request), here greedy.
        url, key, _ = _serve(
            cli, capsys, "--set", "serving.record=every", "--set", "serving.rerank=false"
        )
        auth = {"Authorization": f"Bearer {key}"}
        with extracted_adapter(mv) as adapter:
            greedy = AdapterGenerator.load(
                version_config(mv), adapter, evaluated_max_new_tokens(mv), rerank=False
            ).generate(inputs[:3])
        r = _post(
            url + "/invoke",
            json.dumps({"parameters": {"inputs": inputs[:3]}}).encode(),
            headers=auth,
        )
        assert r.status_code == 200 and r.json()["outputs"][SERVED_TEXTS] == greedy
        assert r.json()["metadata"]["run_id"] is not None
        port = urlparse(url).port

    finally:  # never leave a service behind, whatever failed
        stopped = cli.main(["serve", "--stop", "--model", MODEL])
    assert stopped == 0
    assert _port_is_free(port)
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=5)
    # Stopping what is not running is a one-line error, not a traceback.
    assert cli.main(["serve", "--stop", "--model", MODEL]) == 2
    assert "no deployment named 'tiny-test-model'" in capsys.readouterr().err

    # Reranked outputs depend on the input only (each input's candidates are seeded by
    # the input), so however the requests were grouped into batches, the deployment
    # answers as the evaluation scored and as run.py generate prints.
    assert served == [expected[i] for i in inputs]
    assert generated == served
    assert direct == served
    assert answered == expected[inputs[0]]


def test_serve_no_auth_says_what_it_opens(capsys) -> None:
    from utils.cli.serve import parser

    assert "anyone who can reach the port" in parser().format_help().replace("\n", " ")
