"""`run.py serve` end to end on a tiny model: a real local ZenML deployment, real HTTP.

One deployment for the whole module's checks (start-up is most of the cost): the printed
curl runs as printed, outputs equal `generate_with_adapter`'s and the evaluation's, each bad
request kind gets its 4xx and reason, the service stays healthy, `--stop` frees the port.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import tiny_config
from tests.integration.test_pipeline import _run

MODEL = "tiny-test-model"
MR = "inform(name[Portal 2], rating[excellent])"


def _post(url: str, data: bytes, content_type: str = "application/json"):
    import requests

    # Minutes: a safety net for a loaded machine, not a speed requirement.
    return requests.post(url, data=data, headers={"Content-Type": content_type}, timeout=600)


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


def test_serve_answers_like_the_evaluation_refuses_bad_requests_and_stops(
    zenml_env: Path, varied_model_dir, viggo_subset, capsys
) -> None:
    import requests

    import run as cli
    from utils.core.names import SERVED_SLOT_ERRORS, SERVED_TEXTS, EvalStage, predictions_name
    from utils.inference.adapters import generate_with_adapter
    from utils.viggo import slot_errors
    from utils.zenml_ops.model_versions import (
        evaluated_max_new_tokens,
        extracted_adapter,
        find_version,
        version_config,
    )

    _run(tiny_config(varied_model_dir, viggo_subset))
    mv = find_version(MODEL, "latest")
    evaluated = mv.get_artifact(predictions_name(EvalStage.FINETUNED)).load()
    limits = ["--set", "serving.max_inputs_per_request=4", "--set", "serving.max_input_chars=300"]
    limits += ["--set", "serving.startup_timeout=1800"]
    serve = ["serve", "--model", MODEL, "--stage", "latest", *limits]

    capsys.readouterr()
    try:
        assert cli.main(serve) == 0
        printed = capsys.readouterr().out.splitlines()
        (serving,) = [line for line in printed if line.startswith("serving ")]
        url = re.search(r"at (http://\S+)$", serving).group(1)
        invoke = url + "/invoke"
        port = urlparse(url).port

        # The curl line runs as printed.
        (curl,) = [line for line in printed if line.startswith("curl ")]
        reply = json.loads(subprocess.run(curl, shell=True, capture_output=True, check=True).stdout)
        assert reply["success"], reply
        assert len(reply["outputs"][SERVED_TEXTS]) == 1

        # The evaluated inputs, as concurrent requests of up to 4 (they may share a batch):
        # the same outputs as the evaluation and as generate_with_adapter (run.py generate).
        inputs = list(dict.fromkeys(r["input"] for r in evaluated))
        chunks = [inputs[i : i + 4] for i in range(0, len(inputs), 4)]
        with ThreadPoolExecutor(len(chunks)) as pool:
            replies = list(
                pool.map(
                    lambda c: _post(invoke, json.dumps({"parameters": {"inputs": c}}).encode()),
                    chunks,
                )
            )
        outputs = [r.json()["outputs"] for r in replies]
        assert all(r.status_code == 200 and r.json()["success"] for r in replies)
        served = [t for o in outputs for t in o[SERVED_TEXTS]]
        expected = {r["input"]: r["prediction"] for r in evaluated}
        assert served == [expected[i] for i in inputs]
        assert len(set(served)) > 1 and all(served)  # the comparison means something
        with extracted_adapter(mv) as adapter:
            direct = generate_with_adapter(
                version_config(mv), adapter, inputs, evaluated_max_new_tokens(mv)
            )
        assert served == direct
        # run.py generate prints them too (by default with the evaluation's max_new_tokens).
        capsys.readouterr()
        given = [a for i in inputs for a in ("--input", i)]
        assert cli.main(["generate", "--model", MODEL, "--stage", "latest", *given]) == 0
        assert capsys.readouterr().out.split("\n")[-len(inputs) - 1 : -1] == served
        reports = [rep for o in outputs for rep in o[SERVED_SLOT_ERRORS]]
        assert [rep["errors"] for rep in reports] == [
            slot_errors(i, t).errors for i, t in zip(inputs, served, strict=True)
        ]

        # Each bad request kind: its status and reason, never a 500.
        bad = [
            (b'{"parameters": {"inputs": [', "application/json", 400, "malformed JSON"),
            (b"x=1", "application/x-www-form-urlencoded", 415, "Content-Type: application/json"),
            (b'{"parameters": {"inputs": []}}', "application/json", 422, "is empty"),
            (b'{"parameters": {"inputs": "x"}}', "application/json", 422, "list of strings"),
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
            r = _post(invoke, data, content_type)
            assert r.status_code == status, (phrase, r.status_code, r.text)
            assert phrase in r.json()["detail"] and "\n" not in r.json()["detail"]
        assert requests.get(url + "/health", timeout=10).status_code == 200
    finally:  # never leave a service behind, whatever failed
        stopped = cli.main(["serve", "--stop", "--model", MODEL])
    assert stopped == 0
    assert _port_is_free(port)
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=5)
    # Stopping what is not running is a one-line error, not a traceback.
    assert cli.main(["serve", "--stop", "--model", MODEL]) == 2
    assert "no deployment named 'tiny-test-model'" in capsys.readouterr().err
