"""Training's shared prompt prefix: run once per batch, attended to by every row.

Autograd flows through the expanded KV cache into the prefix pass, so loss and gradients
equal those of the full rows.
"""

from __future__ import annotations

from typing import Any

from utils.modeling.kv_cache import cache_with_prefix, prefix_kv


def attach_prefix_cache(model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """Replace a batch's `prefix_ids` (from `CompletionCollator(share_prefix=True)`) by the
    KV cache of that prefix, ready for `model(**batch)`."""
    batch = dict(batch)
    prefix = batch.pop("prefix_ids")
    rows = batch["input_ids"].shape[0]
    batch["cache"] = cache_with_prefix(model, prefix_kv(model, prefix), rows)
    batch["use_cache"] = True
    return batch
