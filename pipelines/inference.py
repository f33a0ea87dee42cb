"""The served pipeline: task inputs -> generate -> texts (+ slot errors). Deployed by
`run.py serve`; `POST <url>/invoke {"parameters": {"inputs": [...]}}` is answered by the
model its init hook loaded (utils/serving/), and `/submit` (or `serving.record`) runs it."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from steps.generate import generate
from utils.config import ServingSection
from utils.core.names import GENERATE, HEALTH_PATH, INVOKE_PATH, SUBMIT_PATH
from utils.serving.served_model import load_served_model


@pipeline(enable_cache=False)
def llm_lora_inference(inputs: list[str]) -> Any:
    # A literal tuple: ZenML takes the pipeline's outputs (the response's `outputs`) from it.
    texts, slot_errors = generate(inputs=inputs, id=GENERATE)
    return texts, slot_errors


def deployment_settings(model: str, version: str, task: str, serving: ServingSection) -> Any:
    """ZenML's deployment app, bent to serve at the model's speed: our service class, our
    routes in place of `/invoke` and `/health` (plus the OpenAI ones), the request checks in
    front of them, CORS closed unless `serving.cors_origins` opens it."""
    from zenml.config import (
        DeploymentSettings,
        EndpointMethod,
        EndpointSpec,
        MiddlewareSpec,
    )
    from zenml.config.deployment_settings import CORSConfig

    from utils.serving import endpoints
    from utils.serving.middleware import RequestCheckMiddleware
    from utils.serving.openai_api import CHAT_PATH, MODEL_PATH, MODELS_PATH
    from utils.serving.service import ServingService

    checks = MiddlewareSpec(
        middleware=RequestCheckMiddleware,
        extra_kwargs={
            "paths": [INVOKE_PATH, SUBMIT_PATH],
            "chat_paths": [CHAT_PATH],
            "task": task,
            "max_inputs_per_request": serving.max_inputs_per_request,
            "max_input_chars": serving.max_input_chars,
        },
    )
    post, get = EndpointMethod.POST, EndpointMethod.GET
    routes = [
        EndpointSpec(path=INVOKE_PATH, method=post, handler=endpoints.invoke_endpoint),
        EndpointSpec(
            path=HEALTH_PATH, method=get, handler=endpoints.health_endpoint, auth_required=False
        ),
        EndpointSpec(path=CHAT_PATH, method=post, handler=endpoints.chat_completions_endpoint),
        EndpointSpec(path=MODELS_PATH, method=get, handler=endpoints.models_endpoint),
        EndpointSpec(path=MODEL_PATH, method=get, handler=endpoints.model_endpoint),
    ]
    return DeploymentSettings(
        app_title=f"{model} version {version}",
        custom_middlewares=[checks],
        custom_endpoints=routes,
        cors=CORSConfig(allow_origins=list(serving.cors_origins)),
        deployment_service_class=ServingService,
        deployment_service_kwargs={
            "model": model,
            "version": version,
            "serving": serving.model_dump(mode="json"),
        },
    )


def build_inference_pipeline(
    model: str,
    version: str,
    task: str,
    serving: ServingSection,
    deployer_settings: dict[str, Any] | None = None,
    docker: Any | None = None,
) -> Any:
    """The pipeline bound to one model version: its init hook loads the adapter once per
    process; deployed, its service answers requests from that model."""
    settings: dict[str, Any] = {"deployment": deployment_settings(model, version, task, serving)}
    if deployer_settings:
        settings["deployer"] = deployer_settings
    if docker is not None:  # the image of deployers that build one (docker, cloud)
        settings["docker"] = docker
    return llm_lora_inference.with_options(
        on_init=load_served_model,
        on_init_kwargs={
            "model": model,
            "version": version,
            "serving": serving.model_dump(mode="json"),
        },
        settings=settings,
    )
