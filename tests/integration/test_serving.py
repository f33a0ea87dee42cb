"""`run.py generate` and `run.py export` against the Model Control Plane (tiny model)."""

from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_config
from tests.integration.test_pipeline import _run

MRS = [
    "inform(name[Dirt: Showdown], release_year[2012], platforms[PlayStation, Xbox, PC])",
    "request(specifier[fun], has_multiplayer[yes])",
]


@pytest.fixture
def trained_version(zenml_env: Path, tiny_model_dir, viggo_subset):
    # A high learning rate so the adapter visibly changes the model.
    _run(tiny_config(tiny_model_dir, viggo_subset, training={"learning_rate": 5e-2}))
    from utils.zenml_ops.model_versions import find_version

    return find_version("tiny-test-model", "latest")


def test_generate_prints_one_line_per_input(trained_version, tmp_path: Path, capsys) -> None:
    import run as cli

    inputs = tmp_path / "inputs.txt"
    inputs.write_text(MRS[1] + "\n")
    args = [
        "generate",
        "--model",
        "tiny-test-model",
        "--stage",
        "latest",
        "--input",
        MRS[0],
        "--input-file",
        str(inputs),
        "--max-new-tokens",
        "4",
    ]
    assert cli.main(args) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert cli.main(["generate", "--model", "tiny-test-model", "--stage", "9", "--input", "x"]) == 2
    assert "no version '9'" in capsys.readouterr().err


def test_export_matches_the_adapter(trained_version, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import run as cli
    from tests.conftest import load_on_cpu
    from utils.data.prompts import build_prompt, encode_prompt, system_prompt_for
    from utils.inference.adapters import generate_with_adapter
    from utils.zenml_ops.model_versions import extracted_adapter, version_config

    out = tmp_path / "merged"
    assert (
        cli.main(["export", "--model", "tiny-test-model", "--stage", "latest", "--out", str(out)])
        == 0
    )
    merged = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no peft
    tok = AutoTokenizer.from_pretrained(out)
    assert (out / "model.safetensors").is_file()
    cfg = version_config(trained_version)
    base, _ = load_on_cpu(cfg.model.base_model_id)
    with extracted_adapter(trained_version) as adapter:
        adapted = PeftModel.from_pretrained(base, str(adapter))
        # Greedy texts agree too (with the config's max_new_tokens unless given).
        direct = generate_with_adapter(cfg, adapter, MRS, max_new_tokens=6)
    assert not adapter.exists()  # the extracted copy is gone
    system = system_prompt_for("data_to_text")
    ids = torch.tensor([encode_prompt(tok, build_prompt(tok, MRS[0], system))])
    with torch.no_grad():
        merged_logits = merged(input_ids=ids).logits
        adapter_logits = adapted(input_ids=ids).logits
        with adapted.disable_adapter():
            base_logits = adapted(input_ids=ids).logits
    assert torch.allclose(merged_logits, adapter_logits, atol=1e-4)
    assert not torch.allclose(base_logits, adapter_logits, atol=1e-4)  # the adapter matters
    from utils.inference.transformers_engine import generate

    tok.padding_side = "left"
    prompts = [build_prompt(tok, m, system) for m in MRS]
    newline = cfg.evaluation.stop_at_newline  # `generate` decodes as the evaluation did
    assert generate(merged, tok, prompts, 2, 6, stop_at_newline=newline).texts == direct
