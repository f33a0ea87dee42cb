"""GPU check: the llama3 config's finetune and evaluation on a Llama-3.1-8B-shaped random model.

One prepared command for a lent GPU machine (no hub there): builds a random-weight model of
Llama-3.1-8B's architecture with a local tokenizer, prepares ViGGO from a local folder, then
for each variant (bf16 LoRA, and the config's own 4-bit QLoRA) runs `train_lora` (the
`finetune` step's function) with `configs/llama3.yaml`'s settings and scores the adapter on
the full test split with `evaluate_on_split` (the evaluation step's function). Prints one
JSON line per variant and a table:

- useful tokens/s: the rows' own tokens (prompt + target, no padding) per training second;
- useful MFU: useful FLOPs/s over a bf16 matmul peak measured on the same GPU first.
  Useful FLOPs per token count what LoRA training must compute: forward and input-gradient
  passes through the frozen linears (4 x their parameters), forward + both gradients of the
  adapters (6 x theirs) and causal attention (6 x layers x mean length x width). Work that
  tricks skip (a shared prompt prefix) is still counted, recomputation under gradient
  checkpointing is not;
- peak GPU memory of training, and the full-test evaluation's seconds.

    python bench/gpu_check.py --tokenizer TOKENIZER_DIR
    python bench/gpu_check.py --shape tiny --steps 2 --eval-samples 4   # a CPU smoke run

With `--engine vllm` it checks a decoding engine instead (`engine_check`): a short bf16 LoRA
run gives an adapter, which the continuous engine (merged) and vLLM (unmerged, a
`LoRARequest`) then decode greedily on the test split; it prints each engine's seconds and
how many of the first 100 rows' outputs are equal. `--engine generate --shape tiny` is its
CPU smoke run.

Goals on an H100/H200 (issue 16): bf16 LoRA >= 45 % useful MFU, QLoRA >= 30 %, full test
split evaluation <= 10 s. A random model never learns to stop, so its evaluation decodes
every prompt to `max_new_tokens`: an upper bound on what a trained adapter costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.families import SMALL  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.core.names import split_file  # noqa: E402
from utils.data.jsonl import read_jsonl  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.evaluation.evaluator import evaluate_on_split  # noqa: E402
from utils.modeling.loader import load_tokenizer  # noqa: E402
from utils.training.train import train_lora  # noqa: E402

# Llama-3.1-8B's published architecture (config.json of meta-llama/Llama-3.1-8B-Instruct).
SHAPES: dict[str, dict[str, Any]] = {
    "llama3-8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    },
    # The tests' tiny shape (64 wide: bitsandbytes' CPU 4-bit kernels take it), for a CPU
    # smoke run of this script.
    "tiny": {**SMALL, "tie_word_embeddings": True},
}
GOALS = {"bf16": 0.45, "4bit": 0.30}
EVAL_SECONDS_GOAL = 10.0
# `--engine`: greedy outputs compared on the test split's first rows.
COMPARED_ROWS = 100


def random_model(shape: str, tokenizer_dir: Path, out: Path) -> Path:
    """A random-weight Llama of `shape` in bf16, saved with the tokenizer of `tokenizer_dir`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(str(tokenizer_dir))
    dims = dict(SHAPES[shape])
    # A larger vocabulary than the tokenizer's keeps the 8B shape (its logits cost included).
    dims["vocab_size"] = max(dims.get("vocab_size") or 0, len(tok))
    config = LlamaConfig(
        **dims,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def matmul_peak_flops(n: int = 8192, repeats: int = 20) -> float:
    """Measured bf16 matmul FLOP/s of this device (CPU: a smaller float32 product)."""
    if not torch.cuda.is_available():
        n, dtype, device = 512, torch.float32, "cpu"
    else:
        dtype, device = torch.bfloat16, "cuda"
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def useful_flops_per_token(model_dir: Path, trainable: int, mean_length: float) -> float:
    """FLOPs LoRA training must spend per token of `mean_length`-token rows (module doc)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    d, layers, inter = c.hidden_size, c.num_hidden_layers, c.intermediate_size
    kv = c.num_key_value_heads * (d // c.num_attention_heads)
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * inter  # q, o; k, v; gate, up, down
    frozen = layers * per_layer + d * c.vocab_size  # + the output projection
    attention = 6 * layers * mean_length * d  # QK^T and AV over a causal half, fwd + bwd
    return 4 * frozen + 6 * trainable + attention


def run_variant(
    variant: str, args: argparse.Namespace, model_dir: Path, data_dir: Path, work: Path,
    peak: float, mean_length: float,
) -> dict[str, Any]:  # fmt: skip
    overrides = [
        f"model.base_model_id={model_dir}",
        f"training.max_steps={args.steps}",
        "training.eval_steps=null",
        f"evaluation.max_samples={args.eval_samples if args.eval_samples else 'null'}",
    ]
    if variant == "bf16":
        overrides += ["model.quantization=none", "model.dtype=bfloat16"]
    cfg = load_config(args.config, overrides + list(args.set), data_dir=str(data_dir))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    summary = train_lora(cfg, data_dir, work / variant)
    train_peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    # Rows seen x their mean own length: tokens_seen also counts what the collator padded
    # in some paths, and useful MFU must not credit padding.
    rows_seen = (
        summary["steps"] * cfg.training.batch_size * cfg.training.gradient_accumulation_steps
    )
    useful = rows_seen * mean_length
    tok_s = useful / summary["train_runtime_s"]
    flops = useful_flops_per_token(model_dir, summary["trainable_params"], mean_length)
    metrics, _ = evaluate_on_split(
        data_dir, cfg.dataset.task, cfg.model.source(), cfg.evaluation, work / variant
    )
    mfu = tok_s * flops / peak
    return {
        "variant": variant,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "quantization": cfg.model.quantization,
        "gradient_checkpointing": cfg.training.gradient_checkpointing,
        "batch_size": cfg.training.batch_size,
        "steps": summary["steps"],
        "train_runtime_s": summary["train_runtime_s"],
        "useful_tokens_per_s": round(tok_s, 1),
        "useful_tflops_per_s": round(tok_s * flops / 1e12, 2),
        "useful_mfu": round(mfu, 4),
        "mfu_goal": GOALS.get(variant),
        "peak_train_mem_gib": round(train_peak, 2) if train_peak is not None else None,
        "first_train_loss": summary["loss_history"]["train_loss"][0][1]
        if summary["loss_history"]["train_loss"]
        else None,
        "final_train_loss": summary["final_train_loss"],
        "eval_rows": metrics["num_rows"],
        "eval_seconds": metrics["generation_seconds"],
        "eval_new_tokens_per_s": metrics["new_tokens_per_second"],
    }


def engine_check(args: argparse.Namespace, model_dir: Path, data_dir: Path, work: Path) -> None:
    """`args.engine` against the continuous engine on one adapter: seconds for the split,
    and equal greedy outputs on its first `COMPARED_ROWS` rows."""
    import gc

    overrides = [
        f"model.base_model_id={model_dir}",
        f"training.max_steps={args.steps}",
        "training.eval_steps=null",
        "model.quantization=none",
        "model.dtype=bfloat16",
        "evaluation.rerank=null",
        f"evaluation.max_samples={args.eval_samples if args.eval_samples else 'null'}",
    ]
    cfg = load_config(args.config, overrides + list(args.set), data_dir=str(data_dir))
    train_lora(cfg, data_dir, work / "adapter")
    rows, predictions = [], {}
    for engine in ("continuous", args.engine):
        evaluation = cfg.evaluation.model_copy(update={"engine": engine})
        start = time.perf_counter()
        metrics, records = evaluate_on_split(
            data_dir, cfg.dataset.task, cfg.model.source(), evaluation, work / "adapter",
            desc=f"eval {engine}",
        )  # fmt: skip
        predictions[engine] = [r["prediction"] for r in records]
        rows.append(
            {
                "engine": metrics["engine"],
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                "rows": metrics["num_rows"],
                "distinct_prompts": metrics["distinct_prompts"],
                "eval_seconds": metrics["generation_seconds"],
                "wall_seconds_with_load": round(time.perf_counter() - start, 1),
                "new_tokens_per_s": metrics["new_tokens_per_second"],
                "rougeL": round(metrics.get("rougeL", float("nan")), 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        # The next engine needs the GPU's memory (vLLM takes most of what is free).
        del metrics, records
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    a, b = predictions["continuous"][:COMPARED_ROWS], predictions[args.engine][:COMPARED_ROWS]
    equal = sum(x == y for x, y in zip(a, b, strict=True))
    differing = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    summary = {
        "compared_rows": len(a),
        "equal_greedy_outputs": equal,
        "all_equal": equal == len(a),
        "first_differing_rows": differing[:5],
        "speedup": round(rows[0]["eval_seconds"] / rows[1]["eval_seconds"], 2)
        if rows[1]["eval_seconds"]
        else None,
    }
    for i in differing[:3]:
        print(json.dumps({"row": i, "continuous": a[i], args.engine: b[i]}), flush=True)
    print(json.dumps(summary), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"engines": rows, **summary}, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--tokenizer", type=Path, help="tokenizer folder (default: SmolLM2's)")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "llama3.yaml")
    p.add_argument("--shape", choices=sorted(SHAPES), default="llama3-8b")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--variants", default="bf16,4bit")
    p.add_argument("--eval-samples", type=int, help="default: the full test split")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, help="write the rows as JSON here")
    p.add_argument(
        "--engine",
        choices=["vllm", "generate"],
        help="check this decoding engine against the continuous one instead of training",
    )
    args = p.parse_args()
    if args.engine == "vllm":
        from utils.inference.vllm_engine import vllm_problem

        problem = vllm_problem()
        if problem:
            sys.exit(f"gpu_check: {problem}")
    if args.tokenizer is None:
        from utils.modeling.resolve import resolve_model_path

        args.tokenizer = Path(resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct"))
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    model_dir = random_model(args.shape, args.tokenizer, work / "model")
    base = load_config(args.config, list(args.set), data_dir=str(args.data_dir))
    prepared = work / "data"
    prepare_dataset(base.dataset, load_tokenizer(str(model_dir)), prepared)
    # No validation split: the Trainer's eval-loss pass would count as training time.
    (prepared / split_file("validation")).unlink(missing_ok=True)
    lengths = [len(r["input_ids"]) for r in read_jsonl(prepared / split_file("train"))]
    mean_length = sum(lengths) / len(lengths)
    if args.engine:
        engine_check(args, model_dir, prepared, work)
        return
    peak = matmul_peak_flops()
    print(json.dumps({"matmul_peak_tflops": round(peak / 1e12, 1)}), flush=True)
    rows = []
    for variant in args.variants.split(","):
        row = run_variant(variant, args, model_dir, prepared, work, peak, mean_length)
        row["matmul_peak_tflops"] = round(peak / 1e12, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| variant | tokens/s | useful MFU (goal) | peak mem GiB | eval s (goal 10) |")
    print("|---|---|---|---|---|")
    for r in rows:
        goal = f"{r['mfu_goal']:.0%}" if r["mfu_goal"] else "-"
        print(
            f"| {r['variant']} | {r['useful_tokens_per_s']} | {r['useful_mfu']:.1%} ({goal}) | "
            f"{r['peak_train_mem_gib']} | {r['eval_seconds']} ({EVAL_SECONDS_GOAL:g}) |"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
