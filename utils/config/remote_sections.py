"""The `remote:` section: image, step operator, per-step resources and retries.

Translated into ZenML options by `utils.zenml_ops.remote_options`; the local orchestrator
ignores them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, create_model, field_validator

from utils.config.base import Section
from utils.core.names import STEPS

# ZenML's ResourceSettings memory format (zenml.config.resource_settings.MEMORY_REGEX).
MEMORY_PATTERN = r"^[0-9]+(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB|PB|PiB)$"
# Flavor-specific settings keys ZenML resolves against the active stack, e.g.
# `orchestrator.kubernetes` or `step_operator.sagemaker` (a bare type = the stack's own).
COMPONENT_SETTINGS_KEY = (
    r"^(orchestrator|step_operator|experiment_tracker|deployer)(\.[a-z0-9_-]+)?$"
)


def _check_component_settings(v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for key in v:
        if not re.match(COMPONENT_SETTINGS_KEY, key):
            raise ValueError(
                f"settings key {key!r} is not '<component type>[.<flavor>]' (e.g. "
                "'orchestrator.kubernetes'); image and resources have their own keys "
                "(remote.docker, remote.steps.<step>.resources)"
            )
    return v


class DockerSection(Section):
    """ZenML DockerSettings: the image remote orchestrators and step operators run."""

    # Relative paths are taken from the project root, not the cwd.
    dockerfile: str | None = None
    build_context_root: str | None = None
    # Used when no dockerfile is given (e.g. a prebuilt image of this project).
    parent_image: str | None = None
    # Skip ZenML's own layer on top (the image must then contain the code already).
    skip_build: bool = False
    target_repository: str | None = None


class ResourcesSection(Section):
    """ZenML ResourceSettings for one step."""

    cpu_count: float | None = Field(None, gt=0)
    gpu_count: int | None = Field(None, ge=0)
    memory: str | None = Field(None, pattern=MEMORY_PATTERN)


class RetrySection(Section):
    """ZenML StepRetryConfig: waits `delay` s, then `delay * backoff` s, ... between tries."""

    max_retries: int = Field(0, ge=0)  # 0 = fail at once
    delay: int = Field(60, ge=0)
    backoff: int = Field(2, ge=1)


class StepRemoteSection(Section):
    resources: ResourcesSection = ResourcesSection()
    retry: RetrySection = RetrySection()
    # Run this step on a step operator (remote.step_operator, or the stack's only one).
    step_operator: bool = False
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _component_keys = field_validator("settings")(_check_component_settings)


# One entry per pipeline step, named by its invocation id.
RemoteStepsSection = create_model(
    "RemoteStepsSection",
    __base__=Section,
    **{name: (StepRemoteSection, StepRemoteSection()) for name in STEPS},
)


class RemoteSection(Section):
    docker: DockerSection = DockerSection()
    # Name of the stack's step operator for steps with `step_operator: true`.
    step_operator: str | None = Field(None, min_length=1)
    # Pipeline-level component settings (see COMPONENT_SETTINGS_KEY).
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: RemoteStepsSection = RemoteStepsSection()

    _component_keys = field_validator("settings")(_check_component_settings)
