"""Model versions in ZenML's Model Control Plane: the `Model` each run creates, and the
config and adapter of an existing version."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from utils.config import PipelineConfig
from utils.core.errors import UserError
from utils.core.names import ADAPTER, CONFIG, EvalStage, metrics_name


class ModelVersionError(UserError, ValueError):
    """The requested model version or its artifacts do not exist."""


def model_for(cfg: PipelineConfig, version: str | None = None, tags: tuple[str, ...] = ()) -> Any:
    """A new model version per run, numbered (version=None) or named `version` (a sweep
    names its variants), tagged so versions are easy to filter."""
    from zenml import Model

    return Model(
        name=cfg.model.name,
        version=version,
        description=cfg.model.description,
        license=cfg.model.license,
        tags=[
            f"base:{cfg.model.base_model_id}",
            f"task:{cfg.dataset.task}",
            f"quantization:{cfg.model.quantization}",
            *tags,
        ],
    )


def find_version(model_name: str, version: str) -> Any:
    """A model version by stage (staging, production, latest) or number/name."""
    from zenml.client import Client

    key: int | str = int(version) if version.isdigit() else version
    try:
        return Client().get_model_version(model_name, key)
    except KeyError:
        raise ModelVersionError(f"model {model_name!r} has no version {version!r}") from None


def version_config(mv: Any) -> PipelineConfig:
    config = mv.run_metadata.get(CONFIG)
    if not isinstance(config, dict):
        raise ModelVersionError(
            f"model version {mv.name} has no {CONFIG!r} metadata (not trained?)"
        )
    return PipelineConfig.model_validate(config)


def adapter_artifact(mv: Any) -> Any:
    """The version's adapter artifact (not loaded), or ModelVersionError naming the version."""
    try:
        artifact = mv.get_artifact(ADAPTER)
    except (KeyError, AttributeError):
        artifact = None
    if artifact is None:
        raise ModelVersionError(f"model version {mv.name} has no {ADAPTER!r} artifact")
    return artifact


@contextmanager
def extracted_adapter(mv: Any) -> Iterator[Path]:
    """The version's adapter folder: ZenML extracts a temporary copy from the artifact store
    on every load, deleted here when the block ends (load what you need inside it)."""
    path = Path(adapter_artifact(mv).load())
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def evaluated_max_new_tokens(mv: Any) -> int | None:
    """The `max_new_tokens` the version's finetuned evaluation decoded with (derived from the
    reference lengths unless the config set it), so served outputs end where evaluated ones
    did; None for a version without that metadata."""
    metrics = mv.run_metadata.get(metrics_name(EvalStage.FINETUNED))
    value = metrics.get("max_new_tokens") if isinstance(metrics, dict) else None
    return value if isinstance(value, int) and value > 0 else None
