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

from utils.kv_cache import (
    cache_tensors,
    cache_with_prefix,
    common_prefix,
    prefix_kv,
    set_cache_tensors,
    supports_plain_cache,
)
from utils.prompts import encode_prompt

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
    run = _decode_continuous if continuous else _decode_generate
    with tqdm(total=len(unique), desc=desc, unit="rows") as bar:
        tokens = run(model, encoded, batch_size, max_new_tokens, stops, _pad_id(tokenizer), bar)
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


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _left_padded(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, longest - len(seq) :] = torch.tensor(seq)
        mask[row, longest - len(seq) :] = 1
    return ids, mask


def _until_stop(ids: list[int], stops: set[int]) -> list[int]:
    for n, token in enumerate(ids):
        if token in stops:
            return ids[: n + 1]
    return ids


def _decode_generate(
    model: Any,
    encoded: list[list[int]],
    batch_size: int,
    max_new_tokens: int,
    stops: list[int],
    pad_id: int,
    bar: Any,
) -> list[list[int]]:
    # Longest first: similar lengths share a batch (little padding) and OOM shows up early.
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    device = next(model.parameters()).device
    stop_set = set(stops)
    out_tokens: list[list[int]] = [[] for _ in encoded]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = _left_padded([encoded[i] for i in idx], pad_id)
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=stops,
            pad_token_id=pad_id,
        )
        for row, i in enumerate(idx):
            out_tokens[i] = _until_stop(out[row, ids.shape[1] :].tolist(), stop_set)
        bar.update(len(idx))
    return out_tokens


def _left_pad_kv(t: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - t.shape[-2]
    if missing <= 0:
        return t
    pad = t.new_zeros((*t.shape[:-2], missing, t.shape[-1]))
    return torch.cat([pad, t], dim=-2)


class _Batch:
    """The rows being decoded: their KV cache, attention mask, positions and outputs."""

    def __init__(self) -> None:
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)
        self.rows: list[int] = []  # prompt index of each batch row
        self.next_token = torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, cache: Any, mask: torch.Tensor, rows: list[int], first: torch.Tensor) -> None:
        if self.cache is None or not self.rows:
            self.cache, self.mask, self.rows, self.next_token = cache, mask, rows, first
            return
        # Both parts are left padded; align them on the right (their newest token).
        length = max(self.mask.shape[1], mask.shape[1])
        merged = []
        for (k1, v1), (k2, v2) in zip(cache_tensors(self.cache), cache_tensors(cache), strict=True):
            k = torch.cat([_left_pad_kv(k1, length), _left_pad_kv(k2, length)])
            v = torch.cat([_left_pad_kv(v1, length), _left_pad_kv(v2, length)])
            merged.append((k, v))
        set_cache_tensors(self.cache, merged)
        self.mask = torch.cat(
            [
                torch.nn.functional.pad(self.mask, (length - self.mask.shape[1], 0)),
                torch.nn.functional.pad(mask, (length - mask.shape[1], 0)),
            ]
        )
        self.rows = self.rows + rows
        self.next_token = torch.cat([self.next_token, first])

    def keep(self, keep: torch.Tensor) -> None:
        """Drop finished rows, then the columns no remaining row attends to."""
        mask = self.mask[keep]
        used = mask.any(dim=0).nonzero()
        first_col = int(used[0]) if len(used) else mask.shape[1]
        self.mask = mask[:, first_col:]
        for layer in self.cache.layers:
            layer.select(keep, first_col)
        self.rows = [self.rows[i] for i in keep.tolist()]
        self.next_token = self.next_token[keep]


class _Prefill:
    """Runs prompts through the model into a fresh KV cache.

    The prompts' shared prefix is computed once and its KV copied into each new cache, so
    a refill only runs the part that differs (on ViGGO about half of each prompt). A row's
    layout is then [prefix][left padding][own tokens]: padding is masked wherever it sits,
    and positions count only real tokens, so the outputs are those of unpadded prompts.
    """

    def __init__(self, model: Any, encoded: list[list[int]], pad_id: int, device: Any) -> None:
        self.model, self.pad_id, self.device = model, pad_id, device
        self.prefix = common_prefix(encoded)
        self.prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.prefix:
            self.prefix_kv = prefix_kv(model, torch.tensor([self.prefix], device=device))

    def __call__(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """(cache, attention mask, greedy next token) for `prompts`."""
        n, p = len(prompts), len(self.prefix)
        ids, own_mask = _left_padded([seq[p:] for seq in prompts], self.pad_id)
        ids, own_mask = ids.to(self.device), own_mask.to(self.device)
        # Decode caches append in place (no copy of the whole cache per token).
        cache = cache_with_prefix(self.model, self.prefix_kv, n, growing=True)
        mask = torch.cat([own_mask.new_ones((n, p)), own_mask], dim=1)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)[:, p:]
        logits = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        return cache, mask, logits[:, -1].argmax(-1)


def _decode_continuous(
    model: Any,
    encoded: list[list[int]],
    batch_size: int,
    max_new_tokens: int,
    stops: list[int],
    pad_id: int,
    bar: Any,
) -> list[list[int]]:
    device = next(model.parameters()).device
    stop_ids = torch.tensor(stops, device=device)
    prefill = _Prefill(model, encoded, pad_id, device)
    # Longest prompts first, so that a refill prefills prompts of similar length together.
    pending = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    out_tokens: list[list[int]] = [[] for _ in encoded]
    batch = _Batch()
    # Refill only once a quarter of the slots are free: a prefill has a fixed cost.
    refill_at = max(1, batch_size // 4)
    while pending or len(batch):
        free = batch_size - len(batch)
        if pending and (free >= refill_at or not len(batch)):
            rows, pending = pending[:free], pending[free:]
            cache, mask, first = prefill([encoded[i] for i in rows])
            fresh = range(len(batch), len(batch) + len(rows))
            batch.add(cache, mask, rows, first)
        else:
            fresh = range(len(batch))
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch), 1))], dim=1)
            logits = model(
                input_ids=batch.next_token[:, None],
                attention_mask=batch.mask,
                position_ids=(batch.mask.sum(-1, keepdim=True) - 1),
                cache=batch.cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits
            batch.next_token = logits[:, -1].argmax(-1)
        # `next_token` holds each row's newest output token, not yet fed to the model; after
        # a refill only the new rows have one.
        tokens = batch.next_token.tolist()
        for slot in fresh:
            out_tokens[batch.rows[slot]].append(tokens[slot])
        full = [len(out_tokens[row]) >= max_new_tokens for row in batch.rows]
        finished = torch.isin(batch.next_token, stop_ids) | torch.tensor(full, device=device)
        if finished.any():
            bar.update(int(finished.sum()))
            batch.keep((~finished).nonzero().flatten())
    return out_tokens
