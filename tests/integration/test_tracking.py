"""The stack's experiment tracker (a real MLflow one, sqlite-backed) gets what ZenML gets;
a stack without one changes nothing; an unusable one stops the run before any step."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_config
from tests.integration.test_pipeline import _run
from utils.core.names import PEAK_MEMORY_MB, STEP_MEMORY

MODEL = "tiny-test-model"  # tiny_config's model.name: the experiment's name
TRACKER = "mlflow_local"
# Timings and peak memory differ between two runs of one config; everything else in the
# metadata must not.
TIMINGS = {
    PEAK_MEMORY_MB,
    STEP_MEMORY,
    "train_runtime_s",
    "generation_seconds",
    "rows_per_second",
    "new_tokens_per_second",
    "greedy_seconds",
    "rerank_seconds",
    "seconds",
}


def _tracked_config(model_dir: Path, data_dir: Path, **sections: dict) -> dict:
    # Validation every step (2 inputs): the generative metrics reach the tracker too.
    cfg = tiny_config(
        model_dir,
        data_dir,
        training={"validation_steps": 1, "validation_samples": 2, "eval_steps": 1},
        **sections,
    )
    cfg["enable_cache"] = False  # each run trains and evaluates: every step logs
    return cfg


def _use_tracker(uri: str, name: str = TRACKER) -> None:
    """Register an MLflow tracker and make a copy of the default stack with it active."""
    from zenml.client import Client
    from zenml.enums import StackComponentType as T

    client = Client()
    configuration = {"tracking_uri": uri}
    if uri.startswith("http"):  # ZenML asks remote servers for credentials
        configuration.update(tracking_username="user", tracking_password="not-a-secret")
    client.create_stack_component(
        name=name, flavor="mlflow", component_type=T.EXPERIMENT_TRACKER,
        configuration=configuration,
    )  # fmt: skip
    default = client.active_stack_model.components
    client.create_stack(
        name=f"with-{name}",
        components={
            T.ORCHESTRATOR: default[T.ORCHESTRATOR][0].name,
            T.ARTIFACT_STORE: default[T.ARTIFACT_STORE][0].name,
            T.EXPERIMENT_TRACKER: name,
        },
    )
    client.activate_stack(f"with-{name}")


def _strip_timings(value):
    if isinstance(value, dict):
        return {k: _strip_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_strip_timings(v) for v in value]
    return value


def _version_metadata(number: int) -> dict:
    from zenml.client import Client

    meta = dict(Client().get_model_version(MODEL, number).run_metadata)
    return {k: _strip_timings(v) for k, v in meta.items()}


def _runs_by_name(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    names = {e.name for e in client.search_experiments()} - {"Default"}
    assert names == {MODEL}  # one experiment, named after model.name
    experiment = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([experiment.experiment_id])
    return client, experiment, {r.data.tags["mlflow.runName"]: r for r in runs}


def _assert_training_logged(client, run, training: dict, learning_rate: float) -> None:
    """The finetune run: config parameters, one point per logging step, the loss curve."""
    assert float(run.data.params["training.learning_rate"]) == learning_rate
    assert run.data.params["model.name"] == MODEL
    zenml_losses = training["loss_history"]["train_loss"]
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [
        (int(s), pytest.approx(v)) for s, v in zenml_losses
    ]
    for name in ("learning_rate", "grad_norm", "tokens_seen"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, name)]
        assert steps == [int(s) for s, _ in zenml_losses], name
    tokens = client.get_metric_history(run.info.run_id, "tokens_seen")
    assert tokens[-1].value == training["tokens_seen"]
    evals = client.get_metric_history(run.info.run_id, "eval_loss")
    zenml_evals = training["loss_history"]["eval_loss"]
    assert [(m.step, m.value) for m in evals] == [
        (int(s), pytest.approx(v)) for s, v in zenml_evals
    ]
    # The generative validation checks, at their steps, with the values ZenML recorded.
    for metric in ("ser", "rougeL"):
        checks = client.get_metric_history(run.info.run_id, f"validation_{metric}")
        zenml_checks = [
            (c["step"], pytest.approx(c[metric])) for c in training["validation_history"]
        ]
        assert [(m.step, m.value) for m in checks] == zenml_checks, metric
    assert run.data.metrics["training_world_size"] == training["world_size"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "loss_curve.png" in artifacts


def test_mlflow_gets_what_zenml_gets_and_no_tracker_changes_nothing(
    zenml_env: Path, tiny_model_dir, viggo_subset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.artifacts import download_artifacts
    from zenml.client import Client

    cfg = _tracked_config(tiny_model_dir, viggo_subset)
    # 1. The default stack (no tracker): the tracker code is never reached.
    calls: list[str] = []
    with monkeypatch.context() as m:
        for name in ("start_run", "log_metrics", "log_params", "log_artifact", "set_tags"):
            m.setattr(mlflow, name, lambda *a, _n=name, **k: calls.append(_n))
        untracked = _run(cfg)
    assert calls == []
    steps = Client().get_pipeline_run(untracked.id).steps
    assert all(s.config.experiment_tracker is None for s in steps.values())
    # 2. The same config on a stack with an MLflow tracker.
    uri = f"sqlite:///{zenml_env / 'mlflow.db'}"
    _use_tracker(uri)
    tracked = _run(cfg)
    assert tracked.status.value == "completed"
    # Tracking added nothing to and removed nothing from ZenML's metadata (and training is
    # deterministic, so the figures are the same too).
    assert _version_metadata(2) == _version_metadata(1)
    meta = Client().get_model_version(MODEL, 2).run_metadata
    # 3. What MLflow holds, read through its own client.
    client, experiment, runs = _runs_by_name(uri)
    run_name = Client().get_pipeline_run(tracked.id).name
    assert set(runs) == {run_name, "finetune", "evaluate_base", "evaluate_finetuned"}
    parent = runs[run_name].info.run_id
    for name in ("finetune", "evaluate_base", "evaluate_finetuned"):
        tags = runs[name].data.tags
        assert tags["mlflow.parentRunId"] == parent, name
        assert tags["zenml_model_version"] == "2" and tags["zenml_model"] == MODEL, name
    assert runs[run_name].data.tags["zenml_model_version"] == "2"
    _assert_training_logged(client, runs["finetune"], meta["training"], 1e-3)
    tuned, base = runs["evaluate_finetuned"].data, runs["evaluate_base"].data
    assert tuned.metrics["finetuned_rougeL"] == pytest.approx(meta["finetuned_metrics"]["rougeL"])
    assert tuned.metrics["finetuned_ser"] == pytest.approx(meta["finetuned_metrics"]["ser"])
    assert base.metrics["base_rougeL"] == pytest.approx(meta["base_metrics"]["rougeL"])
    assert tuned.params["evaluation.max_samples"] == "6"
    report = download_artifacts(
        run_id=runs["evaluate_finetuned"].info.run_id,
        artifact_path="finetuned_report.html",
        dst_path=str(zenml_env / "downloaded"),
        tracking_uri=uri,
    )
    predictions = Client().get_model_version(MODEL, 2).get_artifact("finetuned_predictions")
    first = predictions.load()[0]["input"]
    import html

    assert html.escape(first) in Path(report).read_text()
    # 4. The MLflow UI's own REST API lists the runs.
    _assert_ui_lists(uri, experiment.experiment_id, runs["evaluate_finetuned"].info.run_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_ui_lists(uri: str, experiment_id: str, run_id: str) -> None:
    port = _free_port()
    # The UI's server alone: no job runner (huey workers), no telemetry.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "DO_NOT_TRACK": "true"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        body = json.dumps({"experiment_ids": [experiment_id]}).encode()
        request = urllib.request.Request(
            f"{base}/ajax-api/2.0/mlflow/runs/search",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            listed = json.load(r)
        assert run_id in {run["info"]["run_id"] for run in listed["runs"]}
        with urllib.request.urlopen(f"{base}/", timeout=30) as r:
            assert b"MLflow" in r.read()  # the UI page itself
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """The server and its worker: its own process group, by the pid we started."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_two_ranks_log_through_the_parent_step(
    zenml_env: Path, tiny_model_dir, viggo_subset
) -> None:
    from zenml.client import Client

    from utils.core.names import TRACKER_METRICS

    uri = f"sqlite:///{zenml_env / 'mlflow.db'}"
    _use_tracker(uri)
    cfg = _tracked_config(tiny_model_dir, viggo_subset, accelerate={"num_processes": 2})
    assert _run(cfg).status.value == "completed"
    training = Client().get_model_version(MODEL, "latest").run_metadata["training"]
    assert training["world_size"] == 2
    assert TRACKER_METRICS not in training  # carried to the parent, not into the metadata
    client, _, runs = _runs_by_name(uri)
    # Rank 0's metrics only (one point per logging step), logged by the parent step.
    _assert_training_logged(client, runs["finetune"], training, 1e-3)
    assert "finetuned_rougeL" in runs["evaluate_finetuned"].data.metrics


def _write_config(tmp: Path, cfg: dict) -> Path:
    path = tmp / "tracked.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    ("uri", "phrase"),
    [
        ("http://127.0.0.1:{port}", "cannot be used"),  # nothing listens there
        # A store under a regular file: no folder can be made there.
        ("sqlite:///{tmp}/a-file/mlflow.db", "cannot be used"),
    ],
    ids=["unreachable-server", "unwritable-store"],
)
def test_unusable_tracker_stops_the_run_before_any_step(
    zenml_env: Path, tiny_model_dir, viggo_subset, capsys, uri: str, phrase: str
) -> None:
    from zenml.client import Client

    import run

    (zenml_env / "a-file").write_text("")
    _use_tracker(uri.format(port=_free_port(), tmp=zenml_env), name="mlflow_broken")
    config = _write_config(zenml_env, tiny_config(tiny_model_dir, viggo_subset))
    assert run.main(["--config", str(config)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: experiment tracker 'mlflow_broken' (mlflow)" in last and phrase in last, last
    assert "tracking.required: false" in last
    assert Client().list_pipeline_runs().total == 0


def _compile(cfg, track: bool):
    """Each step's config as ZenML compiles `build_pipeline(cfg, track=...)` (nothing runs)."""
    from pipelines.finetuning import build_pipeline

    pipe = build_pipeline(cfg, track=track)
    pipe.prepare(config=cfg.model_dump())
    args = {k: v for k, v in pipe._run_args.items() if k != "prevent_build_reuse"}
    args["steps"] = args.pop("step_configurations", None)
    snapshot, _, _ = pipe._compile(**args)
    return {name: step.config for name, step in snapshot.step_configurations.items()}


def test_tracking_not_required_runs_without_the_tracker(
    zenml_env: Path, tiny_model_dir, viggo_subset, caplog
) -> None:
    from utils.cli.preflight import check_tracking
    from utils.config import PipelineConfig
    from utils.zenml_ops.tracking import TrackerError

    _use_tracker(f"http://127.0.0.1:{_free_port()}", name="mlflow_broken")
    cfg = PipelineConfig.model_validate(tiny_config(tiny_model_dir, viggo_subset))
    with pytest.raises(TrackerError, match="mlflow_broken"):
        check_tracking(cfg)
    cfg.tracking.required = False
    assert check_tracking(cfg) is False
    assert "running without it (tracking.required: false)" in caplog.text
    # What run.py then builds: no step runs with the tracker.
    assert {c.experiment_tracker for c in _compile(cfg, track=False).values()} == {None}
    # With it: finetune and both evaluations, in one experiment named after model.name.
    steps = _compile(cfg, track=True)
    tracked = {name for name, c in steps.items() if c.experiment_tracker}
    assert tracked == {"finetune", "evaluate_base", "evaluate_finetuned"}
    for name in tracked:
        settings = steps[name].settings["experiment_tracker:mlflow_broken"]
        assert settings.model_dump()["experiment_name"] == MODEL, name
