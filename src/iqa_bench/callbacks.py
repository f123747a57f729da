"""Training callbacks: a grid of distorted training samples with their type/level labels, every N steps.

The grid is always saved as a PNG (+ captions) in the run directory (`samples/step<N>.png`), and sent to every
logger that takes images: W&B (`log_image`) and TensorBoard (`add_images`). Methods provide the images through
`PretrainMethod.sample_grid(batch)`; a method that returns None is skipped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

from iqa_bench.utils.atomic import atomic_write_text, atomic_write_with

log = logging.getLogger(__name__)


class SampleGridLogger(L.Callback):
    """Log up to `max_images` distorted views of the current batch every `every_n_steps` optimiser steps.

    Args:
        every_n_steps: period in steps (step 0 included); 0 disables the callback.
        max_images: images per grid.
        save_png: also write `<run_dir>/samples/step<NNNNNN>.png` and `.json` (captions).
        dirpath: where the PNGs go (default: the trainer's `default_root_dir`/samples).
    """

    def __init__(
        self,
        every_n_steps: int = 200,
        max_images: int = 16,
        save_png: bool = True,
        dirpath: str | None = None,
    ) -> None:
        if every_n_steps < 0 or max_images < 1:
            raise ValueError("callbacks.sample_grid: every_n_steps must be >= 0 and max_images >= 1")
        self.every_n_steps = int(every_n_steps)
        self.max_images = int(max_images)
        self.save_png = bool(save_png)
        self.dirpath = dirpath

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step % self.every_n_steps or not trainer.is_global_zero:
            return
        grid_fn = getattr(pl_module, "sample_grid", None)
        out = grid_fn(batch) if grid_fn is not None else None
        if out is None:
            return
        images, captions = out
        images = images[: self.max_images].detach().float().clamp(0, 1).cpu()
        captions = list(captions[: len(images)])
        if self.save_png:
            self._save(trainer, images, captions, step)
        for lg in trainer.loggers:
            try:
                if hasattr(lg, "log_image"):  # W&B
                    lg.log_image(key="samples/distorted", images=list(images), caption=captions, step=step)
                elif type(lg).__name__ == "TensorBoardLogger":
                    lg.experiment.add_images("samples/distorted", images, step)
                    lg.experiment.add_text("samples/distorted_labels", "  \n".join(captions), step)
            except Exception as exc:  # noqa: BLE001 - a logging backend must never kill a training run
                log.warning("could not log the sample grid to %s: %s", type(lg).__name__, exc)

    def _save(self, trainer: L.Trainer, images: torch.Tensor, captions: list[str], step: int) -> None:
        from torchvision.utils import make_grid, save_image

        folder = Path(self.dirpath or trainer.default_root_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        grid = make_grid(images, nrow=min(8, len(images)), padding=2, pad_value=1.0)
        path = folder / f"step{step:06d}.png"
        atomic_write_with(path, lambda tmp: save_image(grid, tmp, format="png"))
        atomic_write_text(
            path.with_suffix(".json"), json.dumps({"step": step, "captions": captions}, indent=1)
        )
