"""An input's reranking candidates: how the task's check counts a candidate's errors, which
draws count (`InputDraws`), and which candidate wins (`CandidatePool`). Shared by a batch
decode's reranking (`utils.inference.rerank`) and a service's rolling decode
(`utils.inference.rolling`), so both choose the same text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from utils.core.tasks import TaskName
from utils.metrics.text_metrics import AGREEMENT
from utils.viggo import parse_mr, slot_errors, try_parse_mr


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

    def choice(self, select: str, metric: str = "rougeL") -> _Candidate:
        fewest = [c for c in self.candidates if c.errors == self.errors]
        if select == "score" or len(fewest) == 1:
            return max(fewest, key=lambda c: c.score)
        # Minimum Bayes risk: every candidate (errors or not) is evidence of what the model
        # would say; duplicates count as the support they are.
        agree = AGREEMENT[metric]
        texts = [c.text for c in self.candidates]
        agreement = {
            text: sum(agree(text, other) for other in texts)
            for text in dict.fromkeys(c.text for c in fewest)
        }
        return max(fewest, key=lambda c: (agreement[c.text], c.score))


class InputDraws:
    """One input's sampled candidates by draw number j, in waves of `PER_WAVE`: they count
    up to the first wave that brings the error-free ones to `stop_after` (`None`: every
    draw counts), and later waves are not wanted. Which candidates count never depends on
    how many were decoded at once, nor on the order they finished in."""

    PER_WAVE = 2

    def __init__(self, stop_after: int | None) -> None:
        self.stop_after = stop_after
        self.found: dict[int, tuple[str, int, float]] = {}
        self.passed = float("inf")  # the wave that brought the error-free ones to stop_after

    @classmethod
    def wave(cls, draw: int) -> int:
        return draw // cls.PER_WAVE

    def record(self, draw: int, text: str, errors: int, score: float) -> None:
        self.found[draw] = (text, errors, score)
        if errors == 0 and self.stop_after is not None:
            # Draws finish in any order: a later wave's pass may count first, and an
            # earlier wave's pass then moves `passed` back. It only ever moves back, so a
            # wave once not wanted stays so.
            waves = sorted(self.wave(j) for j, (_, e, _) in self.found.items() if e == 0)
            if len(waves) >= self.stop_after:
                self.passed = waves[self.stop_after - 1]

    def wanted(self, draw: int) -> bool:
        # Every draw of the wave that passed still counts; only later waves are not needed.
        return self.wave(draw) <= self.passed

    def complete(self, draws: int) -> bool:
        """Every counted draw of `draws` has finished."""
        return all(j in self.found for j in range(draws) if self.wanted(j))

    def settle(self, pool: CandidatePool) -> None:
        """Offer the counted candidates to `pool`, in draw order."""
        for j in sorted(self.found):
            if self.wanted(j):
                pool.offer(*self.found[j])
