"""Two CPU ranks through ZenML's run_with_accelerate, and QLoRA (4-bit / 8-bit) on CPU."""

from pathlib import Path

import pytest

from tests.conftest import tiny_config
from tests.integration.test_pipeline import _run


def test_two_cpu_processes_train_in_sync(zenml_env: Path, tiny_model_dir, viggo_subset) -> None:
    from zenml.client import Client

    from tests.integration.test_pipeline import _scratch_folders

    cfg = tiny_config(tiny_model_dir, viggo_subset, accelerate={"num_processes": 2})
    before = _scratch_folders()
    run = _run(cfg)
    assert _scratch_folders() == before  # both ranks' folders are gone
    assert run.status.value == "completed"
    version = Client().get_model_version("tiny-test-model", "latest")
    training = version.run_metadata["training"]
    assert training["world_size"] == 2
    # Each batch's shared prompt prefix ran once, outside the DDP wrapper, and still synced.
    assert training["shared_prompt_prefix"] is True
    assert training["shared_prompt_prefix_off"] is None  # the reason it would be off
    assert training["rank_steps"] == [2, 2]  # both ranks ran every optimizer step
    # Different data shards, identical weights afterwards: gradients were all-reduced.
    digests = training["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert training["rank_saved_adapter"] == [True, False]  # exactly one adapter saved
    # The metrics crossed the process boundary: step metadata and the model version.
    step = Client().get_pipeline_run(run.id).steps["finetune"]
    assert step.run_metadata["training"]["world_size"] == 2
    assert training["loss_history"]["train_loss"]
    adapter = version.get_artifact("adapter").load()
    assert (Path(adapter) / "adapter_config.json").is_file()
    # No launcher leftovers in the working directory.
    assert not list(Path.cwd().glob("*.out"))


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_quantized_finetune_and_evaluate(
    zenml_env: Path, tiny_model_dir, viggo_subset, bits: str
) -> None:
    from zenml.client import Client

    _run(tiny_config(tiny_model_dir, viggo_subset, model={"quantization": bits}))
    version = Client().get_model_version("tiny-test-model", "latest")
    meta = version.run_metadata
    assert meta["training"]["steps"] == 2
    assert meta["finetuned_metrics"]["num_rows"] == meta["base_metrics"]["num_rows"] == 6
    assert f"quantization:{bits}" in {t.name for t in version.tags}
