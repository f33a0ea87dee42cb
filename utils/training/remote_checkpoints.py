"""Checkpoints mirrored into the active ZenML artifact store, so that a finetune retried on
another machine (a preempted spot GPU, a lost pod) resumes instead of training from scratch.

The Trainer checkpoints to the step machine's own disk (`utils.training.checkpoints`). After
each save, rank 0 copies that checkpoint to `<artifact store>/lora-checkpoints/<key>/
checkpoint-<step>` with `zenml.io.fileio` (local, S3, GCS, Azure stores alike). The key is
the local folder's (the training config and the data's content): the same on every machine
and every retry of a run. A finetune that finds a newer checkpoint there than on its own
disk downloads it and resumes; one that completes deletes the mirror, like its local folder.

The store keeps only the latest checkpoint: `trainer_state.json` is uploaded last and marks
a whole copy, and the older copy is deleted only once the newer one is whole, so a machine
lost mid-upload still leaves one to resume. A second whole copy would only cost transfer
and storage (33 MB per checkpoint for SmolLM2; ~0.5 GB of adapter and Adam state for
llama3_remote.yaml's r=16 on all projections of the 8B).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import PipelineConfig
from utils.training.checkpoints import (
    OPTIMIZER_FILES,
    REQUIRED_FILES,
    STATE_FILE,
    Found,
    checkpoint_folder,
    checkpoint_key,
    checkpoint_step,
    is_checkpoint_name,
    is_main_process,
    last_complete_checkpoint,
    nothing_to_resume,
    state_matches,
)

logger = logging.getLogger(__name__)

MIRROR_DIR = "lora-checkpoints"
_INCOMING = ".incoming-"


def _join(*parts: str) -> str:
    # fileio paths are strings (s3://, gs://, az:// or local): never pathlib for these.
    return "/".join(p.rstrip("/") for p in parts)


@dataclass(frozen=True)
class CheckpointMirror:
    """The artifact-store folder of one config's checkpoints (`root`)."""

    root: str

    @classmethod
    def for_config(cls, cfg: PipelineConfig) -> CheckpointMirror:
        """The mirror in the active stack's artifact store (the step's, inside a step)."""
        from zenml.client import Client

        store = Client().active_stack.artifact_store.path
        return cls(_join(store, MIRROR_DIR, checkpoint_key(cfg)))

    def _names(self) -> list[str]:
        from zenml.io import fileio

        if not fileio.isdir(self.root):
            return []
        names = [str(n).rstrip("/").rsplit("/", 1)[-1] for n in fileio.listdir(self.root)]
        return sorted((n for n in names if is_checkpoint_name(n)), key=checkpoint_step)

    def _is_complete(self, name: str) -> bool:
        from zenml.io import fileio

        folder = _join(self.root, name)
        if not all(fileio.exists(_join(folder, f)) for f in REQUIRED_FILES):
            return False
        if not any(fileio.exists(_join(folder, f)) for f in OPTIMIZER_FILES):
            return False
        try:
            with fileio.open(_join(folder, STATE_FILE), "r") as f:
                text = f.read()
        except OSError:
            return False
        return state_matches(text, checkpoint_step(name))

    def latest(self) -> Found | None:
        """The newest whole checkpoint in the store."""
        for name in reversed(self._names()):
            if self._is_complete(name):
                return Found(_join(self.root, name), checkpoint_step(name))
        return None

    def upload(self, checkpoint: Path) -> None:
        """Copy a local checkpoint into the store, then drop every other copy there."""
        from zenml.io import fileio

        target = _join(self.root, checkpoint.name)
        if fileio.exists(target):
            fileio.rmtree(target)  # an upload cut short by a lost machine, same step
        files = sorted(p for p in checkpoint.rglob("*") if p.is_file())
        # The state file last: until it is there, the copy is not "whole".
        files.sort(key=lambda p: p.name == STATE_FILE)
        made: set[str] = set()
        for path in files:
            rel = path.relative_to(checkpoint).as_posix()
            parent = _join(target, *rel.split("/")[:-1])
            if parent not in made:
                fileio.makedirs(parent)
                made.add(parent)
            fileio.copy(str(path), _join(target, rel), overwrite=True)
        for name in self._names():
            if name != checkpoint.name:
                fileio.rmtree(_join(self.root, name))
        logger.info("Mirrored %s to %s", checkpoint, target)

    def _download(self, name: str, folder: Path) -> Path:
        from zenml.io import fileio

        incoming = folder / f"{_INCOMING}{name}"
        shutil.rmtree(incoming, ignore_errors=True)  # left by a kill during a download
        source = _join(self.root, name)
        for parent, _dirs, files in fileio.walk(source):
            parent = str(parent).rstrip("/")
            rel = parent[len(source) :].lstrip("/")
            local_dir = incoming / rel if rel else incoming
            local_dir.mkdir(parents=True, exist_ok=True)
            for file in files:
                fileio.copy(_join(parent, str(file)), str(local_dir / str(file)), overwrite=True)
        target = folder / name
        shutil.rmtree(target, ignore_errors=True)
        # One rename: a later run sees the whole checkpoint or none.
        os.replace(incoming, target)
        return target

    def restore(self, folder: Path) -> Path | None:
        """Download the store's checkpoint into `folder` when it is newer than the local ones.

        Main process only: the ranks of a multi-process run plan their resume from the local
        disk, so `finetune_distributed` restores before it launches them (`prefetch`).
        """
        remote = self.latest()
        local = last_complete_checkpoint(folder)
        if remote is None or (local is not None and checkpoint_step(local) >= remote.step):
            return None
        folder.mkdir(parents=True, exist_ok=True)
        target = self._download(remote.where.rsplit("/", 1)[-1], folder)
        logger.info("Downloaded checkpoint %s from %s", target, remote.where)
        return target

    def clear(self) -> None:
        from zenml.io import fileio

        if fileio.exists(self.root):
            fileio.rmtree(self.root)


def step_mirror(cfg: PipelineConfig) -> CheckpointMirror | None:
    """The mirror a finetune step's process uses: rank 0's; None on the other ranks.

    Only rank 0 reads or writes the store. The other ranks must not even load ZenML's client:
    several processes loading its config file at once can read it half-written.
    """
    return CheckpointMirror.for_config(cfg) if is_main_process() else None


def prefetch(cfg: PipelineConfig) -> Path | None:
    """Before launching ranks: bring a newer checkpoint from the store to this disk, so that
    every rank plans the same resume from it."""
    if cfg.training.resume == "never":
        return None  # rank 0 deletes the local and the stored checkpoints
    return CheckpointMirror.for_config(cfg).restore(checkpoint_folder(cfg))


def mirror_callback(mirror: CheckpointMirror | None) -> Any:
    """A TrainerCallback that uploads each checkpoint once the Trainer has saved it.

    Every rank needs one (with None on all but rank 0): it holds the ranks together until
    all of them have written their RNG state into the checkpoint.
    """
    from transformers import TrainerCallback

    class MirrorCheckpoints(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()
            if mirror is None or not state.is_world_process_zero:
                return
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            try:
                mirror.upload(checkpoint)
            except Exception as err:  # s3fs, gcsfs, adlfs: each raises its own errors
                # Training is worth more than its mirror: a failed copy costs a resume on
                # another machine, not this run.
                logger.warning("Could not mirror %s to %s: %s", checkpoint, mirror.root, err)

    return MirrorCheckpoints()


def finetune_runs_here(cfg: PipelineConfig) -> bool:
    """Whether the finetune step will run on this machine (and so see its checkpoint disk)."""
    from utils.core.names import FINETUNE
    from utils.zenml_ops.remote_options import runs_locally, steps_on_step_operator

    return runs_locally() and FINETUNE not in steps_on_step_operator(cfg.remote)


def pending_in_store(cfg: PipelineConfig) -> Found | None:
    """The store's checkpoint for `cfg`, or None (also when the store cannot be read)."""
    try:
        return CheckpointMirror.for_config(cfg).latest()
    except Exception as err:  # credentials, network: the step's machine may still see it
        logger.warning("Could not look for a checkpoint in the artifact store: %s", err)
        return None


def _key_computable(cfg: PipelineConfig) -> bool:
    # The key hashes the data files: where they exist only on the step's machine, this
    # machine cannot name the step's checkpoint folder.
    return not cfg.dataset.data_dir or Path(cfg.dataset.data_dir).expanduser().is_dir()


def pending_checkpoint(cfg: PipelineConfig) -> Found | None:
    """Before a run: the checkpoint the next finetune of `cfg` would resume from.

    It looks where the step will: the artifact store's mirror always, this machine's disk
    only when the step runs here (local orchestrator, no step operator). None with
    resume=never, or when the data (and so the key) is not on this machine.
    """
    if cfg.training.resume == "never" or not _key_computable(cfg):
        return None
    candidates = [pending_in_store(cfg)]
    if finetune_runs_here(cfg):
        local = last_complete_checkpoint(checkpoint_folder(cfg))
        if local is not None:
            candidates.append(Found(str(local), checkpoint_step(local)))
    found = [c for c in candidates if c is not None]
    return max(found, key=lambda c: c.step) if found else None


def check_resume(cfg: PipelineConfig) -> Found | None:
    """Before a run: the checkpoint it will resume from; an error if `always` has none."""
    found = pending_checkpoint(cfg)
    if found is None and cfg.training.resume == "always":
        if not _key_computable(cfg):
            logger.info("data_dir is not on this machine: the finetune step checks --resume")
            return None
        where = f"the artifact store ({CheckpointMirror.for_config(cfg).root})"
        if finetune_runs_here(cfg):
            where = f"{checkpoint_folder(cfg)} or {where}"
        raise nothing_to_resume(cfg, where)
    return found
