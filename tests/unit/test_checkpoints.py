"""Checkpoint folders keyed by config and data, resume plans, half-written checkpoints."""

import json
from pathlib import Path

import pytest

from utils.config import load_config
from utils.training.checkpoints import (
    CheckpointError,
    checkpoint_folder,
    checkpoint_key,
    checkpoint_root,
    is_complete,
    last_complete_checkpoint,
    plan_resume,
    trainer_checkpoint_arguments,
)


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
