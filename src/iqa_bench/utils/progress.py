"""Progress output that works both in a terminal and in a log file (SLURM, CI, `> log 2>&1`).

In a terminal: tqdm bars (Lightning's bar for training). Without one, a bar is useless (it is rewritten with
carriage returns and appears only at the end), so progress is printed as plain lines, at most one every
`every_s` seconds plus the last one:

    [train] step 120/700 (17%) loss=1.234 | 0:01:02 elapsed, ~0:05:00 left
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import lightning as L
from lightning.pytorch.callbacks import ProgressBar

T = TypeVar("T")


def is_terminal() -> bool:
    """True when stderr is an interactive terminal (progress bars render), False for files and pipes."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _hms(seconds: float) -> str:
    return str(timedelta(seconds=int(max(0.0, seconds))))


class PlainLines:
    """Prints `[name] done/total (pct%) extra | elapsed, ~left` at most every `every_s` seconds (and at the end)."""

    def __init__(self, name: str, total: int | None, every_s: float = 30.0, stream: Any = None) -> None:
        self.name, self.total, self.every_s = name, total, float(every_s)
        self.stream = stream
        self.start = self.last = time.monotonic()

    def update(self, done: int, extra: str = "", force: bool = False) -> bool:
        """Print a line if `every_s` has passed since the last one (or `force`); returns whether it printed."""
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return False
        self.last = now
        elapsed = now - self.start
        if self.total:
            left = elapsed / max(done, 1) * (self.total - done)
            pos = f"{done}/{self.total} ({100 * done / self.total:.0f}%)"
            times = f"{_hms(elapsed)} elapsed, ~{_hms(left)} left"
        else:
            pos, times = str(done), f"{_hms(elapsed)} elapsed"
        print(
            f"[{self.name}] {pos}{' ' + extra if extra else ''} | {times}",
            file=self.stream or sys.stderr,
            flush=True,
        )
        return True


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, every_s: float = 30.0, leave: bool = False
) -> Iterator[T]:
    """`iterable` with progress: a tqdm bar in a terminal, plain lines (see `PlainLines`) otherwise."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if is_terminal():
        from tqdm.auto import tqdm

        yield from tqdm(iterable, desc=desc, total=total, unit="batch", leave=leave, dynamic_ncols=True)
        return
    lines = PlainLines(desc, total, every_s)
    n = 0
    for item in iterable:
        yield item
        n += 1
        lines.update(n)
    lines.update(n, force=True)


class PlainProgressBar(ProgressBar):
    """Lightning progress "bar" for logs: a plain line with step, loss and ETA every `every_s` seconds and at the
    end of training. Used by `train` instead of Lightning's tqdm bar when stderr is not a terminal."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = float(every_s)
        self._enabled = True
        self._lines: PlainLines | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _total(self, trainer: L.Trainer) -> int | None:
        steps = trainer.max_steps
        return int(steps) if steps and steps > 0 else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lines = PlainLines("train", self._total(trainer), self.every_s)

    def _extra(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        metrics = self.get_metrics(trainer, pl_module)
        keys = [k for k in metrics if "loss" in k][:2]
        return " ".join(
            f"{k}={metrics[k]}" if isinstance(metrics[k], str) else f"{k}={metrics[k]:.4g}" for k in keys
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._enabled and self._lines is not None and trainer.is_global_zero:
            self._lines.update(trainer.global_step, self._extra(trainer, pl_module))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and self._lines is not None and trainer.is_global_zero:
            self._lines.update(trainer.global_step, self._extra(trainer, pl_module), force=True)
