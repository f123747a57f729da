"""Resumable, seeded sample order for pretraining.

Every sample a run draws is a pure function of `(seed, epoch, position in the epoch)`: the epoch's permutation of
the images and the item's own RNG seed (random crops, partner image, bad-file fallback) are derived from them.
The sampler starts each epoch at the batch the trainer's `global_step` points to, so a run resumed from a
checkpoint (even one saved mid-epoch) draws exactly the batches an uninterrupted run would have drawn, with any
number of dataloader workers. Under DDP each rank takes its own interleaved slice of every global batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from iqa_bench.errors import ConfigError
from iqa_bench.losses.distributed import world_info

_MASK = (1 << 63) - 1


def mix_seed(*parts: int) -> int:
    """Deterministic 63-bit seed from integers (splitmix64-style mixing; stable across processes/platforms)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return h & _MASK


class StepSeededSampler(Sampler[tuple[int, int]]):
    """Yields `(image index, item seed)` pairs, one epoch per `iter()`, starting at the current step's batch.

    Args:
        num_items: images in the dataset (N).
        batch_size: samples per batch per process (B).
        seed: run seed.
        global_step: callable returning the number of optimiser steps taken so far (the trainer's `global_step`;
            0 outside a trainer). One step = one batch (no gradient accumulation).

    An epoch is `N // (B * world)` batches per rank (incomplete last batches are dropped).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, global_step: Callable[[], int]) -> None:
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.global_step = global_step
        _, world = world_info()
        if self.batches_per_epoch(world) == 0:
            raise ConfigError(
                f"data.pretrain.batch_size: {self.batch_size} x {world} process(es) exceeds the number of "
                f"pretraining images ({self.num_items})"
            )

    def batches_per_epoch(self, world: int = 1) -> int:
        return self.num_items // (self.batch_size * world)

    def __len__(self) -> int:
        _, world = world_info()
        return self.batches_per_epoch(world) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rank, world = world_info()
        per_epoch = self.batches_per_epoch(world)
        epoch, first_batch = divmod(int(self.global_step()), per_epoch)
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        perm = torch.randperm(self.num_items, generator=g).tolist()
        for b in range(first_batch, per_epoch):
            for j in range(self.batch_size):
                pos = (b * world + rank) * self.batch_size + j  # position in the epoch's global order
                yield perm[pos], mix_seed(self.seed, epoch, pos)


class SeededItems(Dataset):
    """Wraps a dataset whose `__getitem__(index)` draws from torch's global RNG: item `(index, item_seed)` is
    computed with the global RNG seeded by `item_seed` (and restored afterwards), so it is reproducible."""

    def __init__(self, inner: Dataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, item_seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed)
            return self.inner[index]
