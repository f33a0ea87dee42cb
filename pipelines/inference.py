"""The served pipeline: task inputs -> generate -> texts (+ slot errors). Deployed by
`run.py serve`, one request per run: `POST <url>/invoke {"parameters": {"inputs": [...]}}`."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from steps.generate import generate
from utils.config import ServingSection
from utils.core.names import GENERATE, INVOKE_PATH, SUBMIT_PATH
from utils.serving.served_model import load_served_model


@pipeline(enable_cache=False)
def llm_lora_inference(inputs: list[str]) -> Any:
    # A literal tuple: ZenML takes the pipeline's outputs (the response's `outputs`) from it.
    texts, slot_errors = generate(inputs=inputs, id=GENERATE)
    return texts, slot_errors


def build_inference_pipeline(
    model: str,
    version: str,
    task: str,
    serving: ServingSection,
    deployer_settings: dict[str, Any] | None = None,
    docker: Any | None = None,
) -> Any:
    """The pipeline bound to one model version: its init hook loads the adapter once per
    process, and the deployment's middleware refuses bad requests before they become runs."""
    from zenml.config import DeploymentSettings, MiddlewareSpec

    from utils.serving.middleware import RequestCheckMiddleware

    checks = MiddlewareSpec(
        middleware=RequestCheckMiddleware,
        extra_kwargs={
            "paths": [INVOKE_PATH, SUBMIT_PATH],
            "task": task,
            "max_inputs_per_request": serving.max_inputs_per_request,
            "max_input_chars": serving.max_input_chars,
        },
    )
    settings: dict[str, Any] = {
        "deployment": DeploymentSettings(
            app_title=f"{model} version {version}", custom_middlewares=[checks]
        )
    }
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
