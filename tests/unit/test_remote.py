"""The `remote:` config section: validation, and its translation into ZenML options."""

from pathlib import Path

import pytest

from utils.config import ConfigError, PipelineConfig, load_config
from utils.zenml_ops.remote_options import (
    RemoteError,
    check_step_operator,
    pipeline_options,
    step_options,
    steps_on_step_operator,
)

ROOT = Path(__file__).resolve().parents[2]
GPU_STEPS = {"finetune", "evaluate_base", "evaluate_finetuned"}


def test_no_remote_section_means_no_options() -> None:
    assert pipeline_options(PipelineConfig().remote) == {}
    assert pipeline_options(load_config(ROOT / "configs" / "smollm2_cpu.yaml").remote) == {}


def test_remote_config_resources_retries_and_step_operator() -> None:
    cfg = load_config(ROOT / "configs" / "llama3_remote.yaml")
    options = pipeline_options(cfg.remote)
    assert set(options["steps"]) == GPU_STEPS
    for name in GPU_STEPS:
        step = options["steps"][name]
        resources = step["settings"]["resources"]
        assert resources.gpu_count == 1 and resources.memory.endswith("GB"), name
        assert step["retry"].max_retries >= 1 and step["retry"].backoff >= 2, name
        assert step["retry"].delay > 0, name
        assert step["step_operator"] is True, name
    assert options["steps"]["finetune"]["settings"]["resources"].cpu_count == 8
    assert Path(options["settings"]["docker"].dockerfile) == ROOT / "Dockerfile"
    assert sorted(steps_on_step_operator(cfg.remote)) == sorted(GPU_STEPS)
    # The token itself never is in a config; the secret's name is.
    assert cfg.model.hf_token_secret == "huggingface"


def test_named_step_operator_and_component_settings_pass_through() -> None:
    cfg = load_config(
        None,
        [
            "remote.step_operator=gpu-sagemaker",
            "remote.steps.finetune.step_operator=true",
            "remote.steps.finetune.settings={step_operator.sagemaker: {instance_type: g5}}",
            "remote.settings={orchestrator.kubernetes: {synchronous: false}}",
        ],
    )
    options = pipeline_options(cfg.remote)
    finetune = options["steps"]["finetune"]
    assert finetune["step_operator"] == "gpu-sagemaker"
    assert finetune["settings"] == {"step_operator.sagemaker": {"instance_type": "g5"}}
    assert "retry" not in finetune  # max_retries 0 = no retry config at all
    assert options["settings"] == {"orchestrator.kubernetes": {"synchronous": False}}


def test_retry_maps_to_zenml() -> None:
    cfg = load_config(None, ["remote.steps.promote.retry={max_retries: 2, delay: 5, backoff: 3}"])
    retry = step_options(cfg.remote.steps.promote, None)["retry"]
    assert (retry.max_retries, retry.delay, retry.backoff) == (2, 5, 3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("remote.steps.finetun.retry.max_retries=2", "did you mean 'remote.steps.finetune'"),
        (
            "remote.steps.finetune.resources.gpus=1",
            "did you mean 'remote.steps.finetune.resources.gpu_count'",
        ),
        ("remote.dockr.dockerfile=Dockerfile", "did you mean 'remote.docker'"),
        (
            "remote.steps.finetune.resources.memory=64G",
            r"remote\.steps\.finetune\.resources\.memory",
        ),
        ("remote.steps.finetune.resources.gpu_count=-1", "gpu_count"),
        ("remote.steps.finetune.retry.backoff=0", r"retry\.backoff"),
        ("remote.settings={docker: {}}", "not '<component type>"),
        ("remote.steps.evaluate_base.settings={resources: {}}", "not '<component type>"),
        ("model.hf_token_secret=''", "model.hf_token_secret"),
    ],
)
def test_remote_mistakes_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_step_operator_is_one_clear_error() -> None:
    remote = load_config(ROOT / "configs" / "llama3_remote.yaml").remote
    with pytest.raises(RemoteError, match="need a step operator but the active stack 'default'"):
        check_step_operator(remote, "default", set())
    check_step_operator(remote, "gpu", {"sagemaker"})
    named = remote.model_copy(update={"step_operator": "vertex-a100"})
    with pytest.raises(RemoteError, match=r"'vertex-a100'.*has \['sagemaker'\]"):
        check_step_operator(named, "gpu", {"sagemaker"})
    check_step_operator(named, "gpu", {"sagemaker", "vertex-a100"})
    # Nothing asked of a step operator: any stack will do.
    check_step_operator(PipelineConfig().remote, "default", set())
