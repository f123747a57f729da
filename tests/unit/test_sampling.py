"""Resumable seeded sample order: deterministic, a permutation per epoch, resumes mid-epoch, shards over ranks."""

from __future__ import annotations

import itertools

import pytest
import torch

from iqa_bench.data import sampling
from iqa_bench.data.sampling import SeededItems, StepSeededSampler, mix_seed
from iqa_bench.errors import ConfigError


def _stream(n: int, b: int, seed: int, step: int) -> list[tuple[int, int]]:
    return list(StepSeededSampler(n, b, seed, lambda: step))


def test_each_epoch_is_a_seeded_permutation():
    n, b = 23, 4  # 5 full batches per epoch, 3 images dropped
    e0, e1 = _stream(n, b, 0, 0), _stream(n, b, 0, 5)
    assert len(e0) == len(e1) == 20 == len(StepSeededSampler(n, b, 0, lambda: 0))
    for epoch in (e0, e1):
        assert len({i for i, _ in epoch}) == 20 and all(0 <= i < n for i, _ in epoch)
    assert [i for i, _ in e0] != [i for i, _ in e1]  # a new order every epoch
    assert e0 == _stream(n, b, 0, 0)  # deterministic
    assert e0 != _stream(n, b, 1, 0)  # seed matters
    assert len({s for _, s in e0 + e1}) == 40  # every draw has its own item seed


def test_resuming_mid_epoch_continues_the_uninterrupted_stream():
    n, b = 23, 4
    full = _stream(n, b, 7, 0) + _stream(n, b, 7, 5)  # epochs 0 and 1, uninterrupted
    for step in range(10):
        resumed = _stream(n, b, 7, step)
        start = step * b
        assert resumed == full[start : start + len(resumed)]
        assert len(resumed) == (5 - step % 5) * b


def test_ranks_take_disjoint_slices_of_each_global_batch(monkeypatch):
    n, b = 40, 4
    single = _stream(n, 2 * b, 3, 0)  # one process, global batch 2b
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(sampling, "world_info", lambda r=rank: (r, 2))
        shards.append(_stream(n, b, 3, 0))
    for k in range(len(shards[0]) // b):
        merged = shards[0][k * b : (k + 1) * b] + shards[1][k * b : (k + 1) * b]
        assert merged == single[k * 2 * b : (k + 1) * 2 * b]


def test_batch_larger_than_dataset_is_a_config_error():
    with pytest.raises(ConfigError, match="data.pretrain.batch_size"):
        StepSeededSampler(3, 4, 0, lambda: 0)


class _RandomItems(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(3) + index


def test_seeded_items_are_reproducible_and_leave_the_global_rng_alone():
    ds = SeededItems(_RandomItems())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = ds[(2, mix_seed(0, 1))]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, ds[(2, mix_seed(0, 1))])
    assert not torch.equal(a, ds[(2, mix_seed(0, 2))])


def test_the_run_seed_changes_both_the_order_and_the_item_seeds():
    a, b = _stream(23, 4, 0, 0), _stream(23, 4, 1, 0)
    assert [i for i, _ in a] != [i for i, _ in b]  # the epoch's permutation depends on the run seed
    assert not {s for _, s in a} & {s for _, s in b}  # and so does every item's own seed
    assert StepSeededSampler(23, 4, 0, lambda: 0).batches_per_epoch() == 5  # one process by default


def test_mix_seed_avalanche():
    """Flipping one input bit flips about half of the output bits, each output bit about half the time
    (strict avalanche criterion), so neighbouring (seed, epoch, position) triples get unrelated seeds."""
    import random

    rng = random.Random(0)
    flips = torch.zeros(63)
    total = 0
    for _ in range(150):
        parts = [rng.getrandbits(40) for _ in range(3)]
        base = mix_seed(*parts)
        for k in range(3):
            for bit in range(0, 40, 3):
                changed = list(parts)
                changed[k] ^= 1 << bit
                diff = base ^ mix_seed(*changed)
                flips += torch.tensor([(diff >> j) & 1 for j in range(63)], dtype=torch.float32)
                total += 1
    rate = flips / total
    assert 0.45 < float(rate.mean()) < 0.55, float(rate.mean())
    assert float(rate.min()) > 0.4 and float(rate.max()) < 0.6, (float(rate.min()), float(rate.max()))


def test_mix_seed_is_stable_and_spreads():
    seeds = {mix_seed(a, b) for a, b in itertools.product(range(30), range(30))}
    assert len(seeds) == 900 and all(0 <= s < 2**63 for s in seeds)
    assert mix_seed(1, 2) == mix_seed(1, 2) != mix_seed(2, 1)
