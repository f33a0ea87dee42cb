"""Where a completion ends: the tokens that stop a row, and the answer cut from its ids.

The tasks here answer in one line; with `stop_at_newline` a row also stops at its first
line break. Finding the vocabulary's line-break tokens decodes every entry (49k for SmolLM2,
128k for Llama 3), so the set is computed once per tokenizer.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

_NEWLINES: weakref.WeakKeyDictionary[Any, tuple[int, ...]] = weakref.WeakKeyDictionary()


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """EOS of the tokenizer and of the model's generation config."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list | tuple):
        ids.update(configured)
    return sorted(i for i in ids if i is not None)


def newline_token_ids(tokenizer: Any) -> list[int]:
    """Every vocabulary entry whose text contains a line break (once per tokenizer)."""
    found = _NEWLINES.get(tokenizer)
    if found is None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        found = _NEWLINES[tokenizer] = tuple(i for i, text in enumerate(texts) if "\n" in text)
    return list(found)


def stops_for(tokenizer: Any, model: Any, stop_at_newline: bool) -> list[int]:
    """The token ids that end a row."""
    stops = stop_token_ids(tokenizer, model)
    if stop_at_newline:
        stops = sorted(set(stops) | set(newline_token_ids(tokenizer)))
    return stops


def decoded_text(tokenizer: Any, ids: list[int], stop_at_newline: bool) -> str:
    """The answer in generated token ids: special tokens dropped, cut at the first line."""
    return answer_text(tokenizer.decode(ids, skip_special_tokens=True), stop_at_newline)


def answer_text(text: str, stop_at_newline: bool) -> str:
    """The answer in a decoded completion: cut at the first line, stripped."""
    if stop_at_newline:
        text = text.lstrip().split("\n", 1)[0]
    return text.strip()


def max_new_tokens_for(tokenizer: Any, references: list[str], cap: int = 256) -> int:
    """Enough room for the longest reference plus slack; the base model otherwise rambles."""
    if not references:
        return 32
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    return min(cap, math.ceil(longest * 1.25) + 8)
