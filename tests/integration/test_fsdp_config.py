"""FSDP configurations without a launch: the refused combinations (one line, exit 2), the
70B FSDP-QLoRA config against its architecture (no weights), and the launch options as
accelerate's own launch parser and FSDP plugin read them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, tiny_config
from tests.unit.test_modeling import ARCHITECTURES

BAD = [
    ("fsdp-one-process", {"accelerate.strategy": "fsdp"}, "needs accelerate.num_processes >= 2"),
    (
        "fsdp-8bit",
        {
            "accelerate.strategy": "fsdp",
            "accelerate.num_processes": 2,
            "model.quantization": "8bit",
        },
        "model.quantization=8bit cannot be sharded",
    ),
    (
        "fsdp-validation",
        {
            "accelerate.strategy": "fsdp",
            "accelerate.num_processes": 2,
            "training.validation_steps": 1,
        },
        "training.validation_steps is not supported with accelerate.strategy=fsdp",
    ),
    (
        "fsdp-wrap-layer",
        {
            "accelerate.strategy": "fsdp",
            "accelerate.num_processes": 2,
            "accelerate.fsdp.wrap_layer": "NoSuchLayer",
        },
        "accelerate.fsdp.wrap_layer='NoSuchLayer' is no module class",
    ),
    (
        "machines-no-address",
        {"accelerate.num_processes": 2, "accelerate.num_machines": 2},
        "needs the main machine's address",
    ),
    (
        "processes-per-machine",
        {"accelerate.num_processes": 3, "accelerate.num_machines": 2},
        "must be a multiple of accelerate.num_machines=2",
    ),
]


def _refused(argv: list[str], capsys) -> str:
    from zenml.client import Client

    import run

    capsys.readouterr()
    assert run.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert Client().list_pipeline_runs().total == 0
    assert Client().list_models().total == 0
    return err[0]


@pytest.mark.parametrize(("sets", "phrase"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_unsupported_combination_exits_2_with_one_line(
    zenml_env: Path, tiny_model_dir, viggo_subset, monkeypatch, capsys, sets, phrase
) -> None:
    from utils.training.distributed import MACHINE_ENV

    for names in MACHINE_ENV.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    config = zenml_env / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_model_dir, viggo_subset)))
    argv = ["--config", str(config)]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    assert phrase in _refused(argv, capsys)


def test_fsdp_4bit_without_a_shardable_storage_dtype_is_refused(
    zenml_env: Path, tiny_model_dir, viggo_subset, monkeypatch, capsys
) -> None:
    """If the 4-bit config lost its storage dtype (uint8 weights, which accelerate leaves
    unsharded on every rank with only a warning), preflight says so before any step."""
    import utils.modeling.quantization as quantization

    build = quantization.quantization_config
    monkeypatch.setattr(
        quantization, "quantization_config", lambda q, dtype, fsdp=False: build(q, dtype)
    )
    config = zenml_env / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_model_dir, viggo_subset)))
    sets = ["accelerate.strategy=fsdp", "accelerate.num_processes=2", "model.quantization=4bit"]
    argv = ["--config", str(config)] + [a for s in sets for a in ("--set", s)]
    assert "needs bnb_4bit_quant_storage to be a floating dtype" in _refused(argv, capsys)


def test_4bit_under_fsdp_is_stored_in_the_compute_dtype() -> None:
    import torch

    from utils.modeling.quantization import quantization_config

    assert quantization_config("4bit", torch.bfloat16, fsdp=True).bnb_4bit_quant_storage in (
        torch.bfloat16,
        "bfloat16",
    )
    # Without FSDP bitsandbytes' default (uint8) stays: its CPU kernels expect it.
    assert quantization_config("4bit", torch.bfloat16).bnb_4bit_quant_storage in (
        torch.uint8,
        "uint8",
    )


def test_machines_come_from_the_config_else_the_cluster_environment() -> None:
    from utils.config import AccelerateSection
    from utils.training.distributed import machines_for

    sky = {"SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_RANK": "1"}
    sky["SKYPILOT_NODE_IPS"] = "10.0.0.5\n10.0.0.6"
    m = machines_for(AccelerateSection(num_processes=16), sky)
    assert (m.num_machines, m.machine_rank, m.main_process_ip) == (2, 1, "10.0.0.5")
    assert m.main_process_port == 29500  # machines agree on accelerate's default port
    torchrun = {"NNODES": "2", "NODE_RANK": "0", "MASTER_ADDR": "head", "MASTER_PORT": "6000"}
    m = machines_for(AccelerateSection(num_processes=4, machine_rank=1), torchrun)
    assert (m.machine_rank, m.main_process_ip, m.main_process_port) == (1, "head", 6000)


# Llama-3.1-70B's config.json, the fields that shape the model (written once, with the
# other shipped configs' architectures).
LLAMA_70B = ARCHITECTURES["meta-llama/Llama-3.1-70B-Instruct"][1]


def test_70b_fsdp_qlora_config_fits_its_architecture(tmp_path: Path) -> None:
    """configs/llama3_70b_fsdp_qlora.yaml against Llama-3.1-70B's architecture on the meta
    device (no weights): LoRA targets exist, FSDP wraps its decoder layers, the launch says
    FSDP2 over 8 ranks, and 4-bit weights are stored shardably."""
    import torch
    from transformers import LlamaConfig

    from utils.config import load_config
    from utils.modeling.architecture import (
        check_lora_fits,
        decoder_layer_class,
        fsdp_wrap_layer,
        meta_model,
    )
    from utils.modeling.precision import precision_for
    from utils.modeling.quantization import fsdp_4bit_problem, quantization_config
    from utils.training.distributed import launch_kwargs

    cfg = load_config(ROOT / "configs" / "llama3_70b_fsdp_qlora.yaml")
    model = meta_model(LlamaConfig(**LLAMA_70B))
    params = sum(p.numel() for p in model.parameters())
    assert 70.5e9 < params < 70.6e9  # Llama-3.1-70B: 70.55 B
    check_lora_fits(model, cfg.lora)
    wrap = fsdp_wrap_layer(cfg.model.source(), cfg.accelerate.fsdp, model=model)
    assert wrap == decoder_layer_class(model) == "LlamaDecoderLayer"
    gpu = precision_for(cfg.model.source(), device="cuda")
    assert gpu.dtype == torch.bfloat16 and gpu.launcher_mixed_precision == "bf16"
    launch = launch_kwargs(cfg.accelerate, gpu.launcher_mixed_precision, wrap, environ={})
    assert launch["use_fsdp"] is True and "multi_gpu" not in launch
    assert launch["num_processes"] == 8 and launch["num_machines"] == 1
    assert launch["fsdp_version"] == "2"
    assert launch["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert launch["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert launch["fsdp_cpu_ram_efficient_loading"] == "true"
    assert fsdp_4bit_problem(gpu.dtype) is None
    qconfig = quantization_config(cfg.model.quantization, gpu.dtype, fsdp=True)
    assert qconfig.bnb_4bit_quant_storage in (torch.bfloat16, "bfloat16")
    # Every launch option is one `accelerate launch` knows (run_with_accelerate only warns).
    from accelerate.commands.launch import launch_command_parser

    known = vars(launch_command_parser().parse_args(["x.py"]))
    assert set(launch) <= set(known), set(launch) - set(known)


def _accelerate_env(acc) -> dict[str, str]:
    """What `accelerate launch` exports to the ranks for `acc`: our options through its own
    parser (`launch_arguments`) and its own environment preparation."""
    from accelerate.utils.launch import prepare_multi_gpu_env

    from utils.training.distributed import launch_arguments, launch_kwargs

    args = launch_arguments(launch_kwargs(acc, "no", "LlamaDecoderLayer", environ={}))
    return prepare_multi_gpu_env(args)


FSDP2_PLUGINS = [
    ({}, {"reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT"}),
    (
        {"reshard_after_forward": False, "state_dict_type": "SHARDED_STATE_DICT"},
        {"reshard_after_forward": False, "state_dict_type": "SHARDED_STATE_DICT"},
    ),
    (
        {"offload_params": True, "cpu_ram_efficient_loading": False},
        {"offload": True, "cpu_ram_efficient_loading": False},
    ),
]


@pytest.mark.parametrize(("fsdp", "expected"), FSDP2_PLUGINS, ids=["default", "zero2", "offload"])
def test_fsdp_options_reach_accelerates_plugin(monkeypatch, fsdp, expected) -> None:
    """The config's FSDP options, parsed by accelerate's launcher and read back by its own
    plugin in the ranks' environment, are the ones the config says."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import CPUOffloadPolicy

    from utils.config import AccelerateSection

    env = _accelerate_env(AccelerateSection(num_processes=2, strategy="fsdp", fsdp=fsdp))
    assert env["ACCELERATE_USE_FSDP"] == "true"
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.reshard_after_forward is expected.get("reshard_after_forward", True)
    assert plugin.state_dict_type.name == expected.get("state_dict_type", "FULL_STATE_DICT")
    assert plugin.cpu_ram_efficient_loading is expected.get("cpu_ram_efficient_loading", True)
    assert isinstance(plugin.cpu_offload, CPUOffloadPolicy) is expected.get("offload", False)
    assert plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]


def test_launch_options_per_strategy_and_fsdp_version() -> None:
    """DDP and FSDP1 through accelerate's parser and environment: the strategy and the
    FSDP1 sharding strategy it exports; options it refuses are a one-line ConfigError."""
    from utils.config import AccelerateSection, ConfigError
    from utils.training.distributed import launch_arguments, launch_kwargs

    ddp = launch_arguments(launch_kwargs(AccelerateSection(num_processes=2), "no", environ={}))
    assert ddp.multi_gpu and not ddp.use_fsdp and ddp.num_processes == 2
    assert "ACCELERATE_USE_FSDP" not in _accelerate_env(AccelerateSection(num_processes=2))
    v1 = AccelerateSection(
        num_processes=2, strategy="fsdp", fsdp={"version": 1, "reshard_after_forward": False}
    )
    fsdp1 = _accelerate_env(v1)
    assert fsdp1["FSDP_VERSION"] == "1"
    assert fsdp1["FSDP_RESHARD_AFTER_FORWARD"].upper() == "SHARD_GRAD_OP"
    assert fsdp1["FSDP_USE_ORIG_PARAMS"] == "true"  # frozen and trainable weights share units
    kwargs = launch_kwargs(v1, "no", "LlamaDecoderLayer", environ={})
    with pytest.raises(ConfigError, match="invalid choice: '3'"):
        launch_arguments({**kwargs, "fsdp_version": "3"})
    with pytest.raises(ConfigError, match="unrecognized arguments: --fsdp_sharding"):
        launch_arguments({**kwargs, "fsdp_sharding": 1})
    with pytest.raises(ConfigError, match="reads --num_processes '2' as 2"):
        launch_arguments({**kwargs, "num_processes": "2"})
