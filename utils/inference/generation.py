"""Batched generation for evaluation and serving: greedy, or sampled candidates.

Two engines, same greedy outputs:
- `continuous` (default): a decode loop over the model's forward pass and its KV cache that
  evicts a row as soon as it stops and refills the freed slots with waiting prompts, so every
  step computes tokens that are kept. With `generate`, a batch runs until its longest row
  stops: on ViGGO one rambling base-model row makes the 31 others wait ~100 steps.
- `generate`: transformers' `model.generate` on length-sorted, left-padded batches; also the
  fallback for caches the loop cannot splice (sliding-window or hybrid models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from utils.data.prompts import encode_prompt
from utils.inference.continuous import Watch, decode_continuous
from utils.inference.decoding import Sampling, decode_beams, decode_generate, pad_id
from utils.inference.kv_cache import plain_cache_fallback

ENGINES = ("continuous", "generate")


@dataclass
class Generations:
    texts: list[str]
    new_tokens: int  # tokens generated (stop tokens included), over distinct prompts
    distinct_prompts: int
    # Per text: the model's mean log-probability per generated token (None: not tracked).
    scores: list[float] | None = None
    # The engine that ran: `continuous`, `generate`, or `generate (fallback: <why>)` where
    # the continuous engine was asked for and the model's cache rules it out.
    engine: str = "continuous"


def max_new_tokens_for(tokenizer: Any, references: list[str], cap: int = 256) -> int:
    """Enough room for the longest reference plus slack; the base model otherwise rambles."""
    if not references:
        return 32
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    return min(cap, math.ceil(longest * 1.25) + 8)


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list | tuple):
        ids.update(configured)
    return sorted(i for i in ids if i is not None)


def newline_token_ids(tokenizer: Any) -> list[int]:
    """Every vocabulary entry whose text contains a line break."""
    vocab_size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(vocab_size)])
    return [i for i, text in enumerate(texts) if "\n" in text]


def _stops(tokenizer: Any, model: Any, stop_at_newline: bool) -> list[int]:
    stops = stop_token_ids(tokenizer, model)
    if stop_at_newline:
        stops = sorted(set(stops) | set(newline_token_ids(tokenizer)))
    return stops


def decoded_text(tokenizer: Any, ids: list[int], stop_at_newline: bool) -> str:
    """The answer in generated token ids: special tokens dropped, cut at the first line."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if stop_at_newline:
        text = text.lstrip().split("\n", 1)[0]
    return text.strip()


@torch.inference_mode()
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
    watch: Watch | None = None,
) -> Generations:
    """Completions of `prompts` in input order, with the number of tokens generated, and
    with `scores` (always when sampling) each text's mean token log-probability. A `watch`
    (continuous engine only) sees rows finish and may drop waiting ones (empty texts).

    Greedy (`sampling` None): identical prompts are generated once, since they get identical
    outputs, and ViGGO's test split repeats each MR for each of its references (1,083 rows,
    359 MRs). Sampled: every prompt is its own draw, so a prompt given k times yields k
    candidates. With `stop_at_newline`, a row also stops at its first line break and the
    text is cut there: the tasks here answer in one line, and without it an untuned model
    goes on to comment on its own answer until `max_new_tokens`.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown generation engine {engine!r}; valid: {', '.join(ENGINES)}")
    unique = list(dict.fromkeys(prompts)) if sampling is None else list(prompts)
    encoded = [encode_prompt(tokenizer, p) for p in unique]
    stops = _stops(tokenizer, model, stop_at_newline)
    model.eval()
    continuous = engine == "continuous" or sampling is not None
    ran = "continuous" if continuous else "generate"
    if continuous:
        problem = plain_cache_fallback(model, "the continuous engine", "transformers' generate")
        if problem is not None:
            continuous, ran = False, f"generate (fallback: {problem})"
    if watch is not None and not continuous:
        raise ValueError("a watched decode needs the continuous engine (a plain KV cache)")
    run = decode_continuous if continuous else decode_generate
    extra = {"watch": watch} if watch is not None else {}
    with tqdm(total=len(unique), desc=desc, unit="rows") as bar:
        decoded = run(
            model, encoded, batch_size, max_new_tokens, stops, pad_id(tokenizer), bar,
            sampling, scores or sampling is not None, **extra,
        )  # fmt: skip
    texts = [decoded_text(tokenizer, ids, stop_at_newline) for ids in decoded.tokens]
    scores = None
    if decoded.logprobs is not None:
        scores = [
            lp / max(1, len(t)) for lp, t in zip(decoded.logprobs, decoded.tokens, strict=True)
        ]
    if sampling is None:
        index = {p: i for i, p in enumerate(unique)}
        order = [index[p] for p in prompts]
    else:
        order = list(range(len(prompts)))
    return Generations(
        texts=[texts[i] for i in order],
        new_tokens=sum(len(t) for t in decoded.tokens),
        distinct_prompts=len(dict.fromkeys(prompts)),
        scores=[scores[i] for i in order] if scores is not None else None,
        engine=ran,
    )


@torch.inference_mode()
def beam_candidates(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    beams: int,
    max_new_tokens: int,
    stop_at_newline: bool = False,
    desc: str = "beam search",
) -> tuple[list[list[tuple[str, float]]], int]:
    """Per prompt, `beams` beam-search candidates (text, length-normalised log-probability);
    and the number of tokens the candidates hold."""
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    stops = _stops(tokenizer, model, stop_at_newline)
    model.eval()
    with tqdm(total=len(prompts), desc=desc, unit="rows") as bar:
        hyps = decode_beams(model, encoded, beams, max_new_tokens, stops, pad_id(tokenizer), bar)
    texts = [
        [(decoded_text(tokenizer, ids, stop_at_newline), score) for ids, score in h] for h in hyps
    ]
    return texts, sum(len(ids) for h in hyps for ids, _ in h)
