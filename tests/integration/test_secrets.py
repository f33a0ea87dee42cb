"""The HF token from a ZenML secret reaches `from_pretrained` and nothing else.

A tiny run reads a fake token from the secret named in the config; then the captured output,
every run/step/artifact/model-version record ZenML keeps, and every file in the artifact
store (artifacts, visualizations, step logs) are searched for it.
"""

import logging
from pathlib import Path

import pytest

from tests.conftest import tiny_config

FAKE_TOKEN = "hf_FAKEtokenDoNotLeak0123456789abcdefXYZ"
SECRET_NAME = "test-hf-secret"


def _spy_on_from_pretrained(monkeypatch: pytest.MonkeyPatch) -> list:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seen = []
    for cls in (AutoTokenizer, AutoModelForCausalLM):
        real = cls.from_pretrained

        def spy(*args, _real=real, **kwargs):
            seen.append(kwargs.get("token"))
            return _real(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    return seen


def _records(run_id) -> list[str]:
    """Everything ZenML's store says about the run, its steps, artifacts and model version."""
    from zenml.client import Client

    client = Client()
    run = client.get_pipeline_run(run_id)
    texts = [run.model_dump_json(), client.get_snapshot(run.snapshot.id).model_dump_json()]
    for step in run.steps.values():
        texts.append(client.get_run_step(step.id).model_dump_json())
    for artifact in client.list_artifact_versions(size=1000, hydrate=True):
        texts.append(artifact.model_dump_json())
    for version in client.list_model_versions("tiny-test-model", hydrate=True):
        texts.append(version.model_dump_json())
        texts.append(str(client.get_model_version("tiny-test-model", version.number).run_metadata))
    return texts


def _artifact_store_files() -> list[Path]:
    from zenml.client import Client

    root = Path(Client().active_stack.artifact_store.path)
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.usefixtures("zenml_env")
def test_secret_token_is_used_and_never_stored_or_printed(
    tiny_model_dir: Path,
    viggo_subset: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from zenml.client import Client

    from pipelines.finetuning import build_pipeline
    from utils.config import PipelineConfig

    monkeypatch.delenv("HF_TOKEN", raising=False)
    Client().create_secret(SECRET_NAME, values={"token": FAKE_TOKEN})
    seen = _spy_on_from_pretrained(monkeypatch)
    caplog.set_level(logging.DEBUG)
    cfg = PipelineConfig.model_validate(
        tiny_config(
            tiny_model_dir,
            viggo_subset,
            model={"hf_token_secret": SECRET_NAME},
            # Remote options ride along: the local orchestrator must accept and ignore them.
            remote={
                "docker": {"dockerfile": "Dockerfile"},
                "steps": {"finetune": {"resources": {"gpu_count": 1}, "retry": {"max_retries": 1}}},
            },
        )
    )
    run = build_pipeline(cfg)(config=cfg.model_dump())
    assert run.status.value == "completed"

    # The secret was read where the models were loaded: prepare_data, finetune, both evals.
    assert len(seen) >= 7 and set(seen) == {FAKE_TOKEN}, seen

    out = capfd.readouterr()
    records = _records(run.id)
    files = _artifact_store_files()
    # The search does reach the config and the logs: the secret's NAME is found there.
    assert any(SECRET_NAME in text for text in records)
    assert any("logs" in p.parts for p in files), "no step logs stored"
    assert len(files) > 10

    assert FAKE_TOKEN not in out.out + out.err
    assert FAKE_TOKEN not in caplog.text
    for text in records:
        assert FAKE_TOKEN not in text
    leaked = [p for p in files if FAKE_TOKEN.encode() in p.read_bytes()]
    assert not leaked, leaked


def test_environment_token_wins_and_missing_secret_is_explained(
    zenml_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml.client import Client

    from utils.zenml_ops.secrets import SecretError, check_hf_secret, hf_token

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert hf_token(None) is None
    with pytest.raises(SecretError, match=r"'absent' .*not found.*zenml secret create absent"):
        hf_token("absent")
    Client().create_secret("no-token-key", values={"value": "x"})
    with pytest.raises(SecretError, match="no 'token' key"):
        check_hf_secret("no-token-key")
    # A prefix of a secret's name is not that secret.
    Client().create_secret("hf-prefixed", values={"token": FAKE_TOKEN})
    with pytest.raises(SecretError):
        hf_token("hf-pre")
    assert hf_token("hf-prefixed") == FAKE_TOKEN
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert hf_token("hf-prefixed") == "hf_from_env"
    assert hf_token("absent") == "hf_from_env"
