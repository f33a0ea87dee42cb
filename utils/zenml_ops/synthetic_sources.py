"""The generator and parser of `dataset.synthetic` as model versions, resolved and checked
before a run (preflight) and again when synthesize_data decodes with them
(`utils.inference.adapters.version_decode`).
"""

from __future__ import annotations

from typing import Any

from utils.config import DatasetSection, PipelineConfig, VersionRef
from utils.core.tasks import TaskName
from utils.zenml_ops.model_versions import (
    ModelVersionError,
    adapter_artifact,
    find_version,
    version_config,
)

# The key of each source, and the task its version must have been trained for.
ROLES = {"generator": TaskName.DATA_TO_TEXT, "parser": TaskName.TEXT_TO_MR}


def resolve(ref: VersionRef, role: str) -> tuple[Any, PipelineConfig]:
    """The model version `ref` names and its config, or ModelVersionError in one line
    naming the key: no such version, no adapter or config, the wrong task."""
    key = f"dataset.synthetic.{role}"
    try:
        mv = find_version(ref.model, ref.version)
        cfg = version_config(mv)
        adapter_artifact(mv)
    except ModelVersionError as e:
        raise ModelVersionError(f"{key}: {e}") from None
    if cfg.dataset.task != ROLES[role]:
        raise ModelVersionError(
            f"{key}: model version {ref.model}:{mv.name} was trained for "
            f"{cfg.dataset.task}, a {role} must be a {ROLES[role]} version"
        )
    return mv, cfg


def check_sources(dataset: DatasetSection) -> None:
    """Both versions exist and fit their role (nothing loaded): preflight's check."""
    if dataset.synthetic is not None:
        for role in ROLES:
            resolve(getattr(dataset.synthetic, role), role)
