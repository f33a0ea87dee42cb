"""Batched greedy generation for evaluation: left padding, length-sorted batches, EOS stop."""

from __future__ import annotations

import math
from typing import Any

import torch
from tqdm.auto import tqdm

from utils.prompts import encode_prompt


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


@torch.inference_mode()
def generate_batched(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
    desc: str = "generate",
) -> list[str]:
    """Greedy completions of `prompts`, returned in input order.

    Identical prompts are generated once: greedy decoding gives them identical outputs, and
    ViGGO's test split repeats each MR for each of its references (1,083 rows, 359 MRs).
    """
    unique = list(dict.fromkeys(prompts))
    completions = _generate_unique(model, tokenizer, unique, batch_size, max_new_tokens, desc)
    by_prompt = dict(zip(unique, completions, strict=True))
    return [by_prompt[p] for p in prompts]


def _generate_unique(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
    desc: str,
) -> list[str]:
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    # Longest first: similar lengths share a batch (little padding) and OOM shows up early.
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    stops = stop_token_ids(tokenizer, model)
    device = next(model.parameters()).device
    model.eval()
    outputs: list[str] = [""] * len(prompts)
    with tqdm(total=len(prompts), desc=desc, unit="rows") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            longest = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), longest), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), longest), dtype=torch.long)
            for row, i in enumerate(idx):
                n = len(encoded[i])
                ids[row, longest - n :] = torch.tensor(encoded[i])
                mask[row, longest - n :] = 1
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
                text = tokenizer.decode(out[row, longest:], skip_special_tokens=True)
                outputs[i] = text.strip()
            bar.update(len(idx))
    return outputs
