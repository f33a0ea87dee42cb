"""Which rows share a training batch: length groups, also for small datasets."""

import random

import torch

from utils.training.trainer import length_grouped_order


def _padding(lengths: list[int], order: list[int], batch_size: int) -> int:
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_small_dataset_forms_one_length_group() -> None:
    """24 rows in batches of 8: transformers' default keeps 4 random groups of one batch
    each (random batches); here the rows are sorted by length into 3 batches."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    rng = random.Random(0)
    lengths = [rng.randint(60, 160) for _ in range(24)]
    order = length_grouped_order(lengths, 8, torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(24))
    by_length = sorted(range(24), key=lambda i: -lengths[i])
    assert _padding(lengths, order, 8) == _padding(lengths, by_length, 8)
    default = get_length_grouped_indices(lengths, 8, generator=torch.Generator().manual_seed(0))
    assert _padding(lengths, default, 8) > 2 * _padding(lengths, order, 8)


def test_large_dataset_keeps_random_groups_of_fifty_batches() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(60, 160) for _ in range(4000)]
    first = length_grouped_order(lengths, 8, torch.Generator().manual_seed(0))
    second = length_grouped_order(lengths, 8, torch.Generator().manual_seed(1))
    assert sorted(first) == list(range(4000)) and first != second
    # Each group of 400 rows is sorted (longest first, bar the swap that puts the longest
    # row of all first), so batches hold similar lengths but differ between seeds.
    group = first[400:800]
    assert [lengths[i] for i in group] == sorted((lengths[i] for i in group), reverse=True)
    assert set(first[:400]) != set(second[:400])


def test_distinct_first_deals_every_input_once_before_any_twice() -> None:
    from utils.training.trainer import DistinctFirst, distinct_first_order

    # 30 inputs with 1-3 references each (ViGGO-like), lengths varied.
    inputs = [f"mr{i % 30}" for i in range(75)]
    lengths = [10 + (i * 7) % 40 for i in range(75)]
    order = distinct_first_order(inputs, lengths, batch_size=2, seed=0)
    assert sorted(order) == list(range(75))  # a permutation: every row once
    # With equal lengths the length sort keeps the deal: the first 30 rows are 30 inputs.
    by_round = distinct_first_order(inputs, [1] * 75, batch_size=1, seed=0)
    assert {inputs[i] for i in by_round[:30]} == set(inputs)  # equal lengths: rounds intact
    sampler = DistinctFirst(inputs, lengths, 1, seed=0)
    assert list(sampler) != list(sampler)  # a new deal each epoch
    assert len(sampler) == 75
