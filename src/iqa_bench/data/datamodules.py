"""Lightning datamodule for pretraining: image list -> method-specific uint8 samples -> batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from iqa_bench.data.pretrain import SAMPLE_FORMATS, PretrainImages
from iqa_bench.data.sampling import SeededItems, StepSeededSampler
from iqa_bench.errors import ConfigError
from iqa_bench.losses.distributed import world_info


def batches_done(global_step: int, accumulate: int, batches_per_epoch: int) -> int:
    """Batches consumed after `global_step` optimiser steps with `accumulate` batches per step and epochs of
    `batches_per_epoch` batches. Lightning steps the optimiser every `accumulate` batches and once more on an
    epoch's last batch, so an epoch is ⌈batches_per_epoch / accumulate⌉ optimiser steps (= global_step with
    accumulate 1)."""
    steps_per_epoch = math.ceil(batches_per_epoch / accumulate)
    epoch, step_in_epoch = divmod(int(global_step), steps_per_epoch)
    return epoch * batches_per_epoch + min(step_in_epoch * accumulate, batches_per_epoch)


class PretrainDataModule(L.LightningDataModule):
    """Pretraining data.

    Args:
        images: a callable returning the list of image paths (e.g. the built-in set builder, or a folder lister),
            called once in `setup`.
        crop_size: side of the square crops the workers cut (uint8).
        batch_size: samples per batch (per process).
        num_workers, pin_memory, persistent_workers: DataLoader settings.
        sample_format: which sample the method needs (set by the method; e.g. "arniqa_pairs").
        seed: seed of the sample order and of every sample's random crops (see `data/sampling.py`: a resumed
            run draws exactly the batches an uninterrupted one would).
        path: the image folder of folder-based sources (`data/pretrain=folder`); the `images` callable reads it,
            it is kept here so that `data.pretrain.path=DIR` is the one key a user sets.
    """

    def __init__(
        self,
        images: Callable[[], Sequence[str | Path]],
        crop_size: int = 128,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        sample_format: str = "arniqa_pairs",
        seed: int = 0,
        path: str | None = None,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ConfigError(f"data.pretrain.batch_size must be > 0, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"data.pretrain.num_workers must be >= 0, got {num_workers}")
        if sample_format not in SAMPLE_FORMATS:
            raise ConfigError(
                f"data.pretrain.sample_format: unknown {sample_format!r}; known: {sorted(SAMPLE_FORMATS)}"
            )
        self.images = images
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.sample_format = sample_format
        self.seed = int(seed)
        self.path = path
        self.dataset: PretrainImages | None = None
        self.sampler: StepSeededSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            paths = list(self.images())
            self.dataset = SAMPLE_FORMATS[self.sample_format](paths, self.crop_size)

    def _batches_done(self) -> int:
        """Batches (per process) the run has consumed so far, from the trainer's optimiser steps: the sampler starts
        the epoch there (also on resume). See `batches_done`."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or self.sampler is None:
            return 0
        _, world = world_info()
        return batches_done(
            int(trainer.global_step),
            int(getattr(trainer, "accumulate_grad_batches", 1) or 1),
            self.sampler.batches_per_epoch(world),
        )

    def train_dataloader(self) -> DataLoader:
        assert self.dataset is not None, "call setup() first"
        sampler = StepSeededSampler(len(self.dataset), self.batch_size, self.seed, self._batches_done)
        self.sampler = sampler
        return DataLoader(
            SeededItems(self.dataset),
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers,
        )
