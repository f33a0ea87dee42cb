"""How many tokens per decode step speculative steps would give on real outputs, without a
model: replays a predictions file (`bench/eval_throughput.py --predictions`) through
`utils.inference.draft_index.DraftIndex` in the order of the file, each output guessed from
its prompt and the outputs before it, as a service sees its requests one by one.

    python bench/draft_replay.py --predictions preds.jsonl --adapter DIR
    python bench/draft_replay.py --predictions preds.jsonl --guess 1 2 4 8
    python bench/draft_replay.py --predictions preds.jsonl --prompt-only

A step keeps the guessed tokens up to the first one the output does not have, plus the
model's own next token: exactly what `utils.inference.speculative.verify_step` keeps when
the outputs are the model's greedy ones. Prints one JSON line per guess length.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.cli.common import add_model_source_args  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.data.jsonl import read_jsonl  # noqa: E402
from utils.data.prompts import build_prompt, encode_prompt, system_prompt_for  # noqa: E402
from utils.inference.draft_index import DraftIndex  # noqa: E402
from utils.modeling.loader import load_tokenizer  # noqa: E402
from utils.modeling.resolve import resolve_model_path  # noqa: E402


def steps(prompt: list[int], output: list[int], drafts: DraftIndex, k: int) -> int:
    """Decode steps `output` takes after its first token (which the prefill gives)."""
    done, n = 1, 0
    while done < len(output):
        guess = drafts.guess(prompt + output[:done], min(k, len(output) - done - 1))
        kept = 0
        while kept < len(guess) and guess[kept] == output[done + kept]:
            kept += 1
        done += kept + 1
        n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_source_args(p)
    p.add_argument("--predictions", type=Path, required=True, help="input/prediction JSON lines")
    p.add_argument("--guess", type=int, nargs="+", default=[4], help="tokens guessed per step")
    p.add_argument("--prompt-only", action="store_true", help="guess from each row's own context")
    args = p.parse_args()
    cfg = load_config(args.config)
    tok = load_tokenizer(str(args.adapter or resolve_model_path(cfg.model.base_model_id)))
    system = system_prompt_for(cfg.dataset.task, cfg.dataset.system_prompt)
    rows = {r["input"]: r["prediction"] for r in read_jsonl(args.predictions)}  # distinct
    pairs = [
        (
            encode_prompt(tok, build_prompt(tok, text, system, cfg.dataset.enable_thinking)),
            [*tok.encode(prediction, add_special_tokens=False), tok.eos_token_id],
        )
        for text, prediction in rows.items()
    ]
    for k in args.guess:
        drafts, total_steps, tokens = DraftIndex(), 0, 0
        for prompt, output in pairs:
            total_steps += steps(prompt, output, drafts, k)
            tokens += len(output) - 1
            if not args.prompt_only:
                drafts.learn(output)
        print(
            json.dumps(
                {
                    "predictions": str(args.predictions),
                    "outputs": len(pairs),
                    "guess": k,
                    "from": "own context" if args.prompt_only else "own context, earlier outputs",
                    "tokens_after_the_first": tokens,
                    "decode_steps": total_steps,
                    "tokens_per_step": round(tokens / max(total_steps, 1), 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
