"""Seeded random crops of evaluation images for the finetuning evaluator (`eval/finetune.py`).

Every crop is drawn from a NumPy generator seeded by `(seed..., item index)`, so training, validation and the
30-crop test prediction are reproducible and independent of batch order, worker count and device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

__all__ = ["CropSet", "crop_loader", "image_store", "random_crops"]


def random_crops(img: torch.Tensor, size: int, n: int, rng: np.random.Generator) -> torch.Tensor:
    """`n` random `size` x `size` crops of a `(3, H, W)` image -> `(n, 3, size, size)` (same dtype); an image
    smaller than `size` is zero-padded at the bottom/right first (as the 5-crop evaluation does)."""
    h, w = img.shape[-2:]
    if h < size or w < size:
        img = F.pad(img, (0, max(0, size - w), 0, max(0, size - h)))
        h, w = img.shape[-2:]
    tops = rng.integers(0, h - size + 1, size=n)
    lefts = rng.integers(0, w - size + 1, size=n)
    return torch.stack([img[:, t : t + size, c : c + size] for t, c in zip(tops.tolist(), lefts.tolist())])


class CropSet(Dataset):
    """Item i -> (`n` crops of image `indices[i]`, uint8 `(n, 3, size, size)`; position i). Crops are seeded by
    `(*seed, image index)`. Decoded images are kept in `store` (a dict shared across epochs) when it is given."""

    def __init__(
        self,
        ds: Any,
        indices: np.ndarray,
        size: int,
        n: int,
        seed: Sequence[int],
        store: dict[int, torch.Tensor] | None = None,
    ) -> None:
        self.ds, self.indices, self.size, self.n = ds, np.asarray(indices), size, n
        self.seed, self.store = [int(s) for s in seed], store

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        idx = int(self.indices[i])
        img = self.store.get(idx) if self.store is not None else None
        if img is None:
            img = self.ds[idx]
            if self.store is not None:
                self.store[idx] = img
        rng = np.random.default_rng([*self.seed, idx])
        return random_crops(img, self.size, self.n, rng), i


def crop_loader(
    crops: CropSet, batch_size: int, num_workers: int, shuffle_seed: int | None = None
) -> DataLoader:
    """Batches of `(crops (b, n, 3, s, s) uint8, positions (b,))`; shuffled with a seeded generator when
    `shuffle_seed` is given, in order otherwise."""
    gen = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
    return DataLoader(
        crops,
        batch_size=batch_size,
        shuffle=shuffle_seed is not None,
        generator=gen,
        num_workers=num_workers,
        persistent_workers=False,
    )


def image_store(ds: Any, num_workers: int, max_cache_mb: float) -> dict[int, torch.Tensor] | None:
    """A dict for keeping decoded images across epochs, or None (worker processes would each fill their own copy;
    a set larger than `max_cache_mb`, judged by its first image, is decoded again every epoch)."""
    if num_workers > 0 or len(ds) == 0:
        return None
    first = ds[0]
    if first.numel() * first.element_size() * len(ds) > max_cache_mb * 2**20:
        return None
    return {0: first}
