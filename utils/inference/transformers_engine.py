"""The `continuous` and `generate` engines: a transformers model decoding in this process.

Same greedy outputs from both:
- `continuous` (default): a decode loop over the model's forward pass and its KV cache that
  evicts a row as soon as it stops and refills the freed slots with waiting prompts, so every
  step computes tokens that are kept. With `generate`, a batch runs until its longest row
  stops: on ViGGO one rambling base-model row makes the 31 others wait ~100 steps.
- `generate`: transformers' `model.generate` on length-sorted, left-padded batches; also the
  fallback for caches the loop cannot splice (sliding-window or hybrid models).

Sampled candidates always come from the continuous loop (`generate` has no scores and no
watch); beam search from `model.generate`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import tqdm

from utils.data.prompts import encode_prompt
from utils.inference.continuous import TokenWatch, decode_continuous
from utils.inference.draft_index import DraftIndex
from utils.inference.engine import (
    Engine,
    Generations,
    Sampling,
    Watch,
    draw_seed,
    draw_seeds,
    in_prompt_order,
    rows_to_decode,
)
from utils.inference.generate_decoder import decode_beams, decode_generate
from utils.inference.memory_budget import DecodePlan, kv_bytes_per_token, plan_decode
from utils.inference.prefix_memo import PrefixMemo
from utils.inference.stops import decoded_text, stop_token_ids, stops_for
from utils.inference.token_batches import pad_id
from utils.modeling.kv_cache import plain_cache_fallback

logger = logging.getLogger(__name__)

TRANSFORMERS_ENGINES = ("continuous", "generate")


class _TextWatch(TokenWatch):
    """A text-level `Watch` under the token-level decode loop."""

    def __init__(self, watch: Watch, decode: Any) -> None:
        self.watch, self.decode = watch, decode

    def order(self, row: int, length: int) -> tuple[int, ...]:
        return self.watch.order(row, length)

    def finished(self, row: int, tokens: list[int], mean_logprob: float) -> None:
        self.watch.finished(row, self.decode(tokens), mean_logprob)

    def wanted(self, row: int) -> bool:
        return self.watch.wanted(row)

    def greedy(self, row: int) -> bool:
        return self.watch.greedy(row)


class _RollingWatch(_TextWatch):
    """`_TextWatch` of a rolling decode: arriving prompts encoded, draws seeded."""

    keeps_outputs = False

    def __init__(self, watch: Watch, decode: Any, tokenizer: Any, seed: int | None) -> None:
        super().__init__(watch, decode)
        self.tokenizer, self.seed = tokenizer, seed

    def arrivals(self) -> list[tuple[list[int], int | None]]:
        rows = []
        for prompt, draw in self.watch.arrivals():
            if draw is not None and self.seed is None:
                raise ValueError("a sampled draw joined a greedy decode")
            seed = None if draw is None else draw_seed(self.seed, prompt, draw)
            rows.append((encode_prompt(self.tokenizer, prompt), seed))
        return rows


class TransformersEngine(Engine):
    """`model` (base, or base + adapter) and its tokenizer; `engine` picks the greedy loop."""

    steerable = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        engine: str = "continuous",
        stop_at_newline: bool = True,
        one_row_kernel: str = "onednn",
        memory_budget_mb: float | None = None,
        draft_tokens: int = 0,
    ) -> None:
        if engine not in TRANSFORMERS_ENGINES:
            valid = ", ".join(TRANSFORMERS_ENGINES)
            raise ValueError(f"unknown generation engine {engine!r}; valid: {valid}")
        self.model, self._tokenizer, self.engine = model, tokenizer, engine
        self.stop_at_newline = stop_at_newline
        # The matmul of one-row decode steps (`utils.inference.one_row`).
        self.one_row_kernel = one_row_kernel
        # Bounds the decode's KV cache and prefill memo (`utils.inference.memory_budget`).
        self.memory_budget_mb = memory_budget_mb
        self.stops = stops_for(tokenizer, model, stop_at_newline)
        self._plain_cache: dict[str, str | None] = {}
        # The prompts' shared prefix (chat template, system prompt) from one decode to the
        # next: a service decodes request after request.
        self._prefix_memo = PrefixMemo()
        # Guessed tokens of few-row steps (`utils.inference.speculative`), learnt from every
        # decode of this engine: a service's later requests are guessed from earlier answers.
        self.draft_tokens = draft_tokens
        self._drafts = DraftIndex()
        self._last_plan = ""

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def _cache_problem(self, fast_path: str, fallback: str) -> str | None:
        # Asked once per engine (the warning is logged once, the answer cannot change).
        if fast_path not in self._plain_cache:
            self._plain_cache[fast_path] = plain_cache_fallback(self.model, fast_path, fallback)
        return self._plain_cache[fast_path]

    def sampling_problem(self) -> str | None:
        return self._cache_problem("sampled candidates", "beam search candidates")

    @property
    def rolling(self) -> bool:
        # The continuous loop splices rows into the model's KV cache.
        return self._cache_problem("the continuous engine", "transformers' generate") is None

    def row_grammars(self, grammars: list[str | None]) -> Any:
        """The matchers of one decode's rows; EOS (not a line break) ends a grammar, which
        spells out the line break itself where one stops the row."""
        from utils.inference.grammar_mask import RowGrammars

        return RowGrammars(self._tokenizer, stop_token_ids(self._tokenizer, self.model), grammars)

    def text(self, ids: list[int]) -> str:
        return decoded_text(self._tokenizer, ids, self.stop_at_newline)

    @torch.inference_mode()
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
        """See `Engine.generate`. A `watch` (continuous loop only) sees rows finish and may
        drop waiting ones (empty texts). ViGGO's test split repeats each MR for each of its
        references (1,083 rows, 359 MRs): greedy decodes each once. `grammars` mask each
        row's tokens in both loops."""
        model, tokenizer = self.model, self._tokenizer
        unique = rows_to_decode(prompts, sampling)
        encoded = [encode_prompt(tokenizer, p) for p in unique]
        model.eval()
        continuous = self.engine == "continuous" or sampling is not None
        ran = "continuous" if continuous else "generate"
        if continuous:
            problem = self._cache_problem("the continuous engine", "transformers' generate")
            if problem is not None:
                continuous, ran = False, f"generate (fallback: {problem})"
        if watch is not None and not continuous:
            raise ValueError("a watched decode needs the continuous engine (a plain KV cache)")
        plan = self.plan(encoded, batch_size, max_new_tokens)
        run = decode_continuous if continuous else decode_generate
        extra: dict[str, Any] = {}
        if watch is not None:
            extra["watch"] = _TextWatch(watch, self.text)
        if sampling is not None:
            extra["seeds"] = _seeds(sampling.seed, unique, watch)
        if continuous:
            extra["kernel"] = self.one_row_kernel
            extra["memo_bytes"] = plan.memo_bytes
            extra["prefix_memo"] = self._prefix_memo
            extra["drafts"], extra["max_guess"] = self._drafts, self.draft_tokens
        if grammars is not None:
            extra["grammars"] = self.row_grammars([grammars.get(p) for p in unique])
        with tqdm(total=len(unique), desc=desc, unit="rows") as bar:
            decoded = run(
                model, encoded, plan.batch_size, max_new_tokens, self.stops, pad_id(tokenizer),
                bar, sampling, scores or sampling is not None, **extra,
            )  # fmt: skip
        texts = [self.text(ids) for ids in decoded.tokens]
        return in_prompt_order(prompts, unique, texts, decoded.tokens, decoded.logprobs, ran)

    @torch.inference_mode()
    def decode_rolling(
        self, watch: Watch, sampling: Sampling | None, *, batch_size: int, max_new_tokens: int
    ) -> None:
        """See `Engine.decode_rolling`: the continuous loop, taking arrivals before each step.
        The batch and memo are planned for the first rows' prompt lengths."""
        problem = self._cache_problem("the continuous engine", "transformers' generate")
        if problem is not None:
            raise ValueError(f"a rolling decode needs the continuous engine: {problem}")
        seed = sampling.seed if sampling is not None else None
        rows = _RollingWatch(watch, self.text, self._tokenizer, seed)
        first = rows.arrivals()
        if not first:
            return
        encoded = [tokens for tokens, _ in first]
        seeds = [seed for _, seed in first] if sampling is not None else None
        plan = self.plan(encoded, batch_size, max_new_tokens)
        self.model.eval()
        decode_continuous(
            self.model, encoded, plan.batch_size, max_new_tokens, self.stops,
            pad_id(self._tokenizer), _NoBar(), sampling, scores=True, watch=rows, seeds=seeds,
            kernel=self.one_row_kernel, memo_bytes=plan.memo_bytes, prefix_memo=self._prefix_memo,
            drafts=self._drafts, max_guess=self.draft_tokens,
        )  # fmt: skip

    def plan(self, encoded: list[list[int]], batch_size: int, max_new_tokens: int) -> DecodePlan:
        """The batch and memo `memory_budget_mb` allows for these prompts (logged)."""
        per_token = kv_bytes_per_token(self.model.config, self.model.dtype.itemsize)
        longest = max((len(e) for e in encoded), default=0)
        row_tokens = longest + max_new_tokens
        plan = plan_decode(self.memory_budget_mb, per_token, row_tokens, batch_size)
        line = plan.describe(batch_size, self.memory_budget_mb)
        # Once per change: a service plans every request the same way.
        if line != self._last_plan:
            logger.info(line)
            self._last_plan = line
        return plan

    @torch.inference_mode()
    def beam_candidates(
        self, prompts: list[str], beams: int, max_new_tokens: int, desc: str = "beam search"
    ) -> tuple[list[list[tuple[str, float]]], int]:
        encoded = [encode_prompt(self._tokenizer, p) for p in prompts]
        self.model.eval()
        with tqdm(total=len(prompts), desc=desc, unit="rows") as bar:
            hyps = decode_beams(
                self.model, encoded, beams, max_new_tokens, self.stops, pad_id(self._tokenizer),
                bar,
            )  # fmt: skip
        texts = [[(self.text(ids), score) for ids, score in h] for h in hyps]
        return texts, sum(len(ids) for h in hyps for ids, _ in h)


class _NoBar:
    """A service's rolling decode shows no progress bar."""

    def update(self, n: int = 1) -> None:
        pass


def _seeds(seed: int, prompts: list[str], watch: Watch | None) -> list[int | None]:
    """Per row its draw's seed, None for the rows the watch marks greedy: the draws are
    numbered without them, so a candidate gets the seed it gets in a decode of draws only."""
    greedy = {r for r in range(len(prompts)) if watch is not None and watch.greedy(r)}
    drawn = iter(draw_seeds(seed, [p for r, p in enumerate(prompts) if r not in greedy]))
    return [None if r in greedy else next(drawn) for r in range(len(prompts))]


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
    desc: str = "generate",
    engine: str = "continuous",
    stop_at_newline: bool = False,
    sampling: Sampling | None = None,
    scores: bool = False,
    grammars: Mapping[str, str] | None = None,
) -> Generations:
    """One decode of a model already loaded (training's validation, benchmarks, tests): a
    `TransformersEngine` for this call."""
    return TransformersEngine(model, tokenizer, engine, stop_at_newline).generate(
        prompts, sampling, batch_size=batch_size, max_new_tokens=max_new_tokens, scores=scores,
        desc=desc, grammars=grammars,
    )  # fmt: skip
