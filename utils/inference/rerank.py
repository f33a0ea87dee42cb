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
failing input, then two more, ...; an input stops drawing once `stop_after_passing` of its
candidates pass the check (default 1: easy inputs cost two candidates and only hard ones
reach `candidates`), or draws all of them (null), and the best wins. The two of a wave
start together and share one prefill of their prompt (on a CPU the prefill is about half
of a candidate's cost). An input's j-th candidate is seeded by (`rerank.seed`, its prompt,
j) (`utils.inference.engine.draw_seed`): its reranked output is the same whatever else is
decoded with it (the whole test split, or one served request).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from utils.config import RerankSection
from utils.core.errors import UserError
from utils.core.names import ENGINE
from utils.inference.candidates import CandidatePool, InputDraws, output_errors
from utils.inference.engine import Engine, Generations, Sampling, Watch

logger = logging.getLogger(__name__)


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
    if rerank.only_failing and rerank.stop_after_passing is None:
        which += ", every draw"
    elif rerank.only_failing and rerank.stop_after_passing != 1:
        which += f", until {rerank.stop_after_passing} pass"
    how = "" if rerank.select == "score" else f", {rerank.select}"
    if rerank.select == "consensus" and rerank.consensus_metric != "rougeL":
        how += f" by {rerank.consensus_metric}"
    return f"rerank:{rerank.method} up to {rerank.candidates}, {which}{how}"


class _Draws(Watch):
    """Candidate rows `j * n + i` (draw j of input i), each input's draws counted by
    `InputDraws`: later waves are not started once an earlier one passed (`wanted`), and
    those that ran anyway (started alongside, in a large batch) are not offered (`settle`).
    So what an input gets never depends on how many rows shared its decode: served alone
    or with the whole test split, it chooses among the same candidates."""

    def __init__(
        self,
        inputs: list[str],
        best: list[CandidatePool],
        task: str,
        stop_after: int | None,
    ) -> None:
        self.inputs, self.best, self.task = inputs, best, task
        self.drawn = 0
        self._draws = [InputDraws(stop_after) for _ in inputs]

    def order(self, row: int, length: int) -> tuple[int, ...]:
        # By wave, then by length (similar lengths prefill together), then by input (the
        # draws of one input sit side by side, so a refill takes them together).
        n = len(self.inputs)
        return (InputDraws.wave(row // n), -length, row % n)

    def finished(self, row: int, text: str, mean_logprob: float) -> None:
        n = len(self.inputs)
        errors = output_errors(self.task, self.inputs[row % n], text)
        self._draws[row % n].record(row // n, text, errors, mean_logprob)
        self.drawn += 1

    def wanted(self, row: int) -> bool:
        n = len(self.inputs)
        return self._draws[row % n].wanted(row // n)

    def settle(self, inputs: set[int] | None = None) -> None:
        """Offer each input's counted candidates to its pool, in draw order (only those of
        `inputs`, by index, when given)."""
        for i, draws in enumerate(self._draws):
            if inputs is None or i in inputs:
                draws.settle(self.best[i])


class _WithGreedy(Watch):
    """Rows 0..n-1 decode each input's greedy output; rows n.. its candidates, numbered as
    `_Draws` numbers them. An input whose greedy output passes stops its candidates, waiting
    or running (with `only_failing`), and which candidates count is `_Draws`' rule, so the
    outputs are those of greedy first and candidates after."""

    def __init__(self, draws: _Draws, only_failing: bool) -> None:
        self.draws, self.n, self.only_failing = draws, len(draws.inputs), only_failing
        self.greedy_out: list[tuple[str, float]] = [("", 0.0)] * self.n
        self._passed = [False] * self.n

    def greedy(self, row: int) -> bool:
        return row < self.n

    def order(self, row: int, length: int) -> tuple[int, ...]:
        return (-1, -length, row) if row < self.n else self.draws.order(row - self.n, length)

    def finished(self, row: int, text: str, mean_logprob: float) -> None:
        if row >= self.n:
            self.draws.finished(row - self.n, text, mean_logprob)
            return
        self.greedy_out[row] = (text, mean_logprob)
        self._passed[row] = output_errors(self.draws.task, self.draws.inputs[row], text) == 0

    def wanted(self, row: int) -> bool:
        if row < self.n:
            return True
        if self.only_failing and self._passed[(row - self.n) % self.n]:
            return False
        return self.draws.wanted(row - self.n)


def _decoded_together(
    engine: Engine,
    unique: list[str],
    inputs: list[str],
    task: str,
    rerank: RerankSection,
    batch_size: int,
    max_new_tokens: int,
    desc: str,
) -> tuple[Generations, _Draws] | None:
    """Greedy outputs of the distinct prompts `unique` decoded together with their sampled
    candidates, where the decode is small enough (`rerank.together_rows`: a served request
    whose greedy output fails then waits for one decode, not greedy and then draws) and the
    engine can; else None. The draws come back unsettled, their pools not yet set."""
    rows = len(unique) * (1 + rerank.candidates)
    if (
        rerank.method != "sample"
        or not engine.steerable
        or rows > min(rerank.together_rows, batch_size)
        or engine.sampling_problem() is not None
    ):
        return None
    draws = _Draws(inputs, [], task, rerank.stop_after_passing)
    watch = _WithGreedy(draws, bool(rerank.only_failing))
    all_rows = unique + [p for _ in range(rerank.candidates) for p in unique]
    sampling = Sampling(rerank.temperature, rerank.top_p, seed=rerank.seed)
    decoded = engine.generate(
        all_rows, sampling, batch_size=batch_size, max_new_tokens=max_new_tokens, watch=watch,
        desc=desc,
    )  # fmt: skip
    texts = [text for text, _ in watch.greedy_out]
    scores = [score for _, score in watch.greedy_out]
    greedy = Generations(texts, decoded.new_tokens, len(unique), scores, decoded.engine)
    return greedy, draws


def generate_reranked(
    engine: Engine,
    prompts: list[str],
    inputs: list[str],
    task: str,
    rerank: RerankSection,
    *,
    batch_size: int,
    max_new_tokens: int,
    desc: str = "generate",
    grammars: Mapping[str, str] | None = None,
) -> Reranked:
    """Greedy outputs of `prompts`, replaced where a candidate has fewer errors.

    `inputs[i]` is the task input behind `prompts[i]` (the MR for data_to_text), which the
    check reads. Identical prompts get the same output. `grammars` constrain greedy
    outputs and sampled candidates alike (`Engine.generate`).
    """
    start = time.perf_counter()
    input_of = dict(zip(prompts, inputs, strict=True))
    # Constrained rows decode as they always do: greedy first, candidates after.
    together = None
    if grammars is None:
        together = _decoded_together(
            engine, list(input_of), list(input_of.values()), task, rerank, batch_size,
            max_new_tokens, desc,
        )  # fmt: skip
    if together is not None:
        # Per distinct prompt, in prompt order: what a greedy decode of `prompts` returns.
        unique_greedy, early = together
        at = {p: i for i, p in enumerate(input_of)}
        greedy = Generations(
            [unique_greedy.texts[at[p]] for p in prompts], unique_greedy.new_tokens,
            len(at), [unique_greedy.scores[at[p]] for p in prompts], unique_greedy.engine,
        )  # fmt: skip
    else:
        early = None
        greedy = engine.generate(
            prompts, batch_size=batch_size, max_new_tokens=max_new_tokens, scores=True,
            desc=desc, grammars=grammars,
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
        # An engine that cannot sample for this model (e.g. a cache the continuous loop
        # cannot splice) gives beams instead.
        problem = engine.sampling_problem()
        if problem is not None:
            beams, decoding = True, f"{decoding} (fallback: beam, {problem})"
    if todo and beams and grammars is not None:
        raise UserError(
            f"{decoding}: beam search candidates cannot be constrained by "
            "evaluation.constrain; set evaluation.rerank: null (constrained greedy) or "
            "evaluation.constrain: null"
        )
    if early is not None:
        # The candidates were decoded beside greedy: count those of the failing inputs.
        early.best = [best[p] for p in unique]
        early.settle({i for i, p in enumerate(unique) if p in todo})
        drawn = early.drawn
    elif todo:
        args = (engine, todo, [by_prompt[p][0] for p in todo], [best[p] for p in todo])
        drawn, tokens = _draw(
            *args, task, rerank, beams, batch_size, max_new_tokens, desc, grammars
        )
        new_tokens += tokens
    chosen = {p: best[p].choice(rerank.select, rerank.consensus_metric) for p in unique}
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
    engine: Engine,
    prompts: list[str],
    inputs: list[str],
    best: list[CandidatePool],
    task: str,
    rerank: RerankSection,
    beams: bool,
    batch_size: int,
    max_new_tokens: int,
    desc: str,
    grammars: Mapping[str, str] | None = None,
) -> tuple[int, int]:
    """Offers candidates of `prompts` to `best` (beam search, or sampled); returns
    (candidates drawn, their tokens)."""
    k = rerank.candidates
    if beams:
        found, tokens = engine.beam_candidates(prompts, k, max_new_tokens, f"{desc} beams")
        for b, x, options in zip(best, inputs, found, strict=True):
            for text, score in options:
                b.offer(text, output_errors(task, x, text), score)
        return sum(len(o) for o in found), tokens
    # Past the first error-free candidate (stop_after_passing > 1 or null) error-free ones
    # compete on model score.
    draws = _Draws(inputs, best, task, rerank.stop_after_passing)
    sampling = Sampling(rerank.temperature, rerank.top_p, seed=rerank.seed)
    args = dict(
        batch_size=batch_size, max_new_tokens=max_new_tokens, desc=f"{desc} candidates",
        grammars=grammars,
    )  # fmt: skip
    if engine.steerable:
        waves = [p for _ in range(k) for p in prompts]
        drawn = engine.generate(waves, sampling, watch=draws, **args)
        draws.settle()
        return draws.drawn, drawn.new_tokens
    # An engine that cannot be steered draws wave by wave, each wave only for the inputs
    # that still want candidates.
    tokens, per_wave = 0, InputDraws.PER_WAVE
    for first in range(0, k, per_wave):
        # Each wave its own seed: an engine seeds a draw by (seed, prompt, repeat in the call).
        sampling = Sampling(rerank.temperature, rerank.top_p, seed=rerank.seed + first)
        rows = [j * len(prompts) + i for j in range(first, min(k, first + per_wave))
                for i in range(len(prompts))]  # fmt: skip
        rows = [r for r in rows if draws.wanted(r)]
        if not rows:
            break
        wave = engine.generate([prompts[r % len(prompts)] for r in rows], sampling, **args)
        for r, text, score in zip(rows, wave.texts, wave.scores or [0.0] * len(rows), strict=True):
            draws.finished(r, text, score)
        tokens += wave.new_tokens
    draws.settle()
    return draws.drawn, tokens
