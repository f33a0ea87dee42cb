"""Model versions in ZenML's Model Control Plane: the `Model` each run creates, and the
config and adapter of an existing version."""

from __future__ import annotations

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


def adapter_dir(mv: Any) -> Path:
    try:
        return Path(mv.get_artifact(ADAPTER).load())
    except (KeyError, AttributeError):
        raise ModelVersionError(f"model version {mv.name} has no {ADAPTER!r} artifact") from None


def evaluated_max_new_tokens(mv: Any) -> int | None:
    """The `max_new_tokens` the version's finetuned evaluation decoded with (derived from the
    reference lengths unless the config set it), so served outputs end where evaluated ones
    did; None for a version without that metadata."""
    metrics = mv.run_metadata.get(metrics_name(EvalStage.FINETUNED))
    value = metrics.get("max_new_tokens") if isinstance(metrics, dict) else None
    return value if isinstance(value, int) and value > 0 else None
