"""FSDP launches on 2 CPU ranks (gloo): the same training as DDP, Trainer checkpoints under
float32, bf16 autocast and 4-bit, a failed rank and the resume after it, and a 2-"machine"
launch on this host. The refused combinations and the launch options: test_fsdp_config.py.

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

from tests.conftest import prepare_tiny, tiny_config

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


def test_a_failed_rank_under_run_py_ends_in_one_line(
    zenml_env: Path, tiny_model_dir: Path, viggo_subset: Path
) -> None:
    """`python run.py` as a user runs it: rank 1 fails, the command exits 2 and its last line
    names the rank and the cause; neither ZenML's step report nor a rank prints a traceback."""
    import yaml

    repo = Path(__file__).resolve().parents[2]
    cfg = _config(tiny_model_dir, viggo_subset, strategy="fsdp")
    config = zenml_env / "config.yaml"
    config.write_text(yaml.safe_dump(json.loads(cfg.to_json())))
    env = _failing_env(zenml_env, rank=1, after_step=1)
    env["PYTHONPATH"] = os.pathsep.join((env["PYTHONPATH"], str(repo)))
    done = subprocess.run(
        [sys.executable, str(repo / "run.py"), "--config", str(config)],
        cwd=zenml_env,
        env={**os.environ, "TMPDIR": str(zenml_env), **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out[-4000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: step finetune: finetune failed on rank 1: "
        "RuntimeError: injected failure after step 1"
    ), last
    assert "Traceback" not in out, out[-4000:]
