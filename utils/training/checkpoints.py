"""Training checkpoints that outlive a run: where they live, which one to resume, cleanup.

A finetune checkpoints every `training.save_steps` optimizer steps (adapter, optimizer,
scheduler, RNG and trainer state: HF Trainer's own format) into
`<root>/<key>/checkpoint-<step>`. The key hashes what shapes the adapter (the training
sections of the config and the content of the data files), not where the run came from, so
the next run of the same config finds the checkpoint whatever its ZenML run or temp folder.
A finetune that completes deletes its folder: the next identical run trains from scratch
(or comes from ZenML's cache) instead of "resuming" a finished run and training 0 steps.
Inside the pipeline the checkpoints are also mirrored into the artifact store
(`utils.training.remote_checkpoints`), so a retry on another machine resumes too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from utils.config import PipelineConfig, TrainingSection
from utils.core.errors import UserError
from utils.core.names import SPLITS
from utils.data.sources import DataError, find_split_file, local_data_dir

logger = logging.getLogger(__name__)

ENV_VAR = "LORA_CHECKPOINT_DIR"
# The newest checkpoint may be half-written when a run is killed; the one before survives.
SAVE_TOTAL_LIMIT = 2
# Trainer writes trainer_state.json last: its presence (parseable) marks a whole checkpoint.
STATE_FILE = "trainer_state.json"
REQUIRED_FILES = (STATE_FILE, "scheduler.pt")
# The optimizer state, one of: the Trainer's own file, or accelerate's FSDP files (a whole
# state, FULL_STATE_DICT; a folder of shards, SHARDED_STATE_DICT).
OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin", "optimizer_0")
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# How to checkpoint, not what to train: changing these must not orphan a checkpoint.
# data_dir and source are replaced by a hash of the files' content (same data elsewhere still
# resumes, edited data in the same place does not).
_NOT_IN_KEY = {
    "training": ("save_steps", "resume", "checkpoint_dir"),
    "dataset": ("data_dir", "source"),
    # Where the ranks meet, not what they train: every machine must find the same key.
    "accelerate": ("machine_rank", "main_process_ip", "main_process_port"),
}


class CheckpointError(UserError, ValueError):
    """A resume request that cannot be met; the message names the folder and the fix."""


@dataclass(frozen=True)
class Found:
    where: str  # a local folder, or a folder in the artifact store (s3://..., gs://...)
    step: int


@dataclass(frozen=True)
class ResumePlan:
    folder: Path  # the Trainer's output_dir for this config
    resume_from: Path | None  # the checkpoint to continue from, if any
    step: int  # its optimizer step; 0 = trains from scratch


def checkpoint_root(training: TrainingSection) -> Path:
    if training.checkpoint_dir:
        return Path(training.checkpoint_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    from utils.modeling.resolve import cache_root

    return cache_root() / "checkpoints"


def data_fingerprint(cfg: PipelineConfig) -> str:
    """sha256 of the split files' bytes; for a hub dataset, its name (versioned there)."""
    folder = local_data_dir(cfg.dataset)
    if folder is None:
        return f"hub:{cfg.dataset.name}"
    h = hashlib.sha256()
    for split in SPLITS:
        try:
            path = find_split_file(folder, split)
        except DataError:
            continue  # carved out of train by dataset.split_ratio
        h.update(f"{split}{path.suffix}\0".encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def checkpoint_key(cfg: PipelineConfig) -> str:
    shape: dict[str, Any] = json.loads(cfg.training_json())
    for section, keys in _NOT_IN_KEY.items():
        for key in keys:
            shape[section].pop(key, None)
    shape["data_fingerprint"] = data_fingerprint(cfg)
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def checkpoint_folder(cfg: PipelineConfig) -> Path:
    return checkpoint_root(cfg.training) / checkpoint_key(cfg)


def checkpoint_step(path: Path | str) -> int:
    """The step of a `checkpoint-<step>` folder (a local path, or a name in the store)."""
    match = _CHECKPOINT_RE.match(Path(path).name)
    if match is None:
        raise ValueError(f"not a checkpoint folder: {path}")
    return int(match.group(1))


def is_checkpoint_name(name: str) -> bool:
    return _CHECKPOINT_RE.match(name) is not None


def state_matches(text: str, step: int) -> bool:
    """Whether trainer_state.json's text is whole and of the checkpoint of `step`."""
    try:
        state = json.loads(text)
    except ValueError:
        return False  # killed while writing the state file
    return isinstance(state, dict) and state.get("global_step") == step


def is_complete(path: Path) -> bool:
    if not all((path / name).is_file() for name in REQUIRED_FILES):
        return False
    if not any((path / name).exists() for name in OPTIMIZER_FILES):
        return False
    try:
        text = (path / STATE_FILE).read_text()
    except OSError:
        return False
    return state_matches(text, checkpoint_step(path))


def list_checkpoints(folder: Path) -> list[Path]:
    """checkpoint-<step> folders, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and is_checkpoint_name(p.name)]
    return sorted(found, key=checkpoint_step)


def last_complete_checkpoint(folder: Path) -> Path | None:
    complete = [p for p in list_checkpoints(folder) if is_complete(p)]
    return complete[-1] if complete else None


def drop_incomplete(folder: Path) -> list[Path]:
    """Remove half-written checkpoints (a kill during a save), so none is ever resumed."""
    dropped = [p for p in list_checkpoints(folder) if not is_complete(p)]
    for path in dropped:
        shutil.rmtree(path, ignore_errors=True)
    return dropped


def clear_checkpoints(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def is_main_process() -> bool:
    # Set by `accelerate launch`/torchrun before the Trainer (and torch.distributed) exists.
    return int(os.environ.get("RANK", "0")) == 0


def nothing_to_resume(cfg: PipelineConfig, where: str) -> CheckpointError:
    return CheckpointError(
        "training.resume=always (--resume) but there is no complete checkpoint for this "
        f"config in {where}; drop --resume to train from scratch (a run resumes only with "
        "the same training settings and data)"
    )


class StoreCopy(Protocol):
    """A copy of the checkpoints elsewhere (`remote_checkpoints.CheckpointMirror`)."""

    root: str

    def clear(self) -> None: ...

    def restore(self, folder: Path) -> Any: ...


def plan_resume(cfg: PipelineConfig, mirror: StoreCopy | None = None) -> ResumePlan:
    """Where the Trainer checkpoints, and from which checkpoint (if any) it continues.

    With a `mirror` (the artifact store's copy), a newer checkpoint there is downloaded
    first: the retry of a step on another machine resumes. Only the main process deletes
    anything; every rank computes the same plan.
    """
    folder = checkpoint_folder(cfg)
    main = is_main_process()
    if cfg.training.resume == "never":
        if main and folder.exists():
            logger.info("training.resume=never: deleting old checkpoints in %s", folder)
            clear_checkpoints(folder)
        if main and mirror is not None:
            mirror.clear()
        return ResumePlan(folder, None, 0)
    if main:
        for path in drop_incomplete(folder):
            logger.warning("Deleted incomplete checkpoint %s (killed while saving)", path)
    if mirror is not None:
        mirror.restore(folder)
    found = last_complete_checkpoint(folder)
    if found is None:
        if cfg.training.resume == "always":
            where = str(folder) if mirror is None else f"{folder} or {mirror.root}"
            raise nothing_to_resume(cfg, where)
        return ResumePlan(folder, None, 0)
    logger.info("Resuming from %s", found)
    return ResumePlan(folder, found, checkpoint_step(found))


def trainer_checkpoint_arguments(training: TrainingSection) -> dict[str, Any]:
    """TrainingArguments for checkpoints that can be resumed exactly (optimizer included)."""
    if training.save_steps is None:
        return {"save_strategy": "no"}
    return {
        "save_strategy": "steps",
        "save_steps": training.save_steps,
        "save_total_limit": SAVE_TOTAL_LIMIT,
        "save_only_model": False,
    }
