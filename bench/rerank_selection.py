"""Which rerank selection rule scores best: the same candidates, each rule's pick, scored.

Draws greedy plus `--candidates` sampled outputs of every distinct input of a split once
(the rerank's own sampling), then scores what each rule would have chosen from them:

- greedy: the greedy output;
- score, failing, stop after n pass: `rerank: {stop_after_passing: n}` (1 is the default):
  a failing input's draws in waves of two up to the wave that brings its error-free
  candidates to n, the highest model score of the fewest-error ones wins;
- score, failing, every draw: `rerank: {stop_after_passing: null}`;
- score, all inputs: `rerank: {select: score, only_failing: false}`;
- consensus: `rerank: {select: consensus}` (minimum Bayes risk by ROUGE-L), and by sentence
  BLEU or chrF (`consensus_metric: bleu | chrf`).

The draws are seeded as the evaluation seeds them (seed, prompt, j), so the first k of
`--candidates` are what a cap of k draws: `--caps 4,8,16` scores each rule at each cap from
one decode, with the number of candidates each rule would have drawn (its cost). `--draws
FILE` keeps the decoded draws, and reads them back when the file exists, to score other
rules or caps without decoding again. Tune on validation, confirm on test:

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

from utils.config import PipelineConfig, load_config  # noqa: E402
from utils.core.names import split_file  # noqa: E402
from utils.data.jsonl import read_jsonl  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.evaluation.evaluator import length_references, select_rows  # noqa: E402
from utils.inference.candidates import CandidatePool, InputDraws, output_errors  # noqa: E402
from utils.inference.engine import Sampling  # noqa: E402
from utils.inference.stops import max_new_tokens_for  # noqa: E402
from utils.inference.transformers_engine import generate  # noqa: E402
from utils.metrics.task_metrics import compute_metrics  # noqa: E402
from utils.modeling.loader import load_model, load_tokenizer  # noqa: E402

SHOWN = ("rougeL", "multiref_rougeL", "multiref_bleu", "ser", "exact_match", "slot_f1")


Candidate = tuple[str, int, float]  # text, errors, score


def _pool(
    greedy: Candidate, drawn: list[Candidate], stop_after: int | None
) -> tuple[CandidatePool, int]:
    """The pool a rule sees, and how many draws it would have decoded (`InputDraws`' rule)."""
    pool, draws = CandidatePool(*greedy), InputDraws(stop_after)
    for j, candidate in enumerate(drawn):
        draws.record(j, *candidate)
    draws.settle(pool)
    return pool, sum(draws.wanted(j) for j in range(len(drawn)))


def _rules(
    greedy: Candidate, drawn: list[Candidate], caps: list[int], stops: list[int]
) -> dict[str, tuple[str, int]]:
    """Each rule's pick for one input, and the candidates it drew."""
    text, errors, _ = greedy
    picks: dict[str, tuple[str, int]] = {"greedy": (text, 0)}
    for k in caps:
        pools = {f"stop after {n} pass": _pool(greedy, drawn[:k], n) for n in stops}
        pools["every draw"] = _pool(greedy, drawn[:k], None)
        for name, (pool, cost) in pools.items():
            pick = (text, 0) if errors == 0 else (pool.choice("score").text, cost)
            picks[f"score, failing, {name}, <= {k}"] = pick
        every = pools["every draw"][0]  # what the rules drawing for every input see
        picks[f"score, all inputs, {k}"] = (every.choice("score").text, k)
        for metric in ("rougeL", "bleu", "chrf"):
            picks[f"consensus by {metric}, {k}"] = (every.choice("consensus", metric).text, k)
    return picks


def _decode(args: argparse.Namespace, cfg: PipelineConfig, rows: list[dict], data: Path) -> dict:
    """Greedy and `--candidates` draws of each distinct prompt of `rows`, with seconds."""
    rerank = cfg.evaluation.rerank
    assert rerank is not None
    model, tok = load_model(cfg.model.source(), adapter=args.adapter, padding_side="left")
    max_new = max_new_tokens_for(tok, length_references(data, rows))
    prompts, batch = list(dict.fromkeys(r["prompt"] for r in rows)), cfg.evaluation.batch_size
    start = time.perf_counter()
    greedy = generate(model, tok, prompts, batch, max_new, "greedy", stop_at_newline=True,
                      scores=True)  # fmt: skip
    greedy_seconds = time.perf_counter() - start
    sampling = Sampling(args.temperature or rerank.temperature, rerank.top_p, seed=rerank.seed)
    waves = [q for _ in range(args.candidates) for q in prompts]
    drawn = generate(model, tok, waves, batch, max_new, "candidates", stop_at_newline=True,
                     sampling=sampling)  # fmt: skip
    drawn_of: dict[str, list] = {q: [] for q in prompts}
    for j, (text, score) in enumerate(zip(drawn.texts, drawn.scores, strict=True)):
        drawn_of[prompts[j % len(prompts)]].append((text, score))
    return {
        "adapter": str(args.adapter),
        "split": args.split,
        "temperature": sampling.temperature,
        "greedy_seconds": round(greedy_seconds, 1),
        "candidate_seconds": round(time.perf_counter() - start - greedy_seconds, 1),
        "greedy": {q: [t, s] for q, t, s in zip(prompts, greedy.texts, greedy.scores, strict=True)},
        "drawn": drawn_of,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT / "data" / "viggo")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--adapter", type=Path, required=True, help="LoRA adapter folder")
    p.add_argument("--split", default="validation", choices=["validation", "test"])
    p.add_argument("--max-samples", type=int, help="default: every row of the split")
    p.add_argument("--candidates", type=int, default=8, help="draws of every input")
    p.add_argument(
        "--caps",
        help="comma-separated caps <= --candidates to score each rule at (default: --candidates)",
    )
    p.add_argument("--stop-after", default="1,2,3", help="stop_after_passing values to score")
    p.add_argument("--temperature", type=float, help="default: the config's rerank temperature")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--draws", type=Path, help="keep the decoded draws here; read if it exists")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args()
    caps = [int(k) for k in args.caps.split(",")] if args.caps else [args.candidates]
    if any(not 0 < k <= args.candidates for k in caps):
        p.error(f"--caps {args.caps}: each cap must be between 1 and --candidates")
    stops = [int(n) for n in args.stop_after.split(",")]

    overrides = ["dataset.max_validation_samples=null", "evaluation.rerank={}", *args.overrides]
    cfg = load_config(args.config, overrides, str(args.data_dir))
    task = cfg.dataset.task
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        prepare_dataset(cfg.dataset, load_tokenizer(str(args.adapter)), data)
        rows = select_rows(read_jsonl(data / split_file(args.split)), args.max_samples)
        if args.draws and args.draws.exists():
            decoded = json.loads(args.draws.read_text())
        else:
            decoded = _decode(args, cfg, rows, data)
            if args.draws:
                args.draws.write_text(json.dumps(decoded) + "\n")
    task_input = {r["prompt"]: r["input"] for r in rows}
    prompts = list(task_input)
    if set(decoded["greedy"]) != set(prompts) or decoded["split"] != args.split:
        p.error(f"--draws {args.draws}: drawn for other rows than --split/--max-samples")
    if any(len(decoded["drawn"][q]) < args.candidates for q in prompts):
        p.error(f"--draws {args.draws}: fewer than --candidates {args.candidates} draws")
    picks = {}
    for q in prompts:
        drawn = [(t, output_errors(task, task_input[q], t), s) for t, s in decoded["drawn"][q]]
        text, score = decoded["greedy"][q]
        first = (text, output_errors(task, task_input[q], text), score)
        picks[q] = _rules(first, drawn[: args.candidates], caps, stops)
    inputs, targets = [r["input"] for r in rows], [r["target"] for r in rows]
    results = {}
    for rule in picks[prompts[0]]:
        outputs = [picks[r["prompt"]][rule][0] for r in rows]
        metrics = compute_metrics(task, inputs, outputs, targets)
        results[rule] = {k: round(metrics[k], 4) for k in SHOWN if k in metrics}
        results[rule]["candidates_drawn"] = sum(picks[q][rule][1] for q in prompts)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in results[rule].items() if k in SHOWN)
        print(f"{rule:40s} {shown}  candidates {results[rule]['candidates_drawn']}")
    record = {
        "adapter": decoded["adapter"],
        "split": args.split,
        "rows": len(rows),
        "distinct_inputs": len(prompts),
        "candidates": args.candidates,
        "temperature": decoded["temperature"],
        "greedy_seconds": decoded["greedy_seconds"],
        "candidate_seconds": decoded["candidate_seconds"],
        "results": results,
    }
    print(json.dumps(record))
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
