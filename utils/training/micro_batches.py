"""A padded batch larger than `training.max_batch_tokens`, run as row slices inside one
optimizer step.

Activation memory grows with the tokens of one forward pass; on a CPU the longest batches set
the training step's peak (SmolLM2-135M, 8 rows x 134 tokens, float32: ~1.5 GB of
activations). Each slice's loss is its summed token losses over the whole batch's label count
(the Trainer's `num_items_in_batch`), so the slices' gradients add up to the whole batch's:
the same step, at the memory of its largest slice.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

# What a padded batch (`CompletionCollator`) holds per row; `prefix_ids` and
# `logits_to_keep` are shared by every row and go whole into each slice.
ROW_KEYS = frozenset({"input_ids", "attention_mask", "labels", "position_ids"})


def row_slices(batch: dict[str, Any], max_tokens: int | None) -> list[dict[str, Any]]:
    """`batch` cut into as few row slices of near-equal size as keep each slice within
    `max_tokens` padded tokens (a row longer than that alone is a slice of its own);
    `[batch]` when it fits, when `max_tokens` is None, or for packed batches (one row)."""
    ids = batch.get("input_ids")
    if max_tokens is None or ids is None or ids.dim() != 2 or "shift_labels" in batch:
        return [batch]
    rows, length = ids.shape
    if rows < 2 or rows * length <= max_tokens:
        return [batch]
    per_slice = max(1, max_tokens // length)
    count = math.ceil(rows / per_slice)
    bounds = [round(i * rows / count) for i in range(count + 1)]
    return [
        {k: (v[lo:hi] if k in ROW_KEYS else v) for k, v in batch.items()}
        for lo, hi in itertools.pairwise(bounds)
    ]
