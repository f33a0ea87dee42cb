"""Batches for the Trainer: prompt-masked rows, dynamically padded or packed.

Padding is masked by position, not by token id: the pad id is often the EOS id, and masking
by id would hide the EOS labels the model needs to learn to stop.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from utils.data.prompts import IGNORE_INDEX
from utils.modeling.kv_cache import common_prefix


class CompletionCollator:
    """Pads a batch to its own longest row (dynamic padding, never a fixed length).

    Padding is masked by position, not by token id: the pad id is often the EOS id, and
    masking by id would hide the EOS labels the model needs to learn to stop.

    With `trim_prompt_logits`, the batch also carries `logits_to_keep`: the LM head and the
    cross-entropy then run only from the first position that predicts a label onwards, and the
    labels are cut to the same window. The loss is unchanged (those positions carry no label)
    but on a small model the vocabulary projection of prompt tokens is a large share of compute.
    With `padding_side="left"` every answer ends in the last column, so that window is only
    as wide as the longest answer (right padding makes it reach back to the shortest prompt);
    `position_ids` then count real tokens only, as if there were no padding.

    With `share_prefix`, the tokens every row of the batch starts with (the chat template and
    system prompt) come once, as `prefix_ids` of shape (1, P); `input_ids` and `labels` hold
    the rest of each row, `attention_mask` covers prefix and rest, and `position_ids` count
    from P. `utils.training.prefix_cache.attach_prefix_cache` turns `prefix_ids` into a KV
    cache before the forward pass. The prefix stops before the first position that predicts a label.
    """

    def __init__(
        self,
        pad_token_id: int,
        pad_to_multiple_of: int | None = None,
        trim_prompt_logits: bool = False,
        share_prefix: bool = False,
        padding_side: Literal["left", "right"] = "right",
    ):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.trim_prompt_logits = trim_prompt_logits
        self.share_prefix = share_prefix
        self.padding_side = padding_side

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        prefix = self._shared_prefix(features) if self.share_prefix else []
        p = len(prefix)
        if prefix:
            features = [
                {"input_ids": f["input_ids"][p:], "labels": f["labels"][p:]} for f in features
            ]
        rows = len(features)
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids = torch.full((rows, longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((rows, longest), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((rows, longest), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            cols = slice(longest - n, longest) if self.padding_side == "left" else slice(0, n)
            ids[i, cols] = torch.tensor(f["input_ids"])
            labels[i, cols] = torch.tensor(f["labels"])
            mask[i, cols] = 1
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if self.trim_prompt_logits:
            labelled = (labels != IGNORE_INDEX).any(dim=0).nonzero()
            if len(labelled):
                # The causal loss shifts by one: keep one position before the first label.
                start = max(int(labelled[0]) - 1, 0)
                batch["labels"] = labels[:, start:]
                batch["logits_to_keep"] = torch.arange(start, longest)
        if self.padding_side == "left" or prefix:
            # Real tokens only: a left-padded row counts from its first token (after the prefix).
            batch["position_ids"] = p + (mask.cumsum(-1) - 1).clamp(min=0)
        if prefix:
            batch["prefix_ids"] = torch.tensor([prefix], dtype=torch.long)
            batch["attention_mask"] = torch.cat([mask.new_ones((rows, p)), mask], dim=1)
        return batch

    @staticmethod
    def _shared_prefix(features: list[dict[str, Any]]) -> list[int]:
        if len(features) < 2:
            return []
        # The prefix pass computes no logits: its last position must not predict a label.
        first_label = min(_first_label(f["labels"]) for f in features)
        return common_prefix([f["input_ids"] for f in features], limit=first_label - 1)


def _first_label(labels: list[int]) -> int:
    return next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))


class PackedCollator:
    """Padding-free batches: the rows of a batch are concatenated into one row.

    `position_ids` restart at 0 for each row; with no `attention_mask` and no KV cache,
    transformers reads the restarts as sequence boundaries and masks attention
    block-diagonally (flash attention uses them as varlen boundaries), so no token attends
    across rows. The loss
    targets come as `shift_labels` (the next token of the same row, never across a
    boundary), and only the positions that predict a target go through the LM head.
    """

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids: list[int] = []
        positions: list[int] = []
        targets: list[int] = []
        for f in features:
            n = len(f["input_ids"])
            ids.extend(f["input_ids"])
            positions.extend(range(n))
            # Position t predicts label t+1 of the same row; a row's last position predicts
            # nothing (the next token belongs to another row).
            targets.extend([*f["labels"][1:], IGNORE_INDEX])
        shift = torch.tensor(targets, dtype=torch.long)
        keep = (shift != IGNORE_INDEX).nonzero().flatten()
        kept = shift[keep][None]
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long)[None],
            "position_ids": torch.tensor(positions, dtype=torch.long)[None],
            # The model computes a loss only when `labels` is set; `shift_labels` is what
            # the causal LM loss uses (and what Trainer counts for its normalization).
            "labels": kept,
            "shift_labels": kept,
            "logits_to_keep": keep,
            # With a KV cache transformers does not look for packed rows: keep it off.
            "use_cache": False,
        }
