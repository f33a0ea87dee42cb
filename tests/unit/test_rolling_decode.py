"""A rolling decode: requests join the running decode, each is answered as soon as its own
outputs are final, and every input gets the text a batch decode gives it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from utils.config import RerankSection
from utils.data.prompts import build_prompt
from utils.inference.decoder import Decoder
from utils.inference.rolling import Job, decode_rolling, rolling_problem
from utils.inference.transformers_engine import TransformersEngine
from utils.serving.batcher import Batcher

MRS = [
    "inform(name[Tetris], release_year[1986])",
    "inform(name[Portal 2], rating[excellent])",
    "request(specifier[fun], has_multiplayer[yes])",
    "inform(name[Dirt: Showdown], release_year[2012])",
]


class _Arrivals:
    """Requests handed to the decode one `take` (one decode step) after another; records
    each request's outputs and which ones were taken while others were decoding."""

    def __init__(self, schedule: list[list[list[str]]]) -> None:
        self.schedule = list(schedule)
        self.answers: dict[tuple[str, ...], list[str]] = {}
        self.errors: dict[tuple[str, ...], BaseException] = {}
        self.open: set[tuple[str, ...]] = set()
        self.joined: list[tuple[str, ...]] = []  # taken while another request was open

    def take(self) -> list[Job]:
        if not self.schedule:
            return []
        jobs = []
        for inputs in self.schedule.pop(0):
            key = tuple(inputs)
            if self.open:
                self.joined.append(key)
            self.open.add(key)
            jobs.append(Job(inputs, lambda out, k=key: self._done(k, out),
                            lambda e, k=key: self._failed(k, e)))  # fmt: skip
        return jobs

    def _done(self, key: tuple[str, ...], outputs: list[str]) -> None:
        self.open.discard(key)
        self.answers[key] = outputs

    def _failed(self, key: tuple[str, ...], error: BaseException) -> None:
        self.open.discard(key)
        self.errors[key] = error


def _decoder(tiny, rerank: RerankSection | None) -> tuple[Decoder, object]:
    model, tok = tiny
    engine = TransformersEngine(model, tok, draft_tokens=4)
    return Decoder(engine, "data_to_text", rerank, batch_size=8), tok


@pytest.mark.parametrize("select", [None, "score", "consensus", "every draw"])
def test_requests_that_join_a_running_decode_get_the_batch_decodes_outputs(tiny, select) -> None:
    rerank = None
    if select == "every draw":
        rerank = RerankSection(candidates=6, temperature=1.5, stop_after_passing=None)
    elif select is not None:
        rerank = RerankSection(candidates=6, temperature=1.5, select=select)
    decoder, tok = _decoder(tiny, rerank)

    def prompts(inputs: list[str]) -> list[str]:
        return [build_prompt(tok, x, "SYS") for x in inputs]

    batch = decoder.decode(prompts(MRS), MRS, max_new_tokens=6)
    if rerank is not None:
        assert batch.stats["rerank_candidates_drawn"] > 0  # candidates were drawn
    if select == "consensus":
        # A random model's outputs all fail: by score greedy wins, by consensus the texts
        # depend on every candidate an input drew.
        assert batch.stats["rerank_changed"] > 0
    expected = batch.generations.texts
    # The first request, then two more after one and two decode steps.
    arrivals = _Arrivals([[[MRS[0]]], [[MRS[1], MRS[2]]], [[MRS[3]]]])
    while arrivals.schedule or arrivals.open:  # as a service does: decode again when idle
        decode_rolling(decoder, arrivals.take, prompts, 6)
    assert arrivals.joined  # requests came in while others were decoding
    assert not arrivals.errors
    assert arrivals.answers == {
        (MRS[0],): expected[:1], (MRS[1], MRS[2]): expected[1:3], (MRS[3],): expected[3:],
    }  # fmt: skip


def test_an_input_the_check_cannot_read_fails_only_its_own_request(tiny) -> None:
    decoder, tok = _decoder(tiny, RerankSection(candidates=2, temperature=1.5))

    def prompts(inputs: list[str]) -> list[str]:
        return [build_prompt(tok, x, "SYS") for x in inputs]

    arrivals = _Arrivals([[[MRS[0]], ["not an MR at all"], [MRS[1]]]])
    decode_rolling(decoder, arrivals.take, prompts, 6)
    assert set(arrivals.errors) == {("not an MR at all",)}
    assert set(arrivals.answers) == {(MRS[0],), (MRS[1],)}


def test_an_abandoned_request_stops_and_the_others_finish(tiny) -> None:
    decoder, tok = _decoder(tiny, None)
    gave_up = threading.Event()
    answers: dict[str, list[str]] = {}
    failures: dict[str, BaseException] = {}
    steps = {"n": 0}

    def take() -> list[Job]:
        steps["n"] += 1
        if steps["n"] == 2:
            gave_up.set()  # the first request's caller leaves after one step
        if steps["n"] > 1:
            return []
        return [
            Job([mr], lambda out, k=mr: answers.__setitem__(k, out),
                lambda e, k=mr: failures.__setitem__(k, e),
                (lambda: gave_up.is_set()) if mr == MRS[0] else (lambda: False))
            for mr in MRS[:2]
        ]  # fmt: skip

    decode_rolling(decoder, take, lambda xs: [build_prompt(tok, x, "SYS") for x in xs], 40)
    assert isinstance(failures.get(MRS[0]), CancelledError)
    assert set(answers) == {MRS[1]}


def test_decodes_that_cannot_take_requests_while_running_say_why(tiny) -> None:
    model, tok = tiny
    assert rolling_problem(_decoder(tiny, None)[0]) is None
    constrained = Decoder(TransformersEngine(model, tok), "text_to_mr", None, 8, constrain="mr")
    assert "evaluation.constrain" in rolling_problem(constrained)
    beams = Decoder(TransformersEngine(model, tok), "data_to_text",
                    RerankSection(method="beam"), 8)  # fmt: skip
    assert "rerank.method=beam" in rolling_problem(beams)


def _stepping(steps_of: dict[str, int], log: list[str]):
    """A rolling decode without a model: each input needs `steps_of[input]` steps of 10 ms;
    requests join at the next step."""

    def rolling(take) -> None:
        running: list[tuple[Job, int]] = []
        while True:
            running += [(job, 0) for job in take()]
            if not running:
                return
            time.sleep(0.01)
            still = []
            for job, done in running:
                if job.abandoned():
                    job.failed(CancelledError())
                elif done + 1 >= max(steps_of[x] for x in job.inputs):
                    log.append(job.inputs[0])
                    job.done([x.upper() for x in job.inputs])
                else:
                    still.append((job, done + 1))
            running = still

    return rolling


def test_a_request_joins_the_running_decode_and_is_answered_first() -> None:
    log: list[str] = []
    steps = {"long": 60, "short": 2}
    batcher = Batcher(lambda xs: xs, max_inputs=8, setup=lambda: _stepping(steps, log))
    batcher.ready(10)
    long = batcher.submit(["long"])
    time.sleep(0.1)  # the long request is decoding
    assert batcher(["short"], timeout=10) == ["SHORT"]
    assert not long.future.done()  # answered before the request it joined
    assert long.future.result(10) == ["LONG"]
    assert log == ["short", "long"]


def test_a_cancelled_request_stops_mid_decode() -> None:
    log: list[str] = []
    batcher = Batcher(lambda xs: xs, max_inputs=8, setup=lambda: _stepping({"a": 500}, log))
    batcher.ready(10)
    ticket = batcher.submit(["a"])
    time.sleep(0.05)
    assert not ticket.cancel()  # already decoding: its rows stop instead
    with pytest.raises(CancelledError):
        ticket.future.result(10)
    assert batcher(["a"] * 0, timeout=10) == []  # the service goes on
    assert log == []


def test_a_failing_rolling_decode_answers_its_requests_one_by_one() -> None:
    def rolling(take) -> None:
        take()
        time.sleep(0.05)
        take()
        raise RuntimeError("out of memory")

    decoded: list[list[str]] = []

    def decode(inputs: list[str]) -> list[str]:
        decoded.append(inputs)
        if "bad" in inputs:
            raise ValueError("bad input")
        return [x.upper() for x in inputs]

    batcher = Batcher(decode, max_inputs=8, setup=lambda: rolling)
    batcher.ready(10)
    good, bad = batcher.submit(["a", "b"]), batcher.submit(["bad"])
    assert good.future.result(10) == ["A", "B"]
    with pytest.raises(ValueError, match="bad input"):
        bad.future.result(10)
    assert sorted(decoded) == [["a", "b"], ["bad"]]
    assert batcher.alive
