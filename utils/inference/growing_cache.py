"""Inference's decode cache: K/V buffers with spare columns, written in place.

Inference only: in-place writes into tensors autograd saved would break backpropagation,
so training's prefix cache (`utils.training.prefix_cache`) keeps transformers' own layers.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from utils.modeling.kv_cache import KV, cache_with_prefix


def growing_cache(model: Any, kv: KV, rows: int, max_columns: int | None = None) -> Any:
    """A decode cache of `GrowingLayer`s whose every row starts with the prefix K/V (copied
    into its buffers); `max_columns`: the most columns a row can need (no spare room is
    allocated beyond it)."""
    cache = cache_with_prefix(model, kv, rows, layer_class=growing_layer_class())
    for layer in cache.layers:
        layer.max_columns = max_columns
    return cache


@functools.cache
def growing_layer_class() -> type:
    """`GrowingLayer` (built on first use: transformers is imported lazily)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A decode cache layer whose K/V live in buffers with spare columns.

        `DynamicLayer` concatenates the whole cache with each new token, copying all of it
        every decode step (~10% of a CPU decode step at batch 64). Here a step writes one
        column in place; the buffers grow by `SPARE` columns when full; dropping finished
        rows (`compact`) copies only the rows that move into their slots, and `select`
        (any rows, repeated ones too) copies once and keeps the spare room. Inference only:
        in-place writes into tensors autograd saved would break backpropagation.

        Spare room never reaches past `max_columns` (when set: the longest prompt +
        max_new_tokens, what a plain decode's rows can need): at 128 rows of SmolLM2-135M
        in float32 the 64 spare columns alone are ~370 MB. Speculative steps of few rows
        (`utils.inference.speculative`) may need more: columns a row masked out.
        """

        SPARE = 64

        def __init__(self) -> None:
            self._k: torch.Tensor | None = None
            self._v: torch.Tensor | None = None
            self._start = self._end = 0
            self.max_columns: int | None = None
            super().__init__()

        @property
        def keys(self) -> torch.Tensor | None:
            return None if self._k is None else self._k[..., self._start : self._end, :]

        @keys.setter
        def keys(self, t: torch.Tensor | None) -> None:
            self._k = t if t is not None and t.dim() == 4 else None
            self._start, self._end = 0, (0 if self._k is None else self._k.shape[-2])

        @property
        def values(self) -> torch.Tensor | None:
            return None if self._v is None else self._v[..., self._start : self._end, :]

        @values.setter
        def values(self, t: torch.Tensor | None) -> None:
            # Set after `keys`, with the same length (as every caller here does).
            self._v = t if t is not None and t.dim() == 4 else None

        def get_seq_length(self) -> int:
            return self._end - self._start

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            new = key_states.shape[-2]
            if self._k is None or self._end + new > self._k.shape[-2]:
                self._grow(key_states, value_states, new)
            self._k[..., self._end : self._end + new, :] = key_states
            self._v[..., self._end : self._end + new, :] = value_states
            self._end += new
            return self.keys, self.values

        def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, new: int) -> None:
            live = self._end - self._start
            columns = live + new + self.SPARE
            if self.max_columns is not None and live + new <= self.max_columns:
                # Past the cap (columns of rejected guesses a row masks out: `speculative`)
                # the buffer keeps growing by SPARE, not by one step's columns at a time.
                columns = min(columns, self.max_columns)
            shape = (*key_states.shape[:-2], columns, key_states.shape[-1])
            k, v = key_states.new_empty(shape), value_states.new_empty(shape)
            if live:
                k[..., :live, :] = self.keys
                v[..., :live, :] = self.values
            self._k, self._v, self._start, self._end = k, v, 0, live

        def compact(self, moves: list[tuple[int, int]], rows: int, first_col: int) -> None:
            """Keep the first `rows` rows after copying each (source, target) row of `moves`,
            and the columns from `first_col` on: no copy of the rows that stay where they
            are, nor of the columns (the buffer keeps them until its next growth)."""
            start = self._start + first_col
            if moves:
                src = torch.tensor([s for s, _ in moves], device=self._k.device)
                dst = torch.tensor([d for _, d in moves], device=self._k.device)
                # Only the columns still in use: the spare room holds nothing yet.
                self._k[dst, :, start : self._end] = self._k[src, :, start : self._end]
                self._v[dst, :, start : self._end] = self._v[src, :, start : self._end]
            self._k, self._v, self._start = self._k[:rows], self._v[:rows], start

        def trim(self, columns: int) -> None:
            """Forget the newest `columns` columns (fed tokens no row kept)."""
            self._end -= columns

        def select(self, rows: torch.Tensor, first_col: int) -> None:
            """Keep only `rows`, and only the columns from `first_col` on."""
            # The copy leaves out the dropped leading columns: kept, they would stay in the
            # buffer until its next growth, and use up its spare room.
            start = self._start + first_col
            self._k, self._v = self._k[rows, :, start:], self._v[rows, :, start:]
            self._start, self._end = 0, self._end - start

    return GrowingLayer
