"""LoRA targets per architecture, quantized loading, model resolution errors."""

from pathlib import Path

import pytest

from tests.conftest import load_on_cpu
from utils.config import load_config
from utils.modeling.lora import lora_target_modules
from utils.modeling.resolve import ModelLoadError, resolve_model_path

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


# The published dimensions of every base model a shipped config names (their config.json on
# the hub), so each config is checked against its real architecture offline.
ARCHITECTURES: dict[str, tuple[str, dict]] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("LlamaConfig", {
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
        "tie_word_embeddings": True}),
    "meta-llama/Llama-3.1-70B-Instruct": ("LlamaConfig", {
        "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
        "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256,
        "max_position_embeddings": 131072, "rope_theta": 500000.0,
        "tie_word_embeddings": False}),
    "meta-llama/Llama-3.1-8B-Instruct": ("LlamaConfig", {
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256}),
    "microsoft/Phi-3.5-mini-instruct": ("Phi3Config", {
        "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064}),
    "Qwen/Qwen2.5-7B-Instruct": ("Qwen2Config", {
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064}),
    "mistralai/Mistral-7B-Instruct-v0.3": ("MistralConfig", {
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32768,
        "sliding_window": None}),
}  # fmt: skip


def _architecture(base_model_id: str):
    import transformers

    from utils.modeling.architecture import meta_model

    family, dims = ARCHITECTURES[base_model_id]
    return meta_model(getattr(transformers, family)(**dims))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_fit_their_architecture(path: Path) -> None:
    """The checks preflight runs on config.json, here on the published dimensions."""
    from utils.modeling.architecture import check_lora_fits

    cfg = load_config(path)
    assert cfg.model.base_model_id in ARCHITECTURES, f"{path.name}: add its dimensions"
    model = _architecture(cfg.model.base_model_id)
    check_lora_fits(model, cfg.lora, path.name)
    assert "lm_head" not in lora_target_modules(model)


def test_the_architecture_check_refuses_what_the_model_lacks() -> None:
    from utils.config import ConfigError, LoraSection
    from utils.modeling.architecture import check_lora_fits

    phi = _architecture("microsoft/Phi-3.5-mini-instruct")
    with pytest.raises(ConfigError, match=r"'q_proj' is not a linear layer of Phi3ForCausalLM"):
        check_lora_fits(phi, LoraSection(target_modules=["q_proj", "o_proj"]))
    qwen = _architecture("Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(ConfigError, match=r"last_n_layers=29 but Qwen2ForCausalLM has 28"):
        check_lora_fits(qwen, LoraSection(last_n_layers=29))
    check_lora_fits(qwen, LoraSection(last_n_layers=28))


def test_phi3_targets_differ_from_llama() -> None:
    phi = set(lora_target_modules(_tiny_from_config("microsoft/Phi-3.5-mini-instruct")))
    llama = set(lora_target_modules(_tiny_from_config("meta-llama/Llama-3.1-8B-Instruct")))
    assert "qkv_proj" in phi and "q_proj" not in phi
    assert "q_proj" in llama and "qkv_proj" not in llama


@pytest.mark.parametrize(("bits", "cls"), [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")])
def test_quantized_loading_on_cpu(tiny_model_dir: Path, bits: str, cls: str) -> None:
    model, _ = load_on_cpu(tiny_model_dir, quantization=bits)
    classes = {type(m).__name__ for m in model.modules()}
    assert cls in classes
    assert set(lora_target_modules(model)) >= {"q_proj", "v_proj"}


def test_unknown_model_says_what_was_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from utils.modeling.hub import hub_reachable

    hub_reachable.cache_clear()
    with pytest.raises(ModelLoadError, match=r"no-such/model.*local folder.*hub.*offline"):
        resolve_model_path("no-such/model")


def test_last_n_layers_limits_lora_to_the_top_blocks(tiny_model_dir: Path) -> None:
    from utils.config import LoraSection
    from utils.modeling.lora import apply_lora

    model, _ = load_on_cpu(tiny_model_dir)
    peft_model = apply_lora(model, LoraSection(r=2, last_n_layers=1), "none", False)
    adapted = {
        n.split(".layers.")[1].split(".")[0]
        for n, _ in peft_model.named_modules()
        if "lora_A" in n and ".layers." in n
    }
    assert adapted == {"1"}  # the tiny model has layers 0 and 1


def _llama_on_meta(hidden: int):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=128,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def test_cpu_4bit_check_names_a_layer_below_the_block_size() -> None:
    from utils.modeling.quantization import cpu_4bit_problem

    problem = cpu_4bit_problem(_llama_on_meta(32), repacks=True)
    assert problem is not None
    assert "multiple of 64" in problem and "multiple of 32" in problem
    assert "model.layers.0.self_attn.q_proj (32 -> 32)" in problem
    assert "use model.quantization 8bit or none, or a GPU" in problem
    assert "\n" not in problem
    # The LM head stays unquantized: its shape never counts.
    assert "lm_head" not in problem
    assert cpu_4bit_problem(_llama_on_meta(64), repacks=True) is None
    # CPUs whose bitsandbytes kernels do not repack take any shape.
    assert cpu_4bit_problem(_llama_on_meta(32), repacks=False) is None


@pytest.mark.parametrize("hidden", [32, 64])
def test_cpu_4bit_check_agrees_with_bitsandbytes(
    hidden: int, smollm2_dir: Path, tmp_path: Path
) -> None:
    """On this machine's CPU, bitsandbytes fails an inference pass exactly when the check
    says it will (on AVX2 CPUs: never, for both widths)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from tests.fixtures.tiny_model import build_tiny_llama
    from utils.modeling.quantization import cpu_4bit_problem

    path = build_tiny_llama(smollm2_dir, tmp_path / "m", hidden_size=hidden)
    qconfig = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=qconfig, device_map={"": "cpu"}
    )
    model.eval()
    try:
        with torch.inference_mode():
            model(input_ids=torch.tensor([[1, 2, 3]]))
        failed = False
    except RuntimeError:
        failed = True
    assert failed == (cpu_4bit_problem(model) is not None)


def test_loading_4bit_refuses_a_layer_this_cpu_cannot_run(
    smollm2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import utils.modeling.quantization as quantization
    from tests.fixtures.tiny_model import build_tiny_llama

    monkeypatch.setattr(quantization, "bnb_repacks_4bit_on_cpu", lambda: True)
    path = build_tiny_llama(smollm2_dir, tmp_path / "m", hidden_size=32)
    with pytest.raises(ModelLoadError, match=r"cannot run on this CPU.*q_proj \(32 -> 32\)"):
        load_on_cpu(path, quantization="4bit")
    quantization.check_quantizable(str(path), "8bit", device="cpu")  # other modes: no limit
    with pytest.raises(ModelLoadError, match="multiple of 64"):
        quantization.check_quantizable(str(path), "4bit", device="cpu")


def test_lm_head_gets_a_contiguous_input_for_last_position_logits(tiny_model_dir: Path) -> None:
    """`logits_to_keep=1` slices a strided view; CPU bf16 matmuls with it were 200x slower
    and held GBs (the evaluation's memory spike): the loader makes the head's input dense."""
    import torch

    model, tok = load_on_cpu(tiny_model_dir)
    seen = []
    model.get_output_embeddings().register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].is_contiguous())
    )
    ids = torch.tensor([tok("one two three four")["input_ids"]] * 2)
    with torch.inference_mode():
        full = model(input_ids=ids).logits[:, -1]
        last = model(input_ids=ids, logits_to_keep=1).logits[:, -1]
    assert seen == [True, True]
    assert torch.allclose(full, last, atol=1e-5)
