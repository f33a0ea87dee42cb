"""FSDP on 2 CPU ranks (gloo), a 2-"machine" launch on this host, the refused combinations,
and the 70B FSDP-QLoRA config checked against its architecture without weights.

Every launch goes through `steps.finetune_distributed.launch_finetune`, the function the
pipeline's step calls: ZenML's run_with_accelerate, then `accelerate launch`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, prepare_tiny, tiny_config
from tests.unit.test_modeling import ARCHITECTURES

STEPS = 3


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir, viggo_subset) -> Path:
    return prepare_tiny(tmp_path_factory, tiny_model_dir, viggo_subset)


def _config(
    tiny_model_dir: Path,
    viggo_subset: Path,
    model: dict | None = None,
    save_steps: int | None = 1,
    **accelerate,
):
    from utils.config import PipelineConfig

    training = {
        "max_steps": STEPS,
        "batch_size": 2,
        "logging_steps": 1,
        # Large enough that 3 steps move the adapter visibly away from the base model.
        "learning_rate": 3e-2,
        "warmup_ratio": 0.0,
        # By default a Trainer checkpoint after every step (FSDP used to crash at the first).
        "save_steps": save_steps,
    }
    raw = tiny_config(
        tiny_model_dir,
        viggo_subset,
        training=training,
        accelerate={"num_processes": 2, **accelerate},
    )
    raw["model"].update(model or {})
    return PipelineConfig.model_validate(raw)


# Imported by every process started with `_failing_env` on its PYTHONPATH: in the rank named
# by FAIL_RANK, the optimizer step after FAIL_AFTER_STEP raises (its checkpoint is written
# and mirrored by then).
FAILURE_HOOK = """
import os
if os.environ.get("RANK") is not None and os.environ.get("RANK") == os.environ.get("FAIL_RANK"):
    import transformers.trainer as _trainer

    _after = int(os.environ["FAIL_AFTER_STEP"])
    _step = _trainer.Trainer.training_step

    def training_step(self, *args, **kwargs):
        if self.state.global_step >= _after:
            raise RuntimeError(f"injected failure after step {_after}")
        return _step(self, *args, **kwargs)

    _trainer.Trainer.training_step = training_step
"""


def _failing_env(work: Path, rank: int, after_step: int) -> dict[str, str]:
    hook = work / "hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(FAILURE_HOOK)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "FAIL_RANK": str(rank), "FAIL_AFTER_STEP": str(after_step)}


def _start(cfg, dataset: Path, work: Path, **env: str) -> subprocess.Popen:
    """One machine's launch (`python -m steps.finetune_distributed`), its scratch folders
    (TMPDIR) and ZenML's launcher script (cwd) inside `work`."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(cfg.to_json())
    log = (work / "log.txt").open("w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steps.finetune_distributed",
            str(work / "config.json"),
            str(dataset),
            str(work / "summary.json"),
        ],
        cwd=work,
        env={**os.environ, "TMPDIR": str(work), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait(proc: subprocess.Popen, work: Path) -> dict | None:
    proc.wait(timeout=900)  # a safety net: seconds alone, minutes on a busy machine
    assert proc.returncode == 0, (work / "log.txt").read_text()[-4000:]
    summary = work / "summary.json"
    return json.loads(summary.read_text()) if summary.is_file() else None


def _logits(model_dir: Path, adapter: Path | None):
    """The logits of a fixed prompt: plain transformers + peft, nothing of this project
    (float32 base weights, whatever the adapter was trained on)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    ids = AutoTokenizer.from_pretrained(model_dir)("inform(name[Portal 2])", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def test_fsdp_trains_like_ddp_on_sharded_parameters(
    zenml_env: Path, tiny_model_dir: Path, viggo_subset: Path, prepared: Path
) -> None:
    import torch

    runs = {}
    for strategy in ("ddp", "fsdp"):
        cfg = _config(tiny_model_dir, viggo_subset, strategy=strategy)
        work = zenml_env / strategy
        runs[strategy] = _wait(_start(cfg, prepared, work), work)
    ddp, fsdp = runs["ddp"], runs["fsdp"]
    assert fsdp["strategy"] == "fsdp" and fsdp["world_size"] == 2
    assert fsdp["fsdp"]["version"] == 2
    assert fsdp["rank_steps"] == [STEPS, STEPS]
    # A Trainer checkpoint at every step under both strategies (FSDP's gathered by rank 0).
    assert fsdp["checkpoint_steps"] == ddp["checkpoint_steps"] == list(range(1, STEPS + 1))
    # Same data, same seed: the same loss at every step (reduction order aside).
    steps = [s for s, _ in fsdp["loss_history"]["train_loss"]]
    assert steps == [s for s, _ in ddp["loss_history"]["train_loss"]] and len(steps) == STEPS
    for (_, a), (_, b) in zip(
        ddp["loss_history"]["train_loss"], fsdp["loss_history"]["train_loss"], strict=True
    ):
        assert a == pytest.approx(b, abs=1e-4)
    # DDP: every rank holds the whole model. FSDP: each rank about half of it (the shards
    # of the wrapped blocks and of the root's embedding), together the whole.
    assert ddp["rank_param_bytes"] == [ddp["param_bytes"]] * 2
    whole = fsdp["param_bytes"]
    assert fsdp["param_bytes"] == ddp["param_bytes"]
    for held in fsdp["rank_param_bytes"]:
        assert 0.4 * whole <= held <= 0.6 * whole, (held, whole)
    assert sum(fsdp["rank_param_bytes"]) == pytest.approx(whole, rel=0.01)
    # In sync, and only rank 0 wrote the adapter (gathered whole from the shards).
    digests = fsdp["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert fsdp["rank_saved_adapter"] == [True, False]
    assert fsdp["fsdp_mixed_precision"] is None and fsdp["autocast"] == "no"  # float32
    # The prefix pass is off (logged and recorded); DDP keeps it.
    assert fsdp["shared_prompt_prefix"] is False
    assert fsdp["shared_prompt_prefix_off"].startswith("accelerate.strategy is fsdp")
    assert ddp["shared_prompt_prefix"] is True
    # The FSDP adapter loads with plain peft and computes what the DDP adapter computes.
    base = _logits(tiny_model_dir, None)
    with_ddp = _logits(tiny_model_dir, Path(ddp["adapter"]))
    with_fsdp = _logits(tiny_model_dir, Path(fsdp["adapter"]))
    assert torch.allclose(with_fsdp, with_ddp, atol=1e-4)
    assert not torch.allclose(with_fsdp, base, atol=1e-3)  # it did train


def test_two_machines_on_localhost_train_as_one_world(
    zenml_env: Path, tiny_model_dir: Path, viggo_subset: Path, prepared: Path, monkeypatch
) -> None:
    """Two launches on 127.0.0.1 (machine_rank 0 and 1 from the environment, as a cluster
    sets it), one process each: one world of 2 ranks, in sync, one adapter."""
    from utils.training.distributed import MACHINE_ENV, free_port

    for names in MACHINE_ENV.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    cfg = _config(
        tiny_model_dir,
        viggo_subset,
        save_steps=None,
        strategy="fsdp",
        num_machines=2,
        main_process_ip="127.0.0.1",
        main_process_port=free_port(),
    )
    works = [zenml_env / f"machine{rank}" for rank in (0, 1)]
    procs = [_start(cfg, prepared, w, MACHINE_RANK=str(r)) for r, w in enumerate(works)]
    main, other = (_wait(p, w) for p, w in zip(procs, works, strict=True))
    assert other is None  # machine 1's ranks trained; rank 0 (on machine 0) reports
    assert main["world_size"] == 2 and main["rank_steps"] == [STEPS, STEPS]
    digests = main["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert main["rank_saved_adapter"] == [True, False]
    saved = [p.parent for w in works for p in w.glob("viggo-lora-adapter-*/adapter_config.json")]
    assert saved == [Path(main["adapter"])]


@pytest.mark.parametrize(
    ("model", "resume_from"),
    [({"dtype": "bfloat16"}, "disk"), ({"quantization": "4bit", "dtype": "bfloat16"}, "store")],
    ids=["bf16-autocast", "4bit-bf16-storage"],
)
def test_fsdp_checkpoints_survive_a_failed_rank_and_resume(
    zenml_env: Path, tiny_model_dir: Path, viggo_subset: Path, prepared: Path, model, resume_from
) -> None:
    """Rank 1 fails after step 2: the launch ends with one line naming it, the two Trainer
    checkpoints hold the whole LoRA weights (plain peft loads them), and the next run resumes
    from step 2, from this disk or (as on another machine) from the artifact store's copy."""
    import torch

    from utils.training.checkpoints import (
        checkpoint_folder,
        clear_checkpoints,
        is_complete,
        list_checkpoints,
    )
    from utils.training.remote_checkpoints import CheckpointMirror

    cfg = _config(tiny_model_dir, viggo_subset, model=model, strategy="fsdp")
    failed = zenml_env / "failed"
    proc = _start(cfg, prepared, failed, **_failing_env(failed, rank=1, after_step=2))
    proc.wait(timeout=900)
    log = (failed / "log.txt").read_text()
    assert proc.returncode == 1, log[-4000:]
    last = log.strip().splitlines()[-1]
    assert last.startswith(
        "error: finetune failed on rank 1: RuntimeError: injected failure after step 2 (traceback: "
    ), last
    assert "Traceback" not in log, log[-4000:]  # no wall from the ranks or the launcher

    folder = checkpoint_folder(cfg)
    saved = list_checkpoints(folder)
    assert [p.name for p in saved] == ["checkpoint-1", "checkpoint-2"]
    assert all(is_complete(p) for p in saved)
    at_1, at_2 = (_logits(tiny_model_dir, p) for p in saved)
    assert not torch.allclose(at_1, at_2, atol=1e-3)  # each holds its own step's weights
    mirror = CheckpointMirror.for_config(cfg)
    assert mirror.latest().step == 2
    if resume_from == "store":
        clear_checkpoints(folder)  # another machine: only the store's copy is left

    work = zenml_env / "resumed"
    resumed = _wait(_start(cfg, prepared, work), work)
    assert resumed["resumed_from_step"] == 2
    assert resumed["rank_steps"] == [STEPS, STEPS] and resumed["checkpoint_steps"] == [STEPS]
    digests = resumed["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert [s for s, _ in resumed["loss_history"]["train_loss"]] == list(range(1, STEPS + 1))
    assert not folder.exists() and mirror.latest() is None  # a finished run leaves none
    assert not torch.allclose(_logits(tiny_model_dir, Path(resumed["adapter"])), at_2, atol=1e-3)
    assert resumed["dtype"] == "bfloat16"
    if "quantization" in model:
        assert resumed["quantization"] == "4bit" and resumed["autocast"] == "no"
    else:
        # Accelerate's FSDP mixed-precision policy for the bf16 autocast, as on GPUs.
        assert resumed["autocast"] == "bf16"
        assert resumed["fsdp_mixed_precision"]["param_dtype"] == "bfloat16"


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
