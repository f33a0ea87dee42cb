"""Training throughput: this project's finetune path vs the upstream reference recipe.

Same model, same rows, same number of optimizer steps (and so the same rows seen), in one
run; each variant trains in its own subprocess so that its peak memory is its own.

- `project`: `utils.training.train.train_lora`, the function the `finetune` step runs, with the
  config's training settings (`configs/smollm2_cpu.yaml`: length-grouped, left-padded
  batches whose shared prompt prefix runs once, LM head only on the answer window,
  prompt-masked loss, no LoRA dropout, LoRA r=16 on every linear layer of the top 15 blocks
  so that backpropagation stops there). Only steps and batch size follow the bench.
- `project_all_layers`: the same with LoRA on every block, as in the reference.
- `project_no_prefix_sharing`: `project` with every row computing its own prompt prefix.
- `project_packed`: `project` with padding-free packed rows instead of padded batches.
- `reference`: the upstream recipe: every row padded to 512, loss on all tokens, batch 2 x
  gradient accumulation 4, gradient checkpointing, LoRA r=16 on every linear layer.

"Useful" tokens are the rows' real (non-padding) tokens. Prints one JSON line, e.g.

    python bench/train_throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.config import (  # noqa: E402
    DatasetSection,
    ModelSource,
    PipelineConfig,
    load_config,
)
from utils.data.jsonl import read_jsonl, write_jsonl  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.modeling.loader import load_model, load_tokenizer  # noqa: E402
from utils.modeling.precision import default_device  # noqa: E402
from utils.modeling.resolve import resolve_model_path  # noqa: E402

VARIANTS = (
    "reference",
    "project",
    "project_all_layers",
    "project_no_prefix_sharing",
    "project_packed",
)
REFERENCE_LENGTH = 512


def matmul_peak_flops(device: str) -> float:
    """Measured dense matmul FLOP/s in the training dtype: the MFU denominator."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    n = 8192 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 20 if device == "cuda" else 5
    for _ in range(2):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _project_config(args: argparse.Namespace, variant: str) -> PipelineConfig:
    cfg = load_config(args.config, [], None)
    cfg.model.base_model_id = args.model_path
    cfg.lora.r, cfg.lora.alpha, cfg.lora.target_modules = 16, 32, None
    if variant.endswith("all_layers"):
        cfg.lora.last_n_layers = None  # every block, as in the reference
    cfg.training.max_steps = args.steps
    cfg.training.batch_size = args.rows // args.steps
    cfg.training.gradient_accumulation_steps = 1
    cfg.training.gradient_checkpointing = False
    if variant == "project_no_prefix_sharing":
        cfg.training.share_prompt_prefix = False
    if variant == "project_packed":
        cfg.training.packing = True
    cfg.training.logging_steps = 1
    cfg.training.eval_steps = None
    # Time optimizer steps only: no checkpoint writes, and never resume an earlier bench.
    cfg.training.save_steps = None
    cfg.training.resume = "never"
    return cfg


def run_project(args: argparse.Namespace, variant: str, data_dir: Path, out: Path) -> dict:
    from utils.training.train import train_lora

    summary = train_lora(_project_config(args, variant), data_dir, out)
    return {"seconds": summary["train_runtime_s"], "steps": summary["steps"]}


def run_reference(args: argparse.Namespace, data_dir: Path, out: Path) -> dict:
    """The upstream recipe, written out: fixed 512 padding, labels on every real token."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from utils.modeling.lora import lora_target_modules

    device = default_device()
    dtype = load_config(args.config, [], None).model.dtype
    model, tokenizer = load_model(ModelSource(base_model_id=args.model_path, dtype=dtype))
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules=lora_target_modules(model),
            task_type="CAUSAL_LM",
        ),
    )
    model.enable_input_require_grads()  # checkpointed blocks need a grad-requiring input
    rows = read_jsonl(data_dir / "train.jsonl")
    pad = tokenizer.pad_token_id
    features = []
    for r in rows:
        ids = r["input_ids"][:REFERENCE_LENGTH]
        n = len(ids)
        padded = ids + [pad] * (REFERENCE_LENGTH - n)
        features.append(
            {
                "input_ids": padded,
                "attention_mask": [1] * n + [0] * (REFERENCE_LENGTH - n),
                "labels": ids + [-100] * (REFERENCE_LENGTH - n),
            }
        )
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(out),
            max_steps=args.steps,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=4,
            learning_rate=2e-4,
            activation_checkpointing=True,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            bf16=device == "cuda",
            use_cpu=device == "cpu",
            dataloader_num_workers=0,
        ),
        train_dataset=Dataset.from_list(features),
    )
    start = time.perf_counter()
    trainer.train()
    _sync(device)
    return {"seconds": round(time.perf_counter() - start, 2), "steps": trainer.state.global_step}


def worker(args: argparse.Namespace) -> None:
    # The finetune step runs with ZenML loaded; its callback would otherwise import it
    # inside the timed region. Imported for every variant alike.
    import zenml  # noqa: F401

    device = default_device()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.worker == "reference":
            result = run_reference(args, args.prepared, Path(tmp))
        else:
            result = run_project(args, args.worker, args.prepared, Path(tmp))
    result["peak_memory_mb"] = round(_peak_memory_mb(device), 1)
    print("RESULT " + json.dumps(result), flush=True)


def prepare(args: argparse.Namespace, out: Path) -> int:
    """The first `rows` training rows as the project prepares them; returns useful tokens."""
    tokenizer = load_tokenizer(args.model_path)
    section = DatasetSection(data_dir=str(args.data_dir), max_train_samples=args.rows)
    prepare_dataset(section, tokenizer, out / "all")
    rows = read_jsonl(out / "all" / "train.jsonl")
    # Train only (no validation pass): the bench times optimizer steps.
    (out / "train").mkdir()
    write_jsonl(rows, out / "train" / "train.jsonl")
    return sum(len(r["input_ids"][:REFERENCE_LENGTH]) for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--model", help="model id or folder (default: the config's base model)")
    p.add_argument("--rows", type=int, default=24, help="training rows (all seen once)")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--prepared", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--model-path", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.rows % args.steps or (args.rows // args.steps) % 8:
        p.error("--rows must be --steps x a multiple of 8 (the reference uses 2 x 4 per step)")
    cfg = load_config(args.config, [], None)
    args.model_path = resolve_model_path(args.model or cfg.model.base_model_id)
    device = default_device()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        useful = prepare(args, Path(tmp))
        for variant in variants:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                variant,
                "--prepared",
                str(Path(tmp) / "train"),
                "--model-path",
                args.model_path,
                "--config",
                str(args.config),
                "--rows",
                str(args.rows),
                "--steps",
                str(args.steps),
            ]
            print(f"[bench] {variant} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
                raise SystemExit(f"bench variant {variant} failed (exit {proc.returncode})")
            results[variant] = json.loads(line[len("RESULT ") :])
            print(f"[bench] {variant}: {results[variant]}", file=sys.stderr, flush=True)
    # MFU only on a GPU: on a CPU the matmul peak is too noisy a yardstick.
    peak = matmul_peak_flops(device) if device == "cuda" else None
    n_params = _param_count(args.model_path)
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu x{os.cpu_count()}",
        "torch_threads": torch.get_num_threads(),
        "model": args.model or cfg.model.base_model_id,
        "rows": args.rows,
        "optimizer_steps": args.steps,
        "useful_tokens": useful,
    }
    if peak:
        out["matmul_peak_tflops"] = round(peak / 1e12, 1)
    for variant, r in results.items():
        tok_s = useful / r["seconds"]
        out[f"useful_tok_s_{variant}"] = round(tok_s, 1)
        out[f"peak_memory_mb_{variant}"] = r["peak_memory_mb"]
        if peak:
            # Frozen base, LoRA on every block: forward 2N + activation gradients 2N FLOPs
            # per token (the LoRA weights' own gradients are negligible).
            out[f"mfu_{variant}"] = round(tok_s * 4 * n_params / peak, 4)
    if "project" in results and "reference" in results:
        out["ratio"] = round(out["useful_tok_s_project"] / out["useful_tok_s_reference"], 2)
    for extra in VARIANTS[2:]:
        if extra in results and "reference" in results:
            out[f"ratio_{extra}"] = round(
                out[f"useful_tok_s_{extra}"] / out["useful_tok_s_reference"], 2
            )
    print(json.dumps(out))


def _param_count(model_path: str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    main()
