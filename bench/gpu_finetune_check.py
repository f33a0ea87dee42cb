"""GPU check of the finetune path: bf16 LoRA and 4-bit QLoRA on a random-weight model.

The weights are random (no hub needed); only the architecture comes from `--model-config`
(a HF folder with config.json and a tokenizer, e.g. SmolLM2's converted folder). Runs
`utils.training.train.train_lora`, the function the `finetune` step runs, once per variant, and
prints one JSON line per variant: tokens/s, runtime, peak GPU memory, losses.

    python bench/gpu_finetune_check.py --model-config DIR --data-dir PREPARED --steps 30
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.config import PipelineConfig
from utils.training.train import train_lora


def random_model(config_dir: Path, out: Path) -> Path:
    import gzip

    from transformers import AutoConfig, AutoModelForCausalLM

    packed = config_dir / "tokenizer.json.gz"  # carried compressed to the GPU machine
    if packed.is_file() and not (config_dir / "tokenizer.json").is_file():
        (config_dir / "tokenizer.json").write_bytes(gzip.decompress(packed.read_bytes()))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_dir))
    model.save_pretrained(out)
    for f in config_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, out / f.name)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-config", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True, help="prepare_data's output folder")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--variants", default="bf16,4bit")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp())
    model_dir = random_model(args.model_config, work / "model")
    results = []
    for variant in args.variants.split(","):
        cfg = PipelineConfig.model_validate(
            {
                "model": {
                    "base_model_id": str(model_dir),
                    "quantization": "none" if variant == "bf16" else variant,
                    "dtype": "bfloat16",
                },
                "training": {
                    "max_steps": args.steps,
                    "batch_size": args.batch_size,
                    "logging_steps": 5,
                },
            }
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        summary = train_lora(cfg, args.data_dir, work / variant)
        wall = time.perf_counter() - start
        row = {
            "variant": variant,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "steps": summary["steps"],
            "tokens_seen": summary["tokens_seen"],
            "train_runtime_s": summary["train_runtime_s"],
            "tokens_per_s": round(summary["tokens_seen"] / summary["train_runtime_s"], 1),
            "wall_s_with_load": round(wall, 2),
            "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)
            if torch.cuda.is_available()
            else None,
            "first_train_loss": summary["loss_history"]["train_loss"][0][1],
            "final_train_loss": summary["final_train_loss"],
            "final_eval_loss": summary["final_eval_loss"],
            "world_size": summary["world_size"],
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
