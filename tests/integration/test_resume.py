"""A finetune killed with SIGKILL resumes from its last checkpoint and ends where an
uninterrupted run ends (same optimizer steps, same loss)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import prepare_tiny, tiny_config

CHILD = Path(__file__).with_name("train_child.py")
MAX_STEPS, SAVE_STEPS = 8, 2


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir, viggo_subset) -> Path:
    return prepare_tiny(tmp_path_factory, tiny_model_dir, viggo_subset)


def _config(tiny_model_dir: Path, viggo_subset: Path, checkpoints: Path, **training):
    from utils.config import PipelineConfig

    values = {
        "max_steps": MAX_STEPS,
        "save_steps": SAVE_STEPS,
        "checkpoint_dir": str(checkpoints),
        "logging_steps": 1,
        "batch_size": 2,
        # Large enough that the weights visibly move: a resume that lost the optimizer or
        # scheduler state, or replayed other batches, would end on another loss.
        "learning_rate": 3e-2,
        "warmup_ratio": 0.0,
        **training,
    }
    return PipelineConfig.model_validate(tiny_config(tiny_model_dir, viggo_subset, training=values))


def _start(cfg, dataset: Path, work: Path, sleep_s: float = 0.0) -> subprocess.Popen:
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(cfg.to_json())
    args = [str(work / "config.json"), str(dataset), str(work / "out"), str(work / "summary.json")]
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args, str(sleep_s)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, work: Path) -> dict:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads((work / "summary.json").read_text())


def _wait_for_checkpoint(proc: subprocess.Popen, folder: Path, min_step: int) -> None:
    from utils.training.checkpoints import checkpoint_step, last_complete_checkpoint

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = last_complete_checkpoint(folder)
        if found is not None and checkpoint_step(found) >= min_step:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended before a checkpoint: {proc.stderr.read()[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint appeared in time")


def test_sigkill_then_resume_matches_uninterrupted_run(
    tmp_path: Path, tiny_model_dir, viggo_subset, prepared: Path
) -> None:
    from utils.training.checkpoints import (
        checkpoint_folder,
        checkpoint_step,
        last_complete_checkpoint,
    )

    # Every run in a fresh process of its own, so all see the same numerics; the
    # uninterrupted one runs beside the one that gets killed.
    straight_cfg = _config(tiny_model_dir, viggo_subset, tmp_path / "ckpt-straight")
    straight_proc = _start(straight_cfg, prepared, tmp_path / "straight")
    cfg = _config(tiny_model_dir, viggo_subset, tmp_path / "ckpt-killed")
    folder = checkpoint_folder(cfg)
    proc = _start(cfg, prepared, tmp_path / "killed", sleep_s=0.4)
    _wait_for_checkpoint(proc, folder, min_step=2 * SAVE_STEPS)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    last = last_complete_checkpoint(folder)
    assert last is not None
    killed_at = checkpoint_step(last)
    assert 2 * SAVE_STEPS <= killed_at < MAX_STEPS

    resumed_proc = _start(cfg, prepared, tmp_path / "resumed")
    straight = _finish(straight_proc, tmp_path / "straight")
    assert straight["steps"] == MAX_STEPS and straight["resumed_from_step"] == 0
    # A completed finetune leaves nothing to resume.
    assert not checkpoint_folder(straight_cfg).exists()
    resumed = _finish(resumed_proc, tmp_path / "resumed")
    assert resumed["resumed_from_step"] == killed_at
    assert resumed["steps"] == MAX_STEPS
    assert resumed["final_train_loss"] == pytest.approx(straight["final_train_loss"], rel=1e-4)
    assert resumed["final_eval_loss"] == pytest.approx(straight["final_eval_loss"], rel=1e-4)
    # The loss curve spans the whole run, not only the steps after the restart.
    steps = [int(s) for s, _ in resumed["loss_history"]["train_loss"]]
    assert steps == [int(s) for s, _ in straight["loss_history"]["train_loss"]]
    for (_, a), (_, b) in zip(
        resumed["loss_history"]["train_loss"], straight["loss_history"]["train_loss"], strict=True
    ):
        assert a == pytest.approx(b, rel=1e-4)
    assert not folder.exists()


class _Interrupted(Exception):
    pass


def _interrupt_after_checkpoint(cfg, dataset: Path, out: Path, monkeypatch) -> None:
    """Train until step 2 starts its bookkeeping: checkpoint-1 is on disk, 2 is not."""
    import utils.training.train as training

    class Crash(training.LossHistory):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:
                raise _Interrupted

    with monkeypatch.context() as m:
        m.setattr(training, "LossHistory", Crash)
        with pytest.raises(_Interrupted):
            training.train_lora(cfg, dataset, out)


def test_pipeline_resumes_instead_of_serving_the_cache(
    zenml_env: Path, tiny_model_dir, viggo_subset, prepared: Path, monkeypatch
) -> None:
    """A completed run is cached; an interrupted later run of the same config left a
    checkpoint: the next run trains (resuming), records it, and cleans up."""
    from zenml.client import Client

    from tests.integration.test_pipeline import _cached_steps, _run
    from utils.config import PipelineConfig
    from utils.training.checkpoints import checkpoint_folder, last_complete_checkpoint

    config = tiny_config(tiny_model_dir, viggo_subset, training={"max_steps": 3, "save_steps": 1})
    cfg = PipelineConfig.model_validate(config)
    _run(config)
    assert not checkpoint_folder(cfg).exists()  # finished: nothing left to resume

    _interrupt_after_checkpoint(cfg, prepared, zenml_env / "crashed", monkeypatch)
    assert last_complete_checkpoint(checkpoint_folder(cfg)).name == "checkpoint-1"

    run = _run(config)
    assert "finetune" not in _cached_steps(run)
    training = Client().get_model_version("tiny-test-model", "latest").run_metadata["training"]
    assert training["resumed_from_step"] == 1 and training["steps"] == 3
    assert not checkpoint_folder(cfg).exists()
    # And now the cache serves it again: nothing is pending.
    assert "finetune" in _cached_steps(_run(config))


def test_retry_on_another_machine_resumes_from_the_artifact_store(
    zenml_env: Path, tiny_model_dir, viggo_subset, prepared: Path, monkeypatch
) -> None:
    """Two machines with their own checkpoint disks share one artifact store: the finetune
    step dies on A after a checkpoint, A is lost, and the retry on B resumes A's checkpoint."""
    import shutil

    import utils.training.train as training
    from steps.finetune import finetune
    from utils.config import PipelineConfig
    from utils.training.remote_checkpoints import CheckpointMirror, check_resume, pending_checkpoint
    from utils.zenml_ops.scratch import remove_scratch_folders

    training_keys = {"max_steps": 6, "save_steps": 2, "batch_size": 2}
    cfg = PipelineConfig.model_validate(
        tiny_config(tiny_model_dir, viggo_subset, training=training_keys)
    )
    resume = {**training_keys, "resume": "always"}  # --resume: same key, must find it
    always = PipelineConfig.model_validate(
        tiny_config(tiny_model_dir, viggo_subset, training=resume)
    )
    step_args = {"config_json": cfg.training_json(), "dataset": str(prepared)}
    machine_a, machine_b = zenml_env / "machine-a", zenml_env / "machine-b"
    ran: list[int] = []

    class OnA(training.LossHistory):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 5:  # checkpoint-4 is saved and mirrored, 6 is not
                raise _Interrupted

    class OnB(training.LossHistory):
        def on_step_end(self, args, state, control, **kw):
            ran.append(state.global_step)

    monkeypatch.setenv("LORA_CHECKPOINT_DIR", str(machine_a))
    with monkeypatch.context() as m:
        m.setattr(training, "LossHistory", OnA)
        with pytest.raises(_Interrupted):
            finetune.entrypoint(**step_args)
    mirror = CheckpointMirror.for_config(cfg)
    assert mirror.latest().step == 4
    shutil.rmtree(machine_a)  # the lost machine's disk

    monkeypatch.setenv("LORA_CHECKPOINT_DIR", str(machine_b))
    # The client looks where the step will: B's disk is empty, the store is not.
    assert pending_checkpoint(cfg).step == 4
    assert check_resume(always).step == 4
    with monkeypatch.context() as m:
        m.setattr(training, "LossHistory", OnB)
        _, summary, _ = finetune.entrypoint(**step_args)
    remove_scratch_folders()
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 6
    assert ran == [5, 6]  # only the steps A had not checkpointed
    # Done: nothing left to resume, on B's disk or in the store.
    assert mirror.latest() is None and pending_checkpoint(cfg) is None
