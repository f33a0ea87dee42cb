"""Which rerank selection rule scores best: the same candidates, each rule's pick, scored.

Draws greedy plus `--candidates` sampled outputs of every distinct input of a split once
(the rerank's own sampling), then scores what each rule would have chosen from them:

- greedy: the greedy output;
- score, failing inputs: `rerank: {select: score}` (the default rule, `only_failing`);
- score, all inputs: `rerank: {select: score, only_failing: false}`;
- consensus: `rerank: {select: consensus}` (minimum Bayes risk by ROUGE-L), and by sentence
  BLEU or chrF (`consensus_metric: bleu | chrf`).

Candidates beyond what a rule would draw are never shown to it except where the rule
draws for every input; "score, failing inputs" sees all candidates of a failing input, the
upper bound of what its waves would draw. Tune on validation, confirm on test:

    python bench/rerank_selection.py --adapter DIR --split validation --candidates 8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.config import load_config  # noqa: E402
from utils.core.names import split_file  # noqa: E402
from utils.data.jsonl import read_jsonl  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.evaluation.evaluator import length_references, select_rows  # noqa: E402
from utils.inference.candidates import CandidatePool, output_errors  # noqa: E402
from utils.inference.engine import Sampling  # noqa: E402
from utils.inference.stops import max_new_tokens_for  # noqa: E402
from utils.inference.transformers_engine import generate  # noqa: E402
from utils.metrics.task_metrics import compute_metrics  # noqa: E402
from utils.modeling.loader import load_model, load_tokenizer  # noqa: E402

SHOWN = ("rougeL", "multiref_rougeL", "multiref_bleu", "ser", "exact_match", "slot_f1")


def _rules(pool: CandidatePool) -> dict[str, str]:
    greedy = pool.candidates[0]
    return {
        "greedy": greedy.text,
        "score, failing inputs": greedy.text if greedy.errors == 0 else pool.choice("score").text,
        "score, all inputs": pool.choice("score").text,
        "consensus": pool.choice("consensus").text,
        "consensus by bleu": pool.choice("consensus", "bleu").text,
        "consensus by chrf": pool.choice("consensus", "chrf").text,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--adapter", type=Path, required=True, help="LoRA adapter folder")
    p.add_argument("--split", default="validation", choices=["validation", "test"])
    p.add_argument("--max-samples", type=int, help="default: every row of the split")
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--temperature", type=float, help="default: the config's rerank temperature")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args()

    overrides = ["dataset.max_validation_samples=null", "evaluation.rerank={}", *args.overrides]
    cfg = load_config(args.config, overrides, str(args.data_dir))
    rerank = cfg.evaluation.rerank
    task, batch = cfg.dataset.task, cfg.evaluation.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare_dataset(cfg.dataset, load_tokenizer(str(args.adapter)), data)
        rows = select_rows(read_jsonl(data / split_file(args.split)), args.max_samples)
        model, tok = load_model(cfg.model.source(), adapter=args.adapter, padding_side="left")
        max_new = max_new_tokens_for(tok, length_references(data, rows))
    task_input = {r["prompt"]: r["input"] for r in rows}
    prompts = list(task_input)
    start = time.perf_counter()
    greedy = generate(model, tok, prompts, batch, max_new, "greedy", stop_at_newline=True,
                      scores=True)  # fmt: skip
    greedy_seconds = time.perf_counter() - start
    sampling = Sampling(args.temperature or rerank.temperature, rerank.top_p, seed=rerank.seed)
    waves = [q for _ in range(args.candidates) for q in prompts]
    drawn = generate(model, tok, waves, batch, max_new, "candidates", stop_at_newline=True,
                     sampling=sampling)  # fmt: skip
    sample_seconds = time.perf_counter() - start - greedy_seconds
    pools = {}
    for q, text, score in zip(prompts, greedy.texts, greedy.scores, strict=True):
        pools[q] = CandidatePool(text, output_errors(task, task_input[q], text), score)
    for j, (text, score) in enumerate(zip(drawn.texts, drawn.scores, strict=True)):
        q = prompts[j % len(prompts)]
        pools[q].offer(text, output_errors(task, task_input[q], text), score)
    picks = {q: _rules(pool) for q, pool in pools.items()}
    inputs, targets = [r["input"] for r in rows], [r["target"] for r in rows]
    results = {}
    for rule in picks[prompts[0]]:
        metrics = compute_metrics(task, inputs, [picks[r["prompt"]][rule] for r in rows], targets)
        results[rule] = {k: round(metrics[k], 4) for k in SHOWN if k in metrics}
        print(f"{rule:22s} " + "  ".join(f"{k} {v:.4f}" for k, v in results[rule].items()))
    record = {
        "adapter": str(args.adapter),
        "split": args.split,
        "rows": len(rows),
        "distinct_inputs": len(prompts),
        "candidates": args.candidates,
        "temperature": sampling.temperature,
        "greedy_seconds": round(greedy_seconds, 1),
        "candidate_seconds": round(sample_seconds, 1),
        "results": results,
    }
    print(json.dumps(record))
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
