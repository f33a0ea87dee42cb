"""LoRA targets per architecture, quantized loading, model resolution errors."""

from pathlib import Path

import pytest

from utils.config import load_config
from utils.models import ModelLoadError, load_model, lora_target_modules, resolve_model_path

ROOT = Path(__file__).resolve().parents[2]


def _tiny_from_config(base_model_id: str):
    """A 1-layer random model of the config's architecture (no weights, no hub)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config, Qwen2Config

    small = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 128,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    by_family = {
        "llama": LlamaConfig,
        "smollm2": LlamaConfig,
        "phi-3": Phi3Config,
        "qwen2": Qwen2Config,
    }
    family = next(k for k in by_family if k in base_model_id.lower())
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(by_family[family](**small))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_configured_lora_targets_exist_in_the_architecture(path: Path) -> None:
    cfg = load_config(path)
    model = _tiny_from_config(cfg.model.base_model_id)
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    detected = set(lora_target_modules(model))
    assert "lm_head" not in detected
    for target in cfg.lora.target_modules or detected:
        assert target in leaves, f"{path.name}: {target} not in {type(model).__name__}"
        assert target in detected


def test_phi3_targets_differ_from_llama() -> None:
    phi = set(lora_target_modules(_tiny_from_config("microsoft/Phi-3.5-mini-instruct")))
    llama = set(lora_target_modules(_tiny_from_config("meta-llama/Llama-3.1-8B-Instruct")))
    assert "qkv_proj" in phi and "q_proj" not in phi
    assert "q_proj" in llama and "qkv_proj" not in llama


@pytest.mark.parametrize(("bits", "cls"), [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")])
def test_quantized_loading_on_cpu(tiny_model_dir: Path, bits: str, cls: str) -> None:
    model = load_model(str(tiny_model_dir), quantization=bits, dtype="float32", device="cpu")
    classes = {type(m).__name__ for m in model.modules()}
    assert cls in classes
    assert set(lora_target_modules(model)) >= {"q_proj", "v_proj"}


def test_unknown_model_says_what_was_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from utils.hub import hub_reachable

    hub_reachable.cache_clear()
    with pytest.raises(ModelLoadError, match=r"no-such/model.*local folder.*hub.*offline"):
        resolve_model_path("no-such/model")


def test_last_n_layers_limits_lora_to_the_top_blocks(tiny_model_dir: Path) -> None:
    from utils.config import PipelineConfig
    from utils.training import apply_lora

    model = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    cfg = PipelineConfig.model_validate({"lora": {"r": 2, "last_n_layers": 1}})
    peft_model = apply_lora(model, cfg)
    adapted = {
        n.split(".layers.")[1].split(".")[0]
        for n, _ in peft_model.named_modules()
        if "lora_A" in n and ".layers." in n
    }
    assert adapted == {"1"}  # the tiny model has layers 0 and 1
