"""The `remote:` config section as ZenML options: image, step operator, resources, retries.

Everything here is inert on the local orchestrator (ZenML ignores images and warns about
resources); on a remote stack it decides where and on what each step runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utils.config import DockerSection, RemoteSection, StepRemoteSection
from utils.core.errors import UserError
from utils.core.names import PROJECT_ROOT


class RemoteError(UserError, ValueError):
    """The active stack cannot run what the `remote:` section asks for."""


def runs_locally() -> bool:
    """Whether the active stack's orchestrator runs steps on this machine."""
    from zenml.client import Client

    return Client().active_stack.orchestrator.flavor == "local"


def _from_root(path: str | None) -> str | None:
    # ZenML resolves these against the cwd; the config means the project root.
    if path is None:
        return None
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else PROJECT_ROOT / p)


def docker_settings(docker: DockerSection) -> Any:
    """ZenML DockerSettings, or None when the section sets nothing."""
    from zenml.config import DockerSettings

    values = docker.model_dump(exclude_defaults=True)
    if not values:
        return None
    for key in ("dockerfile", "build_context_root"):
        if key in values:
            values[key] = _from_root(values[key])
    return DockerSettings(**values)


def step_options(step: StepRemoteSection, step_operator: str | None) -> dict[str, Any]:
    """One entry of `with_options(steps=...)`; empty when the step runs as configured."""
    from zenml.config import ResourceSettings, StepRetryConfig

    options: dict[str, Any] = {}
    settings: dict[str, Any] = dict(step.settings)
    resources = step.resources.model_dump(exclude_none=True)
    if resources:
        settings["resources"] = ResourceSettings(**resources)
    if settings:
        options["settings"] = settings
    if step.retry.max_retries > 0:
        options["retry"] = StepRetryConfig(**step.retry.model_dump())
    if step.step_operator:
        # True = the stack's only step operator; a name picks one of several.
        options["step_operator"] = step_operator or True
    return options


def pipeline_options(remote: RemoteSection) -> dict[str, Any]:
    """Keyword arguments for `pipeline.with_options(...)`: pipeline settings and step options.

    Step options are keyed by invocation id (`finetune` also names the distributed step).
    """
    settings: dict[str, Any] = dict(remote.settings)
    docker = docker_settings(remote.docker)
    if docker is not None:
        settings["docker"] = docker
    steps = {
        name: opts
        for name, step in remote.steps
        if (opts := step_options(step, remote.step_operator))
    }
    options: dict[str, Any] = {}
    if settings:
        options["settings"] = settings
    if steps:
        options["steps"] = steps
    return options


def steps_on_step_operator(remote: RemoteSection) -> list[str]:
    return [name for name, step in remote.steps if step.step_operator]


def check_step_operator(remote: RemoteSection, stack_name: str, available: set[str]) -> None:
    """Fail before anything runs when the stack lacks the step operator the config asks for."""
    steps = steps_on_step_operator(remote)
    if not steps:
        return
    wanted = remote.step_operator
    if wanted is None and available:
        return
    if wanted in available:
        return
    what = f"step operator {wanted!r}" if wanted else "a step operator"
    have = f"it has {sorted(available)}" if available else "it has none"
    raise RemoteError(
        f"steps {', '.join(steps)} need {what} but the active stack {stack_name!r} "
        f"{have}: register one and add it with `zenml stack update {stack_name} -s NAME` "
        "(docs/remote-and-schedules.md), or run these steps on the orchestrator with "
        "--set remote.steps.STEP.step_operator=false"
    )
