"""Checkpoint folders keyed by config and data, resume plans, half-written checkpoints, and
their mirror in the artifact store."""

import json
import re
from pathlib import Path

import pytest

from utils.config import load_config
from utils.training.checkpoints import (
    CheckpointError,
    Found,
    checkpoint_folder,
    checkpoint_key,
    checkpoint_root,
    is_complete,
    last_complete_checkpoint,
    plan_resume,
    trainer_checkpoint_arguments,
)
from utils.training.remote_checkpoints import CheckpointMirror


def _data(folder: Path, text: str = "a") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text(json.dumps({"input": text, "target": "b"}) + "\n")
    return folder


def _cfg(data: Path, root: Path, *overrides: str):
    return load_config(None, [f"training.checkpoint_dir={root}", *overrides], data_dir=str(data))


def _checkpoint(folder: Path, step: int, complete: bool = True) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x")
    if complete:
        (path / "optimizer.pt").write_bytes(b"x")
        (path / "scheduler.pt").write_bytes(b"x")
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_key_follows_what_shapes_the_adapter(tmp_path: Path) -> None:
    data = _data(tmp_path / "data")
    base = checkpoint_key(_cfg(data, tmp_path))
    # How and where to checkpoint does not matter, nor where the same bytes live.
    same = [
        _cfg(data, tmp_path / "elsewhere", "training.save_steps=3", "training.resume=always"),
        _cfg(_data(tmp_path / "copy"), tmp_path),
    ]
    assert all(checkpoint_key(c) == base for c in same)
    # Training settings and the data's content do.
    assert checkpoint_key(_cfg(data, tmp_path, "training.learning_rate=1e-3")) != base
    assert checkpoint_key(_cfg(data, tmp_path, "lora.r=4")) != base
    assert checkpoint_key(_cfg(_data(tmp_path / "edited", "c"), tmp_path)) != base


def test_every_machine_of_a_launch_finds_the_same_key(tmp_path: Path) -> None:
    data = _data(tmp_path / "data")
    two = ["accelerate.num_processes=2", "accelerate.num_machines=2"]
    base = checkpoint_key(_cfg(data, tmp_path, *two, "accelerate.machine_rank=0"))
    where = ["accelerate.main_process_ip=10.0.0.5", "accelerate.main_process_port=6000"]
    other = _cfg(data, tmp_path, *two, "accelerate.machine_rank=1", *where)
    assert checkpoint_key(other) == base
    # Sharding the model is another training run.
    assert checkpoint_key(_cfg(data, tmp_path, *two, "accelerate.strategy=fsdp")) != base


def test_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORA_CHECKPOINT_DIR", str(tmp_path / "env"))
    assert checkpoint_root(load_config(None).training) == tmp_path / "env"
    cfg = load_config(None, [f"training.checkpoint_dir={tmp_path / 'cfg'}"])
    assert checkpoint_root(cfg.training) == tmp_path / "cfg"
    monkeypatch.delenv("LORA_CHECKPOINT_DIR")
    monkeypatch.setenv("LORA_MODEL_CACHE", str(tmp_path / "cache"))
    assert checkpoint_root(load_config(None).training) == tmp_path / "cache" / "checkpoints"


def test_half_written_checkpoints_are_never_resumed(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 20, complete=False)
    truncated = _checkpoint(tmp_path, 30)
    (truncated / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert not is_complete(truncated)
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert last_complete_checkpoint(tmp_path / "nothing-here") is None


def test_fsdp_checkpoints_are_whole_with_accelerates_optimizer_files(tmp_path: Path) -> None:
    """Under FSDP the optimizer state is accelerate's: `optimizer.bin` (FULL_STATE_DICT) or a
    folder of shards (SHARDED_STATE_DICT), never the Trainer's optimizer.pt."""
    full, sharded, none = (_checkpoint(tmp_path, step) for step in (1, 2, 3))
    for path in (full, sharded, none):
        (path / "optimizer.pt").unlink()
    (full / "optimizer.bin").write_bytes(b"x")
    (sharded / "optimizer_0").mkdir()
    assert is_complete(full) and is_complete(sharded) and not is_complete(none)
    assert last_complete_checkpoint(tmp_path) == sharded


def test_auto_resumes_the_last_complete_and_drops_the_rest(tmp_path: Path) -> None:
    cfg = _cfg(_data(tmp_path / "data"), tmp_path / "ckpt")
    folder = checkpoint_folder(cfg)
    _checkpoint(folder, 4)
    _checkpoint(folder, 6, complete=False)
    plan = plan_resume(cfg)
    assert (plan.folder, plan.resume_from, plan.step) == (folder, folder / "checkpoint-4", 4)
    assert not (folder / "checkpoint-6").exists()


def test_never_starts_over_and_always_insists(tmp_path: Path) -> None:
    data = _data(tmp_path / "data")
    always = _cfg(data, tmp_path / "ckpt", "training.resume=always")
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        plan_resume(always)
    folder = checkpoint_folder(always)
    _checkpoint(folder, 2)
    assert plan_resume(always).step == 2
    never = plan_resume(_cfg(data, tmp_path / "ckpt", "training.resume=never"))
    assert never.resume_from is None and never.step == 0 and not folder.exists()


def test_trainer_arguments_keep_optimizer_state() -> None:
    cfg = load_config(None, ["training.save_steps=7"])
    args = trainer_checkpoint_arguments(cfg.training)
    assert args == {
        "save_strategy": "steps",
        "save_steps": 7,
        "save_total_limit": 2,
        "save_only_model": False,
    }
    off = load_config(None, ["training.save_steps=null"])
    assert trainer_checkpoint_arguments(off.training) == {"save_strategy": "no"}


def _store_names(mirror: CheckpointMirror) -> list[str]:
    root = Path(mirror.root)
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_mirror_keeps_the_latest_whole_copy_state_file_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml.io import fileio

    mirror = CheckpointMirror(str(tmp_path / "store" / "key"))
    local = tmp_path / "disk"
    first = _checkpoint(local, 2)
    (first / "nested").mkdir()
    (first / "nested" / "rng_state.pth").write_bytes(b"rng")
    copied: list[str] = []
    real_copy = fileio.copy
    monkeypatch.setattr(
        fileio, "copy", lambda s, d, **kw: (copied.append(d), real_copy(s, d, **kw))
    )
    mirror.upload(first)
    assert copied[-1].endswith("/checkpoint-2/trainer_state.json")  # marks the copy whole
    assert (Path(mirror.root) / "checkpoint-2" / "nested" / "rng_state.pth").read_bytes() == b"rng"
    assert mirror.latest() == Found(f"{mirror.root}/checkpoint-2", 2)
    mirror.upload(_checkpoint(local, 4))
    assert _store_names(mirror) == ["checkpoint-4"]
    # A machine lost mid-upload: the newer copy has no state file yet, the older one counts.
    partial = _checkpoint(Path(mirror.root), 6, complete=False)
    assert mirror.latest().step == 4
    (partial / "trainer_state.json").write_text(json.dumps({"global_step": 5}))
    assert mirror.latest().step == 4
    mirror.clear()
    assert mirror.latest() is None and not Path(mirror.root).exists()


def test_a_fresh_disk_resumes_from_the_store(tmp_path: Path) -> None:
    data = _data(tmp_path / "data")
    machine_a = _cfg(data, tmp_path / "disk-a")
    mirror = CheckpointMirror(str(tmp_path / "store" / "key"))
    mirror.upload(_checkpoint(checkpoint_folder(machine_a), 4))
    machine_b = _cfg(data, tmp_path / "disk-b", "training.resume=always")
    folder = checkpoint_folder(machine_b)
    (folder / ".incoming-checkpoint-4").mkdir(parents=True)  # a download cut short
    plan = plan_resume(machine_b, mirror)
    assert (plan.resume_from, plan.step) == (folder / "checkpoint-4", 4)
    assert is_complete(folder / "checkpoint-4")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-4"]
    # A newer checkpoint on this disk wins over the store's.
    _checkpoint(folder, 6)
    assert plan_resume(machine_b, mirror).step == 6


def test_store_without_checkpoint_and_never(tmp_path: Path) -> None:
    data = _data(tmp_path / "data")
    mirror = CheckpointMirror(str(tmp_path / "store" / "key"))
    always = _cfg(data, tmp_path / "disk", "training.resume=always")
    with pytest.raises(CheckpointError, match=rf"no complete checkpoint.*{re.escape(mirror.root)}"):
        plan_resume(always, mirror)
    mirror.upload(_checkpoint(tmp_path / "elsewhere", 2))
    never = _cfg(data, tmp_path / "disk", "training.resume=never")
    assert plan_resume(never, mirror).step == 0
    assert mirror.latest() is None  # an old run's copy is not resumed by a later retry


def test_the_client_looks_where_the_step_will(zenml_env: Path) -> None:
    from utils.training.remote_checkpoints import check_resume, pending_checkpoint

    data = _data(zenml_env / "data")
    on_orchestrator = _cfg(data, zenml_env / "client-disk")
    on_client = _checkpoint(checkpoint_folder(on_orchestrator), 6)
    assert pending_checkpoint(on_orchestrator) == Found(str(on_client), 6)  # local stack
    # The step runs on a step operator: this disk is not the step's.
    remote = "remote.steps.finetune.step_operator=true"
    cfg = _cfg(data, zenml_env / "client-disk", remote)
    assert pending_checkpoint(cfg) is None
    mirror = CheckpointMirror.for_config(cfg)
    assert mirror.root.startswith(zenml_env.as_posix())  # the active (test) artifact store
    mirror.upload(_checkpoint(zenml_env / "step-disk", 4))
    assert pending_checkpoint(cfg) == Found(f"{mirror.root}/checkpoint-4", 4)
    mirror.clear()
    always = _cfg(data, zenml_env / "client-disk", remote, "training.resume=always")
    with pytest.raises(CheckpointError, match=r"no complete checkpoint.*artifact store"):
        check_resume(always)
