"""Slot-aware decoding: greedy first, then candidates for the inputs whose output fails the
task's check, and the candidate with the fewest errors wins; among those, the highest model
score (`select: score`) or the one the input's other candidates agree with most (`select:
consensus`, minimum-Bayes-risk with ROUGE-L, which drawing for every input pays for).

The check is the one the scorer uses: ViGGO slot errors (missing, wrong, hallucinated) of
a sentence against its MR for data_to_text, and "does it parse as an MR" for text_to_mr.
The greedy output is always a candidate, so the chosen output never has more errors than
greedy. With `only_failing` (default) an input whose greedy output has no error keeps it:
no candidate can have fewer errors, and greedy is close to the highest-scoring output.

Sampled candidates are drawn in waves inside one continuous decode: two candidates of every
failing input, then two more, ...; an input stops drawing once a candidate passes the check,
so easy inputs cost two candidates and only hard ones reach `candidates`. The two of a wave
start together and share one prefill of their prompt (on a CPU the prefill is about half of
a candidate's cost).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from utils.config import RerankSection
from utils.core.names import ENGINE
from utils.core.tasks import TaskName
from utils.evaluation.text_metrics import rouge_l
from utils.inference.continuous import Watch
from utils.inference.decoding import Sampling
from utils.inference.generation import Generations, beam_candidates, decoded_text, generate
from utils.inference.kv_cache import plain_cache_fallback
from utils.viggo import parse_mr, slot_errors, try_parse_mr

logger = logging.getLogger(__name__)


def _slot_errors(mr: str, sentence: str) -> int:
    return slot_errors(parse_mr(mr), sentence).errors


def _parse_errors(_sentence: str, mr: str) -> int:
    return int(try_parse_mr(mr) is None)


# (task input, output) -> number of errors the task's check finds.
CHECKS: dict[str, Callable[[str, str], int]] = {
    TaskName.DATA_TO_TEXT: _slot_errors,
    TaskName.TEXT_TO_MR: _parse_errors,
}


def output_errors(task: str, task_input: str, output: str) -> int:
    try:
        check = CHECKS[task]
    except KeyError:
        raise ValueError(f"task {task!r} has no output check to rerank by") from None
    return check(task_input, output)


@dataclass
class _Candidate:
    text: str
    errors: int
    score: float


class CandidatePool:
    """An input's candidates (greedy first); `choice` applies `RerankSection.select`."""

    def __init__(self, text: str, errors: int, score: float) -> None:
        self.candidates = [_Candidate(text, errors, score)]
        self.errors = errors  # the fewest errors of any candidate so far

    def offer(self, text: str, errors: int, score: float) -> None:
        self.candidates.append(_Candidate(text, errors, score))
        self.errors = min(self.errors, errors)

    def choice(self, select: str) -> _Candidate:
        fewest = [c for c in self.candidates if c.errors == self.errors]
        if select == "score" or len(fewest) == 1:
            return max(fewest, key=lambda c: c.score)
        # Minimum Bayes risk: every candidate (errors or not) is evidence of what the model
        # would say; duplicates count as the support they are. ROUGE-L F is symmetric.
        texts = [c.text for c in self.candidates]
        agreement = {
            text: sum(rouge_l(text, other) for other in texts)
            for text in dict.fromkeys(c.text for c in fewest)
        }
        return max(fewest, key=lambda c: (agreement[c.text], c.score))


@dataclass
class Reranked:
    generations: Generations  # the chosen texts, in prompt order
    greedy_texts: list[str] | None  # what greedy decoding gave; None when nothing reranked
    stats: dict[str, Any] = field(default_factory=dict)


def describe(rerank: RerankSection | None) -> str:
    """How outputs were decoded, for the metrics (e.g. `rerank:sample up to 8, failing
    inputs`)."""
    if rerank is None:
        return "greedy"
    which = "failing inputs" if rerank.only_failing else "all inputs"
    how = "" if rerank.select == "score" else f", {rerank.select}"
    return f"rerank:{rerank.method} up to {rerank.candidates}, {which}{how}"


class _Draws(Watch):
    """Candidate rows `j * n + i` (draw j of input i): waves of `PER_WAVE` draws per input in
    draw order, and an input's later draws are dropped once one of its candidates has no
    error."""

    PER_WAVE = 2

    def __init__(
        self,
        inputs: list[str],
        best: list[CandidatePool],
        task: str,
        decode: Any,
        until_passing: bool,
    ) -> None:
        self.inputs, self.best, self.task, self.decode = inputs, best, task, decode
        self.until_passing = until_passing
        self.drawn = 0

    def order(self, row: int, length: int) -> tuple[int, ...]:
        # By wave, then by length (similar lengths prefill together), then by input (the
        # draws of one input sit side by side, so a refill takes them together).
        n = len(self.inputs)
        return (row // n // self.PER_WAVE, -length, row % n)

    def finished(self, row: int, tokens: list[int], mean_logprob: float) -> None:
        i = row % len(self.inputs)
        text = self.decode(tokens)
        self.best[i].offer(text, output_errors(self.task, self.inputs[i], text), mean_logprob)
        self.drawn += 1

    def wanted(self, row: int) -> bool:
        return not self.until_passing or self.best[row % len(self.inputs)].errors > 0


def decode_outputs(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    inputs: list[str],
    task: str,
    rerank: RerankSection | None,
    *,
    batch_size: int,
    max_new_tokens: int,
    engine: str = "continuous",
    stop_at_newline: bool = True,
    desc: str = "generate",
) -> Reranked:
    """The evaluation's decoding, for evaluation and for `run.py generate` alike: greedy, or
    greedy reranked by the task's output check when `rerank` is set."""
    if rerank is not None:
        return generate_reranked(
            model, tokenizer, prompts, inputs, task, rerank, batch_size=batch_size,
            max_new_tokens=max_new_tokens, engine=engine, stop_at_newline=stop_at_newline,
            desc=desc,
        )  # fmt: skip
    generations = generate(
        model, tokenizer, prompts, batch_size, max_new_tokens, desc, engine, stop_at_newline
    )
    return Reranked(generations, None, {"decoding": describe(None), ENGINE: generations.engine})


def generate_reranked(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    inputs: list[str],
    task: str,
    rerank: RerankSection,
    *,
    batch_size: int,
    max_new_tokens: int,
    engine: str = "continuous",
    stop_at_newline: bool = True,
    desc: str = "generate",
) -> Reranked:
    """Greedy outputs of `prompts`, replaced where a candidate has fewer errors.

    `inputs[i]` is the task input behind `prompts[i]` (the MR for data_to_text), which the
    check reads. Identical prompts get the same output.
    """
    start = time.perf_counter()
    greedy = generate(
        model, tokenizer, prompts, batch_size, max_new_tokens, desc, engine, stop_at_newline,
        scores=True,
    )  # fmt: skip
    greedy_seconds = time.perf_counter() - start
    by_prompt = dict(zip(prompts, zip(inputs, greedy.texts, strict=True), strict=True))
    unique = list(by_prompt)
    # Greedy from the generate engine has no score: it then wins only on errors and ties.
    greedy_scores = dict(zip(prompts, greedy.scores or [0.0] * len(prompts), strict=True))
    best = {
        p: CandidatePool(text, output_errors(task, x, text), greedy_scores[p])
        for p, (x, text) in by_prompt.items()
    }
    todo = [p for p in unique if best[p].errors > 0 or not rerank.only_failing]
    drawn, new_tokens, decoding = 0, greedy.new_tokens, describe(rerank)
    beams = rerank.method == "beam"
    if todo and not beams:
        # Sampling runs in the continuous engine; other caches get beams instead.
        problem = plain_cache_fallback(model, "sampled candidates", "beam search candidates")
        if problem is not None:
            beams, decoding = True, f"{decoding} (fallback: beam, {problem})"
    if todo:
        args = (model, tokenizer, todo, [by_prompt[p][0] for p in todo], [best[p] for p in todo])
        drawn, tokens = _draw(
            *args, task, rerank, beams, batch_size, max_new_tokens, stop_at_newline, desc
        )
        new_tokens += tokens
    chosen = {p: best[p].choice(rerank.select) for p in unique}
    rerank_seconds = time.perf_counter() - start - greedy_seconds
    changed = sum(chosen[p].text != by_prompt[p][1] for p in unique)
    stats = {
        "decoding": decoding,
        ENGINE: greedy.engine,
        # The greedy pass is the greedy evaluation: their ratio is what reranking costs.
        "greedy_seconds": round(greedy_seconds, 2),
        "rerank_seconds": round(rerank_seconds, 2),
        "rerank_inputs_resampled": len(todo),
        "rerank_candidates_drawn": drawn,
        "rerank_changed": changed,
        "rerank_still_failing": sum(best[p].errors > 0 for p in unique),
    }
    logger.info(
        "%s: %d of %d inputs resampled, %d candidates, %d outputs changed from greedy "
        "(greedy %.1f s, candidates %.1f s)",
        decoding, len(todo), len(unique), drawn, changed, greedy_seconds,
        rerank_seconds,
    )  # fmt: skip
    generations = Generations(
        texts=[chosen[p].text for p in prompts],
        new_tokens=new_tokens,
        distinct_prompts=len(unique),
        scores=[chosen[p].score for p in prompts],
        engine=greedy.engine,
    )
    return Reranked(generations, greedy.texts, stats)


def _draw(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    inputs: list[str],
    best: list[CandidatePool],
    task: str,
    rerank: RerankSection,
    beams: bool,
    batch_size: int,
    max_new_tokens: int,
    stop_at_newline: bool,
    desc: str,
) -> tuple[int, int]:
    """Offers candidates of `prompts` to `best` (beam search, or sampled); returns
    (candidates drawn, their tokens)."""
    k = rerank.candidates
    if beams:
        found, tokens = beam_candidates(
            model, tokenizer, prompts, k, max_new_tokens, stop_at_newline, f"{desc} beams"
        )
        for b, x, options in zip(best, inputs, found, strict=True):
            for text, score in options:
                b.offer(text, output_errors(task, x, text), score)
        return sum(len(o) for o in found), tokens
    draws = _Draws(
        inputs, best, task, lambda ids: decoded_text(tokenizer, ids, stop_at_newline),
        # Without only_failing every input draws all its candidates: an error-free one may
        # still be beaten on model score.
        until_passing=rerank.only_failing,
    )  # fmt: skip
    waves = [p for _ in range(k) for p in prompts]
    sampling = Sampling(rerank.temperature, rerank.top_p, seed=rerank.seed)
    drawn = generate(
        model, tokenizer, waves, batch_size, max_new_tokens, f"{desc} candidates",
        sampling=sampling, stop_at_newline=stop_at_newline, watch=draws,
    )  # fmt: skip
    return draws.drawn, drawn.new_tokens
