"""Batched greedy generation for evaluation and serving.

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
from utils.inference.continuous import decode_continuous
from utils.inference.decoding import decode_generate, pad_id
from utils.inference.kv_cache import supports_plain_cache

ENGINES = ("continuous", "generate")


@dataclass
class Generations:
    texts: list[str]
    new_tokens: int  # tokens generated (stop tokens included), over distinct prompts
    distinct_prompts: int


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
) -> Generations:
    """Greedy completions of `prompts` in input order, with the number of tokens generated.

    Identical prompts are generated once: greedy decoding gives them identical outputs, and
    ViGGO's test split repeats each MR for each of its references (1,083 rows, 359 MRs).
    With `stop_at_newline`, a row also stops at its first line break and the text is cut
    there: the tasks here answer in one line, and without it an untuned model goes on to
    comment on its own answer until `max_new_tokens`.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown generation engine {engine!r}; valid: {', '.join(ENGINES)}")
    unique = list(dict.fromkeys(prompts))
    encoded = [encode_prompt(tokenizer, p) for p in unique]
    stops = stop_token_ids(tokenizer, model)
    if stop_at_newline:
        stops = sorted(set(stops) | set(newline_token_ids(tokenizer)))
    model.eval()
    continuous = engine == "continuous" and supports_plain_cache(model)
    run = decode_continuous if continuous else decode_generate
    with tqdm(total=len(unique), desc=desc, unit="rows") as bar:
        tokens = run(model, encoded, batch_size, max_new_tokens, stops, pad_id(tokenizer), bar)
    texts = []
    for ids in tokens:
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if stop_at_newline:
            text = text.lstrip().split("\n", 1)[0]
        texts.append(text.strip())
    by_prompt = dict(zip(unique, texts, strict=True))
    return Generations(
        texts=[by_prompt[p] for p in prompts],
        new_tokens=sum(len(t) for t in tokens),
        distinct_prompts=len(unique),
    )
