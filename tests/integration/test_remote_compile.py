"""configs/llama3_remote.yaml compiled by ZenML (offline, nothing runs): what each step gets."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GPU_STEPS = {"finetune", "evaluate_base", "evaluate_finetuned"}


def _compile(cfg, schedule=None):
    """The snapshot ZenML would submit for `build_pipeline(cfg)`, as `pipeline()` builds it."""
    from pipelines.finetuning import build_pipeline

    pipe = build_pipeline(cfg, schedule)
    pipe.prepare(config=cfg.model_dump())
    args = {k: v for k, v in pipe._run_args.items() if k != "prevent_build_reuse"}
    args["steps"] = args.pop("step_configurations", None)
    snapshot, compiled_schedule, _ = pipe._compile(**args)
    return snapshot, compiled_schedule


def test_remote_config_compiles_with_resources_retries_and_image(
    zenml_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml.config.compiler import Compiler

    from utils.config import load_config
    from utils.zenml_ops.schedules import build_schedule

    # The test stack has no step operator; everything else is compiled as on a remote stack.
    monkeypatch.setattr(
        Compiler, "_ensure_required_stack_components_exist", staticmethod(lambda **_: None)
    )
    cfg = load_config(ROOT / "configs" / "llama3_remote.yaml")
    snapshot, schedule = _compile(cfg, build_schedule(cron="0 3 * * 1"))
    steps = snapshot.step_configurations
    assert set(steps) == GPU_STEPS | {"prepare_data", "promote"}
    for name, step in steps.items():
        conf = step.config
        resources = conf.settings.get("resources")
        if name in GPU_STEPS:
            assert resources is not None, name
            assert resources.gpu_count == 1 and resources.memory, name
            assert conf.retry is not None and conf.retry.max_retries >= 1, name
            assert conf.retry.backoff >= 2 and conf.retry.delay > 0, name
            assert conf.step_operator is True, name
        else:
            assert resources is None and conf.retry is None and not conf.step_operator, name
    assert steps["finetune"].config.settings["resources"].memory == "64GB"
    docker = snapshot.pipeline_configuration.settings["docker"]
    assert Path(docker.dockerfile) == ROOT / "Dockerfile"
    assert schedule.cron_expression == "0 3 * * 1"
    # A new model version per run: no fixed version, also for scheduled runs.
    assert snapshot.pipeline_configuration.model.version is None
    # Only the secret's name reaches the step parameters.
    assert steps["prepare_data"].config.parameters["hf_token_secret"] == "huggingface"


def test_local_stack_compiles_the_remote_settings_except_the_step_operator(
    zenml_env: Path,
) -> None:
    from zenml.exceptions import StackValidationError

    from utils.config import load_config

    cfg = load_config(ROOT / "configs" / "llama3_remote.yaml")
    with pytest.raises(StackValidationError, match="step operator"):
        _compile(cfg)
    for step in GPU_STEPS:
        getattr(cfg.remote.steps, step).step_operator = False
    snapshot, _ = _compile(cfg)
    assert snapshot.step_configurations["finetune"].config.settings["resources"].gpu_count == 1


def test_run_with_remote_config_on_local_stack_fails_before_running(
    zenml_env: Path, capsys: pytest.CaptureFixture
) -> None:
    from zenml.client import Client

    import run

    code = run.main(["--config", str(ROOT / "configs" / "llama3_remote.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "need a step operator" in err[0] and "'default'" in err[0]
    assert len(Client().list_pipeline_runs()) == 0
