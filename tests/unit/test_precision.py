"""The precision policy: one autocast decision for 1 process and N, and each process's
model loaded straight onto its own device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from utils.config import ConfigError, PipelineConfig, validate_config
from utils.config.launch_sections import GPU_AUTOCAST_FOR_DTYPE
from utils.modeling.precision import precision_for

DTYPES = ["auto", "bfloat16", "float16", "float32"]
QUANTIZATIONS = ["none", "4bit", "8bit"]


@pytest.fixture
def bf16_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This CPU machine passes for one with a bf16-capable GPU, as far as the policy and
    TrainingArguments' own bf16 check look."""
    import transformers.training_args as training_args

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(training_args, "is_torch_bf16_gpu_available", lambda: True)


def _cfg(dtype: str, quantization: str, **accelerate: Any) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {"model": {"dtype": dtype, "quantization": quantization}, "accelerate": accelerate}
    )


def test_4bit_on_a_gpu_autocasts_in_one_process(bf16_gpu: None) -> None:
    """QLoRA used to train without autocast in one process but with it under the launcher."""
    precision = precision_for(_cfg("bfloat16", "4bit").model.source(), device="cuda")
    assert precision.dtype == torch.bfloat16
    assert precision.trainer_bf16
    assert precision.launcher_mixed_precision == "bf16"


def _trainer_mixed_precision(cfg: PipelineConfig, device: str, launcher: str | None, tmp: Path):
    """TrainingArguments.mixed_precision as the Trainer of one process (launcher None) or
    of a rank that `accelerate launch --mixed_precision launcher` started sees it."""
    from utils.training.trainer import training_arguments

    mp = pytest.MonkeyPatch()
    if launcher is None:
        mp.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    else:
        mp.setenv("ACCELERATE_MIXED_PRECISION", launcher)
    try:
        precision = precision_for(cfg.model.source(), device=device)
        return training_arguments(cfg, tmp, precision, has_eval=False).mixed_precision
    finally:
        mp.undo()


@pytest.mark.parametrize("device", ["cuda", "cpu"])
@pytest.mark.parametrize("quantization", QUANTIZATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_n_processes_compute_alike(
    bf16_gpu: None, tmp_path: Path, dtype: str, quantization: str, device: str
) -> None:
    cfg = _cfg(dtype, quantization)
    precision = precision_for(cfg.model.source(), device=device)
    one = _trainer_mixed_precision(cfg, device, None, tmp_path)
    many = _trainer_mixed_precision(cfg, device, precision.launcher_mixed_precision, tmp_path)
    assert one == many == precision.autocast
    if device == "cuda":
        # What the config validation holds an explicit accelerate.mixed_precision to.
        assert precision.autocast == GPU_AUTOCAST_FOR_DTYPE[dtype]
    if device == "cpu" and quantization != "none":
        assert precision.autocast == "no"  # bitsandbytes' CPU kernels as they work today


@pytest.mark.parametrize(
    ("dtype", "given"),
    [("bfloat16", "no"), ("float32", "bf16"), ("auto", "fp16"), ("float16", "bf16")],
)
def test_launcher_precision_that_contradicts_the_dtype_is_refused(dtype: str, given: str) -> None:
    raw = {"model": {"dtype": dtype}, "accelerate": {"mixed_precision": given}}
    with pytest.raises(ConfigError, match=f"accelerate.mixed_precision={given} contradicts"):
        validate_config(raw, "test")


@pytest.mark.parametrize("dtype", DTYPES)
def test_launcher_precision_equal_to_the_policy_is_accepted(dtype: str) -> None:
    for given in ("auto", GPU_AUTOCAST_FOR_DTYPE[dtype]):
        assert _cfg(dtype, "none", mixed_precision=given).accelerate.mixed_precision == given


class _Loaded(Exception):
    """Stops `from_pretrained` once its arguments are recorded."""


@pytest.mark.parametrize("quantization", ["none", "4bit", "8bit"])
def test_gpu_weights_load_onto_the_local_rank(
    monkeypatch: pytest.MonkeyPatch, bf16_gpu: None, tiny_model_dir: Path, quantization: str
) -> None:
    from transformers import AutoModelForCausalLM

    from utils.modeling.loader import load_weights

    seen: dict[str, Any] = {}

    def fake_from_pretrained(path: str, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise _Loaded

    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    source = _cfg("bfloat16", quantization).model.source()
    precision = precision_for(source)  # the machine's own device: "cuda" here
    assert precision.device == "cuda"
    with pytest.raises(_Loaded):
        load_weights(str(tiny_model_dir), source, precision, token=None)
    assert seen["device_map"] == {"": torch.device("cuda", 3)}


def test_cpu_weights_stay_on_the_cpu(tiny_model_dir: Path) -> None:
    from utils.modeling.loader import load_weights

    source = _cfg("float32", "none").model.source()
    model = load_weights(
        str(tiny_model_dir), source, precision_for(source, device="cpu"), token=None
    )
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_flash_attention_needs_a_gpu_the_package_and_16_bit_weights(
    monkeypatch: pytest.MonkeyPatch, bf16_gpu: None
) -> None:
    import importlib.util

    from utils.modeling.precision import attention_problem

    def source(dtype: str = "auto", attn: str = "flash_attention_2"):
        return PipelineConfig.model_validate(
            {"model": {"dtype": dtype, "attn_implementation": attn}}
        ).model.source()

    assert "needs a CUDA GPU" in attention_problem(source(), device="cpu")
    real_find_spec = importlib.util.find_spec
    installed = {"flash_attn": False}

    def find_spec(name: str, *args: Any):
        if name == "flash_attn":
            return object() if installed["flash_attn"] else None
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert "pip install flash-attn" in attention_problem(source(), device="cuda")
    installed["flash_attn"] = True
    assert attention_problem(source(), device="cuda") is None
    assert "not model.dtype=float32" in attention_problem(source("float32"), device="cuda")
    assert attention_problem(source(attn="sdpa"), device="cpu") is None
