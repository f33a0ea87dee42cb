"""The evaluation engine's memory budget (`evaluation.memory_budget_mb`): how many rows decode
together, and how much the prefill memo of sampled candidates may keep.

A decode's memory beyond the model's weights is its KV cache: per token and row, each layer
keeps a key and a value vector per K/V head (`kv_bytes_per_token`). A row of the batch
holds at most its prompt and `max_new_tokens` outputs (the cache keeps no spare room past
that: `GrowingLayer.max_columns`); rows are left-padded to a common length, so the longest
prompt sizes every row. The batch is what the budget holds of those rows (never more than
`evaluation.batch_size`); what the batch leaves of the budget is the memo's.

Not in the budget: the activations of one forward pass (a prefill of many rows: ~0.3 GB at
128 float32 rows of SmolLM2-135M) and the one layer's copy a merge or row drop makes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from utils.core.errors import UserError

logger = logging.getLogger(__name__)

MIB = 2**20


class MemoryBudgetError(UserError, ValueError):
    """`evaluation.memory_budget_mb` cannot hold one row of the decode."""


def kv_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """Bytes of KV cache one token takes in one row: layers x 2 (K and V) x K/V heads x
    head size x the cache's dtype size."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return text.num_hidden_layers * 2 * kv_heads * head_dim * dtype_bytes


@dataclass(frozen=True)
class DecodePlan:
    """What a decode may hold: `batch_size` rows of `row_bytes` each, and a prefill memo of
    at most `memo_bytes` (sampled candidates only)."""

    batch_size: int
    row_bytes: int
    memo_bytes: int

    def describe(self, asked: int, budget_mb: float | None) -> str:
        row = f"{self.row_bytes / MIB:.1f} MiB of KV cache a row"
        if budget_mb is None:
            return f"decode batch {self.batch_size} ({row}, no memory budget)"
        return (
            f"decode batch {self.batch_size} of evaluation.batch_size={asked} ({row}; "
            f"evaluation.memory_budget_mb={budget_mb:g}, memo {self.memo_bytes / MIB:.0f} MiB)"
        )


# Without a budget: the memo's bound before budgets existed.
UNBOUNDED_MEMO_BYTES = 2 * 2**30


def plan_decode(
    budget_mb: float | None, per_token: int, row_tokens: int, batch_size: int
) -> DecodePlan:
    """The batch (at most `batch_size`) and memo that `budget_mb` holds, for rows of up to
    `row_tokens` tokens (longest prompt + max_new_tokens).
    Raises `MemoryBudgetError` when not even one row fits."""
    row_bytes = per_token * row_tokens
    if budget_mb is None:
        return DecodePlan(batch_size, row_bytes, UNBOUNDED_MEMO_BYTES)
    budget = int(budget_mb * MIB)
    fits = budget // row_bytes
    if fits < 1:
        need = -(-row_bytes // MIB)
        raise MemoryBudgetError(
            f"evaluation.memory_budget_mb={budget_mb:g} cannot hold one decode row ({need} MiB: "
            f"{row_tokens} tokens x {per_token} bytes of KV cache); raise it to at least {need} "
            "or lower evaluation.max_new_tokens"
        )
    batch = min(batch_size, fits)
    return DecodePlan(batch, row_bytes, budget - batch * row_bytes)
