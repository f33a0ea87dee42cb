"""Requests decoded as they arrive: one continuous decode that the inputs of new requests
join while it runs, each request answered as soon as its own outputs are final.

A service that decodes batch by batch makes a request that arrives mid-batch wait for the
whole batch, and a request whose greedy output passes wait for another's candidates. Here
an input's greedy row joins the running batch at the next step; when its output fails the
task's check its candidates join the same way (`Watch.arrivals`). What an input gets is
what `generate_reranked` gives it: the same greedy row, draws seeded by (seed, prompt, j),
counted by `InputDraws` and chosen by `CandidatePool`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field

from utils.inference.candidates import CandidatePool, InputDraws, output_errors
from utils.inference.decoder import Decoder
from utils.inference.engine import Sampling, Watch

logger = logging.getLogger(__name__)

# A decode stops taking requests after this many rows and ends once they finish (the next
# request starts a new one): a busy service's decode never holds an ever-growing list of
# rows.
ROWS_PER_DECODE = 4096


@dataclass
class Job:
    """A request's inputs and where its outputs (or its error) go. `abandoned` says that
    its caller gave up (a deadline or a disconnect): its rows stop."""

    inputs: list[str]
    done: Callable[[list[str]], None]
    failed: Callable[[BaseException], None]
    abandoned: Callable[[], bool] = lambda: False


# What a rolling decode asks for new requests before each step (without waiting).
Take = Callable[[], list[Job]]


@dataclass(eq=False)
class _Request:
    job: Job
    outputs: list[str | None]
    seq: int  # arrival order
    over: bool = False
    pending: list[_Input] = field(default_factory=list)  # inputs not answered yet


@dataclass(eq=False)
class _Input:
    request: _Request
    index: int
    text: str  # the task input, which the check reads
    prompt: str
    pool: CandidatePool | None = None
    draws: InputDraws | None = None


@dataclass
class _Requests(Watch):
    """The rows of a rolling decode: each input's greedy row, then (when it fails the
    check) its candidate rows."""

    take: Take
    prompts: Callable[[list[str]], list[str]]
    decoder: Decoder
    rows: list[tuple[_Input, int | None]] = field(default_factory=list)
    _queued: list[tuple[_Input, int | None]] = field(default_factory=list)
    _open: list[_Request] = field(default_factory=list)
    _arrived: int = 0

    def order(self, row: int, length: int) -> tuple[int, ...]:
        # Oldest request first, so a full batch takes an earlier request's candidates
        # before a later request's greedy rows.
        return (self.rows[row][0].request.seq, row)

    def arrivals(self) -> list[tuple[str, int | None]]:
        self._drop_abandoned()
        new, self._queued = self._queued, []
        if len(self.rows) < ROWS_PER_DECODE:
            for job in self.take():
                new += self._admit(job)
        self.rows += new
        return [(inp.prompt, draw) for inp, draw in new]

    def _admit(self, job: Job) -> list[tuple[_Input, int | None]]:
        try:
            prompts = self.prompts(job.inputs)
        except Exception as e:
            job.failed(e)
            return []
        request = _Request(job, [None] * len(job.inputs), self._arrived)
        self._arrived += 1
        if not job.inputs:
            job.done([])
            return []
        self._open.append(request)
        request.pending = [
            _Input(request, i, text, prompt)
            for i, (text, prompt) in enumerate(zip(job.inputs, prompts, strict=True))
        ]
        return [(inp, None) for inp in request.pending]

    def _drop_abandoned(self) -> None:
        for request in self._open:
            if not request.over and request.job.abandoned():
                self._fail(request, CancelledError())
        self._open = [r for r in self._open if not r.over]

    def _fail(self, request: _Request, error: BaseException) -> None:
        request.over = True
        request.job.failed(error)

    def wanted(self, row: int) -> bool:
        inp, draw = self.rows[row]
        if inp.request.over:
            return False
        return draw is None or inp.draws is None or inp.draws.wanted(draw)

    def greedy(self, row: int) -> bool:
        return self.rows[row][1] is None

    def finished(self, row: int, text: str, mean_logprob: float) -> None:
        inp, draw = self.rows[row]
        if inp.request.over:
            return
        rerank = self.decoder.rerank
        if rerank is None:
            self._answer(inp, text)
            return
        try:
            errors = output_errors(self.decoder.task, inp.text, text)
        except Exception as e:  # an input the check cannot read fails its own request
            self._fail(inp.request, e)
            return
        if draw is None:
            inp.pool = CandidatePool(text, errors, mean_logprob)
            if errors == 0 and rerank.only_failing:
                self._answer(inp, text)
                return
            # Every draw at once: in a busy decode, drawing wave after wave (the next only
            # when the last found nothing without errors) left the hardest inputs waiting
            # longest and decoded no more inputs per second (concurrency 8, 2-core Zen 3).
            inp.draws = InputDraws(rerank.stop_after_passing)
            self._queued += [(inp, j) for j in range(rerank.candidates)]
            return
        assert inp.draws is not None and inp.pool is not None
        inp.draws.record(draw, text, errors, mean_logprob)
        if inp.draws.complete(rerank.candidates):
            inp.draws.settle(inp.pool)
            self._answer(inp, inp.pool.choice(rerank.select, rerank.consensus_metric).text)

    def _answer(self, inp: _Input, text: str) -> None:
        request = inp.request
        request.outputs[inp.index] = text
        request.pending.remove(inp)
        if not request.pending:
            request.over = True
            request.job.done([t for t in request.outputs if t is not None])

    def unanswered(self) -> list[Job]:
        return [r.job for r in self._open if not r.over]


def rolling_problem(decoder: Decoder) -> str | None:
    """Why `decoder` cannot decode requests as they arrive (None: it can)."""
    engine = decoder.engine
    if not engine.rolling:
        return f"{type(engine).__name__} cannot add rows to a running decode of this model"
    if decoder.constrain is not None:
        return "constrained decoding (evaluation.constrain) is decoded batch by batch"
    if decoder.rerank is not None:
        if decoder.rerank.method != "sample":
            return f"rerank.method={decoder.rerank.method} is decoded batch by batch"
        problem = engine.sampling_problem()
        if problem is not None:
            return problem
    return None


def decode_rolling(
    decoder: Decoder, take: Take, prompts: Callable[[list[str]], list[str]], max_new_tokens: int
) -> None:
    """Decode the requests `take` hands in (before each step) until none is left, answering
    each through its `Job` as soon as its outputs are final (see the module's docstring).
    Raises what the decode raises; requests not answered by then are the caller's."""
    requests = _Requests(take, prompts, decoder)
    rerank = decoder.rerank
    sampling = None
    if rerank is not None:
        sampling = Sampling(rerank.temperature, rerank.top_p, seed=rerank.seed)
    decoder.engine.decode_rolling(
        requests, sampling, batch_size=decoder.batch_size, max_new_tokens=max_new_tokens
    )
    for job in requests.unanswered():  # every row finished: nothing may be left waiting
        job.failed(RuntimeError("the rolling decode ended without this request's outputs"))
