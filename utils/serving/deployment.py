"""Deploying the inference pipeline with the active stack's deployer (a local one is added to
a stack that has none), and stopping it.

The `local` deployer runs the deployment as a plain background process on this machine
(uvicorn + ZenML's FastAPI app), no Docker. It needs no ZenML server: the process gets the
client's configuration (store URL, active stack and project) through environment variables
and reads the deployment, its snapshot and the model version from the same store, a local
SQLite store included.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import PipelineConfig
from utils.core.errors import UserError, one_line
from utils.core.names import HEALTH_PATH, INVOKE_PATH
from utils.core.tasks import TaskName

logger = logging.getLogger(__name__)

LOCAL_DEPLOYER = "local-deployer"
# What the printed curl sends, per task: one input the served model understands.
EXAMPLE_INPUTS = {
    TaskName.DATA_TO_TEXT: "inform(name[Portal 2], genres[puzzle, platformer], rating[excellent])",
    TaskName.TEXT_TO_MR: "Portal 2 is an excellent puzzle platformer.",
    TaskName.TEXT_TO_TEXT: "What is 2 + 3?",
}
# Flavors whose settings take a preferred `port`.
_PORT_FLAVORS = ("local", "docker")


class ServeError(UserError, RuntimeError):
    """The deployment could not be started or stopped."""


@dataclass(frozen=True)
class Served:
    name: str
    url: str
    task: str
    description: str
    # The bearer key requests need; None when the deployment has none (`--no-auth`).
    auth_key: str | None = None

    @property
    def invoke_url(self) -> str:
        return self.url.rstrip("/") + INVOKE_PATH

    @property
    def health_url(self) -> str:
        return self.url.rstrip("/") + HEALTH_PATH

    def curl(self, inputs: list[str] | None = None) -> str:
        """One line, runnable as printed in a POSIX shell."""
        import json

        body = json.dumps({"parameters": {"inputs": inputs or [EXAMPLE_INPUTS[self.task]]}})
        auth = (
            f"-H {shlex.quote(f'Authorization: Bearer {self.auth_key}')} " if self.auth_key else ""
        )
        return (
            f"curl -s -X POST {self.invoke_url} {auth}-H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}"
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth_key}"} if self.auth_key else {}

    @property
    def openai_base_url(self) -> str:
        return self.url.rstrip("/") + "/v1"


def ensure_deployer() -> str:
    """The flavor of the active stack's deployer, after adding a `local` one (registered once
    as `local-deployer`) to a stack that has none."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    components = client.active_stack_model.components
    deployers = components.get(StackComponentType.DEPLOYER) or []
    if deployers:
        return deployers[0].flavor_name
    try:
        client.get_stack_component(StackComponentType.DEPLOYER, LOCAL_DEPLOYER)
    except KeyError:
        client.create_stack_component(LOCAL_DEPLOYER, "local", StackComponentType.DEPLOYER, {})
    stack = client.active_stack_model.name
    client.update_stack(stack, component_updates={StackComponentType.DEPLOYER: [LOCAL_DEPLOYER]})
    logger.info("added the local deployer %r to the active stack %r", LOCAL_DEPLOYER, stack)
    return "local"


def deploy(
    model: str,
    stage: str,
    cfg: PipelineConfig,
    build_pipeline: Callable[..., Any],
    port: int | None = None,
) -> Served:
    """Deploy `model`'s version at `stage` (a stage or a number) and wait until it is healthy.
    Deploying the same model again replaces its deployment (and frees the old process).

    `cfg` is the serving side's config: its `serving` limits, and the `remote.docker` image
    for deployers that build one; decoding follows the served version's own config.
    `build_pipeline` is `pipelines.inference.build_inference_pipeline`, passed in by the
    command: the pipelines sit above the utilities they are made of."""
    from zenml.deployers.exceptions import DeployerError

    from utils.zenml_ops.model_versions import adapter_artifact, find_version, version_config
    from utils.zenml_ops.remote_options import docker_settings

    serving = cfg.serving

    mv = find_version(model, stage)
    task = version_config(mv).dataset.task
    adapter_artifact(mv)  # fails here, in one line, rather than in the service's start-up
    flavor = ensure_deployer()
    port = port or serving.port
    deployer_settings: dict[str, Any] = {"lcm_timeout": serving.startup_timeout}
    deployer_settings.update(_auth_settings(serving))
    if port is not None and flavor in _PORT_FLAVORS:
        deployer_settings["port"] = port
    pipeline = build_pipeline(
        model, str(mv.number), task, serving, deployer_settings, docker_settings(cfg.remote.docker)
    )
    try:
        # ZenML needs a value for each pipeline parameter; the example becomes the default in
        # the deployment's OpenAPI schema (the request checks still require `inputs`).
        deployment = pipeline.deploy(
            deployment_name=model, timeout=serving.startup_timeout, inputs=[EXAMPLE_INPUTS[task]]
        )
    except DeployerError as e:
        reason = one_line(e)
        raise ServeError(
            f"deploying {model!r} failed: {reason}{_log_hint(model)}; "
            f"`python run.py serve --stop --model {model}` removes what is left"
        ) from None
    version = f"{mv.number}" + (f" ({mv.name})" if mv.name != str(mv.number) else "")
    key = deployment.auth_key if serving.auth else None
    return Served(model, deployment.url, task, f"{model} version {version}", key)


def _auth_settings(serving: Any) -> dict[str, Any]:
    """The deployer's auth settings: a key from the `serving.auth_secret` ZenML secret, a
    generated one, or none (`serving.auth: false`)."""
    if not serving.auth:
        return {"auth_key": None, "generate_auth_key": False}
    if serving.auth_secret is None:
        return {"generate_auth_key": True}
    from zenml.client import Client

    try:
        secret = Client().get_secret(serving.auth_secret)
    except KeyError:
        raise ServeError(
            f"serving.auth_secret: no ZenML secret named {serving.auth_secret!r}"
        ) from None
    key = secret.secret_values.get("auth_key")
    if not key:
        raise ServeError(
            f"serving.auth_secret: the secret {serving.auth_secret!r} has no 'auth_key' value "
            f"(zenml secret update {serving.auth_secret} --auth_key=...)"
        )
    return {"auth_key": key}


def _log_hint(name: str) -> str:
    """The service's log file and its last error line, where the deployer keeps one."""
    from zenml.client import Client

    try:
        meta = Client().get_deployment(name).deployment_metadata or {}
    except KeyError:
        return ""
    log = Path(str(meta.get("log_file", "")))
    if not log.is_file():
        return ""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if "Error" in ln]
    last = f"; last error: {lines[-1].strip()}" if lines else ""
    return f" (log: {log}{last})"


def stop(name: str) -> None:
    """Deprovision the deployment (its process ends, its port is free) and delete it."""
    from zenml.client import Client

    client = Client()
    try:
        client.get_deployment(name)
    except KeyError:
        raise ServeError(f"no deployment named {name!r} (nothing to stop)") from None
    # force: a deployment whose process is already gone is removed all the same.
    client.delete_deployment(name, force=True)
