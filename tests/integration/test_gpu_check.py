"""bench/gpu_check.py: its FLOP count matches the architecture, and it runs end to end on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402


def test_frozen_flops_count_every_linear_of_the_8b_shape(tmp_path: Path) -> None:
    """4 x the linear parameters of a meta-device Llama-3.1-8B, counted by torch itself."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**gpu_check.SHAPES["llama3-8b"])
    config.save_pretrained(tmp_path)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert 7.9e9 < linear + model.model.embed_tokens.weight.numel() < 8.1e9  # it is an 8B
    flops = gpu_check.useful_flops_per_token(tmp_path, trainable=0, mean_length=0)
    assert flops == 4 * linear


def test_runs_on_cpu_with_a_tiny_shape(tmp_path: Path, smollm2_dir: Path) -> None:
    out = tmp_path / "rows.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--shape", "tiny",
        "--tokenizer", str(smollm2_dir), "--steps", "1", "--variants", "bf16",
        "--eval-samples", "2", "--out", str(out),
    ]  # fmt: skip
    env = dict(os.environ, ZENML_ANALYTICS_OPT_IN="false")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    assert row["variant"] == "bf16" and row["steps"] == 1 and row["eval_rows"] == 2
    assert row["useful_tokens_per_s"] > 0 and 0 < row["useful_mfu"] < 1
    assert "| bf16 |" in done.stdout
