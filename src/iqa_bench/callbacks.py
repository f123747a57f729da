"""Training callbacks: a grid of distorted training samples with their type/level labels, every N steps; a
guard that stops at the first non-finite loss; a guard that makes SIGTERM end a run promptly and resumably.

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


class FiniteLossGuard(L.Callback):
    """Stop at the first non-finite (NaN/inf) training loss with a one-line `DivergedError` naming the step.

    The check runs in `on_before_backward`, i.e. before the optimiser touches the weights, so the model and every
    checkpoint stay those of the last finite step (`AtomicCheckpointIO` also refuses to save non-finite weights).
    To avoid a device sync every step, the first bad step is recorded on the device and read every
    `every_n_steps` steps (1 = every step: the weights are never updated with a non-finite loss). Under DDP the
    flag is reduced over ranks, so every rank stops together.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        if every_n_steps < 1:
            raise ValueError("callbacks.finite_loss.every_n_steps must be >= 1")
        self.every_n_steps = int(every_n_steps)
        self._first_bad: torch.Tensor | None = None

    def on_before_backward(self, trainer: L.Trainer, pl_module: Any, loss: torch.Tensor) -> None:
        step = trainer.global_step
        bad = ~torch.isfinite(loss.detach()).all()
        if self._first_bad is None or self._first_bad.device != loss.device:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        first = self._first_bad
        self._first_bad = torch.where(bad & (first < 0), torch.full_like(first, step), first)
        if (step + 1) % self.every_n_steps == 0:
            self.check(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.every_n_steps > 1 and trainer.global_step % self.every_n_steps == 0:
            self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        """Raise `DivergedError` if a non-finite loss has been seen (on any rank)."""
        from iqa_bench.utils.checkpoint_io import DivergedError

        if self._first_bad is None:
            return
        first = self._first_bad
        if trainer.world_size > 1:
            first = trainer.strategy.reduce(first.clone().float(), reduce_op="max").long()
        step = int(first)
        if step >= 0:
            ckpt = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
            raise DivergedError(
                f"training diverged: the loss is not finite (NaN/inf) at step {step}; stopped, the last good "
                f"checkpoint is kept ({ckpt}). Lower the learning rate or check the data."
            )


class TerminationGuard(L.Callback):
    """SIGTERM (SLURM's time limit, `scancel`, `kill`) ends a run promptly and resumably.

    Lightning stops after the current batch on SIGTERM; this callback then saves `last.ckpt` (in the
    ModelCheckpoint's folder, atomically), prints one line saying so, and makes the process exit with status 143
    (128 + SIGTERM) instead of 0. If the run has not ended `grace_s` seconds after the signal (a hung file system,
    a blocked read), the process exits with status 143 without saving; the previous checkpoint is intact either
    way. `grace_s: 0` disables the hard exit. The handler wraps Lightning's own one while training runs (Lightning
    puts the original handler back when `fit` ends).
    """

    EXIT_CODE = 143

    def __init__(self, grace_s: float = 120.0) -> None:
        if grace_s < 0:
            raise ValueError("callbacks.termination.grace_s must be >= 0")
        self.grace_s = float(grace_s)
        self._previous: Any = None
        self._active = False
        self._timer: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.getsignal(signal.SIGTERM)  # Lightning's handler chain, registered by now
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self._active = True

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        import os
        import signal
        import threading

        if not self._active:  # left installed after fit: behave like the handler it replaced
            if callable(self._previous):
                self._previous(signum, frame)
            elif self._previous != signal.SIG_IGN:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)
            return
        if self._timer is None and self.grace_s > 0:
            self._timer = threading.Timer(self.grace_s, self._hard_exit)
            self._timer.daemon = True
            self._timer.start()
        if callable(self._previous):
            self._previous(signum, frame)

    def _hard_exit(self) -> None:
        import os
        import sys

        print(
            f"error: SIGTERM: the run did not stop within {self.grace_s:g} s; exiting without a new checkpoint "
            "(the previous one is intact: rerun the same command to resume)",
            file=sys.stderr,
            flush=True,
        )
        os._exit(self.EXIT_CODE)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._active = False

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        self._active = False
        if not isinstance(exception, SIGTERMException):
            return
        exception.code = self.EXIT_CODE
        saved = None
        cb = trainer.checkpoint_callback
        dirpath = getattr(cb, "dirpath", None)
        if cb is not None and dirpath:
            path = str(Path(dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}")
            try:
                trainer.save_checkpoint(path)
                cb.last_model_path = path
                saved = path
            except Exception as exc:  # noqa: BLE001 - report, never mask the termination
                log.warning("SIGTERM: could not save a checkpoint: %s", exc)
        if trainer.is_global_zero:
            where = f"checkpoint saved to {saved}" if saved else "no new checkpoint"
            print(
                f"Stopped by SIGTERM at step {trainer.global_step}: {where}; rerun the same command to resume.",
                flush=True,
            )
        if self._timer is not None:
            self._timer.cancel()
