"""The decoding engine interface: prompts in, texts out.

An engine turns chat-formatted prompts into completions, greedily or by sampling, and
reports each text's mean token log-probability and what it cost. Everything that decides
*what* to decode (reranking, serving, evaluation) sits above this interface and never
sees an engine's model, cache or tokenizer internals.

Implementations, selected by `evaluation.engine`:
- `continuous` and `generate` (`utils.inference.transformers_engine`): a transformers model
  in this process; `continuous` evicts finished rows and refills their slots, `generate` runs
  `model.generate` on length-sorted batches (and is the fallback for caches the continuous
  loop cannot splice).
- `vllm` (`utils.inference.vllm_engine`): vLLM on a GPU, the LoRA adapter served unmerged.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    """Draw tokens instead of taking the most likely one (candidates for reranking)."""

    temperature: float = 0.7
    top_p: float = 0.95
    # Only the k most likely tokens are drawn from: sorting the whole vocabulary (49k for
    # SmolLM2) for the nucleus at every step would cost more than the model's head.
    top_k: int = 50
    seed: int = 0


def draw_seed(seed: int, prompt: str, draw: int) -> int:
    """The seed of a prompt's `draw`-th sampled candidate (its `draw`-th repeat in one
    call): what an engine seeds that row with, so a candidate never depends on what else
    the call decodes (served alone or in a batch, the same input gets the same text)."""
    digest = hashlib.sha256(f"{seed}\0{draw}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def draw_seeds(seed: int, prompts: list[str]) -> list[int]:
    """`draw_seed` of each prompt, `draw` counting its repeats so far in `prompts`."""
    seen: dict[str, int] = {}
    seeds = []
    for p in prompts:
        seeds.append(draw_seed(seed, p, seen.get(p, 0)))
        seen[p] = seen.get(p, 0) + 1
    return seeds


@dataclass
class Generations:
    """What a decode returns: texts in prompt order, their scores, and its cost."""

    texts: list[str]
    new_tokens: int  # tokens generated (stop tokens included), over distinct prompts
    distinct_prompts: int
    # Per text: the model's mean log-probability per generated token (None: not tracked).
    scores: list[float] | None = None
    # The engine that ran: `continuous`, `generate`, `vllm`, or `generate (fallback: <why>)`
    # where the continuous engine was asked for and the model's cache rules it out.
    engine: str = "continuous"


def rows_to_decode(prompts: list[str], sampling: Sampling | None) -> list[str]:
    """What an engine decodes for `prompts`: each distinct prompt once when greedy (they get
    identical outputs), every prompt when sampling (each is its own draw)."""
    return list(dict.fromkeys(prompts)) if sampling is None else list(prompts)


def in_prompt_order(
    prompts: list[str],
    decoded: list[str],
    texts: list[str],
    tokens: list[list[int]],
    logprobs: list[float] | None,
    engine: str,
) -> Generations:
    """`Generations` of `prompts` from the decode of `decoded` (`rows_to_decode`): per
    decoded row its text, token ids and summed log-probability (None: not tracked)."""
    if len(decoded) == len(prompts):
        order = list(range(len(prompts)))
    else:
        index = {p: i for i, p in enumerate(decoded)}
        order = [index[p] for p in prompts]
    means = None
    if logprobs is not None:
        means = [lp / max(1, len(t)) for lp, t in zip(logprobs, tokens, strict=True)]
    return Generations(
        texts=[texts[i] for i in order],
        new_tokens=sum(len(t) for t in tokens),
        distinct_prompts=len(dict.fromkeys(prompts)),
        scores=[means[i] for i in order] if means is not None else None,
        engine=engine,
    )


class Watch:
    """Steers a decode from outside (engines with `steerable`): `order` sorts the waiting
    rows (lower first; `length` is the row's prompt length), `finished` is told each row's
    text and mean log-probability as it stops, `wanted` says whether a row should still
    start or go on (a row no longer wanted stops, with no text), and in a sampled decode
    `greedy` marks rows decoded greedily instead."""

    def order(self, row: int, length: int) -> tuple[int, ...]:
        # Longest prompts first, so that a refill prefills prompts of similar length together.
        return (-length,)

    def finished(self, row: int, text: str, mean_logprob: float) -> None:
        pass

    def wanted(self, row: int) -> bool:
        return True

    def greedy(self, row: int) -> bool:
        return False

    def arrivals(self) -> list[tuple[str, int | None]]:
        """Rows that join a rolling decode (`Engine.decode_rolling`) now: (prompt, j) for
        the prompt's j-th sampled draw, (prompt, None) for its greedy output."""
        return []


class Engine(ABC):
    """Decodes prompts into one-line (or free) completions; built once per loaded model."""

    # Accepts a `Watch` (rows can be dropped while the decode runs).
    steerable: bool = False
    # Has `decode_rolling` (rows join while the decode runs).
    rolling: bool = False

    @property
    @abstractmethod
    def tokenizer(self) -> object:
        """The tokenizer prompts are written for (sizing `max_new_tokens`, chat templates)."""

    @abstractmethod
    def generate(
        self,
        prompts: list[str],
        sampling: Sampling | None = None,
        *,
        batch_size: int,
        max_new_tokens: int,
        scores: bool = False,
        watch: Watch | None = None,
        desc: str = "generate",
        grammars: Mapping[str, str] | None = None,
    ) -> Generations:
        """Completions of `prompts` in input order; with `scores` (always when sampling)
        each text's mean token log-probability.

        Greedy (`sampling` None): identical prompts are decoded once, since they get
        identical outputs. Sampled: every prompt is its own draw, so a prompt given k times
        yields k candidates.

        `grammars` (prompt -> llguidance grammar, `utils.inference.constraints`): each
        completion, up to its stop, is a sentence of its prompt's grammar; engines that
        cannot constrain raise.
        """

    def decode_rolling(
        self, watch: Watch, sampling: Sampling | None, *, batch_size: int, max_new_tokens: int
    ) -> None:
        """Decode the rows `watch.arrivals()` hands in, before and during the decode, until
        none is left; each text reaches `watch.finished` (rows numbered in arrival order)
        and nothing is returned. A row's j-th draw is seeded as `generate` seeds a prompt's
        j-th repeat, so its text is the one `generate` gives. `sampling` None: greedy rows
        only."""
        raise NotImplementedError(f"{type(self).__name__} cannot take rows while decoding")

    def sampling_problem(self) -> str | None:
        """Why this engine cannot draw sampled candidates for this model; None if it can."""
        return None

    def beam_candidates(
        self, prompts: list[str], beams: int, max_new_tokens: int, desc: str = "beam search"
    ) -> tuple[list[list[tuple[str, float]]], int]:
        """Per prompt, `beams` beam-search candidates (text, length-normalised
        log-probability); and the number of tokens they hold."""
        raise NotImplementedError(f"{type(self).__name__} has no beam search")
