"""Every shipped GPU config runs end to end on a CPU, with its own quantization, precision
and checkpointing, on a tiny random model of its family (`tests/fixtures/families.py`).

What a first user of `python run.py --config configs/<x>.yaml` on a GPU would hit (a
template the family rejects, LoRA targets the family lacks, a precision the launcher
contradicts) shows up here already, without the GPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import run
from tests.fixtures.families import FAMILIES, build_family_model
from utils.config import load_config

ROOT = Path(__file__).resolve().parents[2]

# Config -> the family of its base model. A new config must be added here (tested below).
FAMILY_OF = {
    "llama3.yaml": "llama3",
    "llama3_multi_gpu.yaml": "llama3",
    "phi3.5_mini.yaml": "phi3",
    "qwen2.5_7b.yaml": "qwen2.5",
    "mistral_7b.yaml": "mistral",
}
# The CPU configs run in their own tests with the real model; the remote one needs a remote
# stack and is compiled offline in test_remote_compile.py; the 70B FSDP one is validated
# offline against its architecture (meta model) in test_fsdp_config.py; the ladder (a sweep of the
# default recipe) is planned in tests/unit/test_sweep_grid.py.
NOT_HERE = {
    "ladder.yaml",
    "llama3_70b_fsdp_qlora.yaml",
    "smollm2_cpu.yaml",
    "smollm2_cpu_quality.yaml",
    "smollm2_cpu_text_to_mr.yaml",
    "own_data.yaml",
    "llama3_remote.yaml",
}


def test_every_shipped_config_is_covered() -> None:
    shipped = {p.name for p in (ROOT / "configs").glob("*.yaml")}
    assert shipped == set(FAMILY_OF) | NOT_HERE


@pytest.fixture(scope="module")
def family_models(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shipped-families")
    names = set(FAMILY_OF.values())
    return {n: build_family_model(FAMILIES[n], smollm2_dir, root / n) for n in sorted(names)}


@pytest.mark.parametrize("name", sorted(FAMILY_OF), ids=lambda n: n.removesuffix(".yaml"))
def test_shipped_config_runs_on_cpu_with_a_tiny_model_of_its_family(
    name: str, zenml_env: Path, family_models: dict[str, Path], viggo_subset: Path, capsys
) -> None:
    from zenml.client import Client

    path = ROOT / "configs" / name
    shipped = load_config(path)
    overrides = [
        f"model.base_model_id={family_models[FAMILY_OF[name]]}",
        "training.max_steps=3",
        "evaluation.max_samples=8",
        "evaluation.max_new_tokens=8",
        # The 8 ranks of a node would be 8 CPU processes here; 2 still go through the launcher.
        *(["accelerate.num_processes=2"] if shipped.accelerate.num_processes > 1 else []),
    ]
    argv = ["--config", str(path), "--data-dir", str(viggo_subset)]
    for pair in overrides:
        argv += ["--set", pair]
    assert run.main(argv) == 0, capsys.readouterr().err[-2000:]
    version = Client().get_model_version(shipped.model.name, "latest")
    meta = version.run_metadata
    training = meta["training"]
    assert training["steps"] == 3
    assert training["world_size"] == min(shipped.accelerate.num_processes, 2)
    assert meta["finetuned_metrics"]["num_rows"] == 8
    # The config's own settings ran: nothing was swapped for a CPU-friendlier one.
    assert training["quantization"] == shipped.model.quantization
    assert training["dtype"] == shipped.model.dtype  # bfloat16 in every GPU config
    assert training["gradient_checkpointing"] == shipped.training.gradient_checkpointing
    # A CPU autocasts only unquantized bf16 (utils.modeling.precision.autocast_for).
    unquantized = shipped.model.quantization == "none"
    assert training["autocast"] == ("bf16" if unquantized else "no")
    if shipped.training.gradient_checkpointing:
        assert training["shared_prompt_prefix_off"], "checkpointing must switch sharing off"
