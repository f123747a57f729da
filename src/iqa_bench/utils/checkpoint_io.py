"""Checkpoints that never block a rerun: atomic saving, refusal of diverged weights, verified resuming.

* `AtomicCheckpointIO` (a Lightning `CheckpointIO` plugin, wired into every `conf/trainer/*.yaml`): writes every
  checkpoint (ModelCheckpoint's, `trainer.save_checkpoint`'s) as a temporary file in the destination folder,
  fsyncs and renames it, so a full disk or a kill mid-write leaves the previous checkpoint intact (Lightning's own
  writer stages the file elsewhere and moves it, which across filesystems is a copy that can be cut off). It
  refuses to save weights that are not finite (`DivergedError`), so a diverged run never overwrites the last
  good checkpoint; a checkpoint that cannot be read back on resume is a one-line `UserError`.
* `checkpoint_problem(path)`: why a file is not a usable checkpoint (None if it is).
* `resume_from(folder)`: the newest usable checkpoint of a run folder (`last.ckpt` first), with a one-line warning
  for each unusable one passed over; `UserError` for a file that is not a checkpoint at all (a foreign pickle).
* `weights_fingerprint(module)`: SHA-256 of the weights, recorded with a regressor so `predict` can refuse a
  different checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from iqa_bench.errors import UserError
from iqa_bench.utils.atomic import atomic_write_with

log = logging.getLogger(__name__)

__all__ = [
    "AtomicCheckpointIO",
    "DivergedError",
    "ForeignCheckpointError",
    "checkpoint_problem",
    "non_finite_tensors",
    "resume_from",
    "weights_fingerprint",
]


class DivergedError(UserError):
    """Training produced a non-finite loss or non-finite weights (the message names the step)."""


class ForeignCheckpointError(UserError):
    """A file in the checkpoint folder loads but is not a Lightning checkpoint (or is an unsafe pickle)."""


def non_finite_tensors(state: Mapping[str, Any], limit: int = 3) -> list[str]:
    """Names (at most `limit`) of the floating-point tensors of `state` holding NaN or inf."""
    bad: list[str] = []
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad.append(str(name))
            if len(bad) >= limit:
                break
    return bad


def _is_local(path: Any) -> bool:
    return "://" not in str(path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` with an atomic in-folder write, a finite-weights check and one-line load errors."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        bad = non_finite_tensors(checkpoint.get("state_dict") or {})
        if bad:
            raise DivergedError(
                f"training diverged: non-finite weights ({', '.join(bad)}) at step "
                f"{checkpoint.get('global_step', '?')}; not writing {path}, the last good checkpoint is kept "
                "(lower the learning rate, or check the data)"
            )
        atomic_write_with(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        if not _is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        kwargs: dict[str, Any] = {} if map_location is None else {"map_location": map_location}
        try:
            return super().load_checkpoint(path, weights_only=weights_only, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable file: one line naming it
            raise UserError(f"cannot load checkpoint {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """`Type: first sentence of the message` (at most ~160 characters)."""
    text = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:160]
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def checkpoint_problem(path: str | os.PathLike[str]) -> str | None:
    """None if `path` holds a complete Lightning checkpoint with finite weights, else why not (one line).

    The file is read with `torch.load(weights_only=True)`, so nothing in it is executed. Raises
    `ForeignCheckpointError` when the file is readable but not a Lightning checkpoint (an arbitrary pickle, a
    plain state dict): such a file was not written by a run and must not be overwritten or silently ignored.
    """
    path = Path(path)
    try:
        if not path.is_file():
            return "not a regular file"
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # e.g. "Detected pickle protocol 4": the verdict below says it all
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise ForeignCheckpointError(
                f"{path} is not a checkpoint written by iqa_bench (it holds arbitrary Python objects, which are "
                "not loaded); move it away, or pass resume=false to start afresh"
            ) from None
        return f"damaged ({_reason(exc)})"
    except Exception as exc:  # noqa: BLE001 - truncated zip, EOF, garbage bytes: all unusable, none fatal
        return f"damaged or truncated ({_reason(exc)})"
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        raise ForeignCheckpointError(
            f"{path} is not a Lightning checkpoint (no 'state_dict' / 'global_step'); move it away, or pass "
            "resume=false to start afresh"
        )
    bad = non_finite_tensors(ckpt["state_dict"])
    if bad:
        return f"non-finite weights ({', '.join(bad)})"
    return None


def resume_from(folder: str | os.PathLike[str]) -> str | None:
    """The checkpoint to resume a run from: `folder/last.ckpt` if usable, else the newest usable `*.ckpt` of
    `folder` (each unusable one passed over with a one-line warning); None when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    last = folder / "last.ckpt"
    others = sorted(
        (p for p in folder.glob("*.ckpt") if p.name != last.name and p.is_file()),
        key=lambda p: p.stat().st_mtime_ns,
        reverse=True,
    )
    candidates = ([last] if last.exists() else []) + others
    passed: list[Path] = []
    for p in candidates:
        problem = checkpoint_problem(p)
        if problem is None:
            if passed:
                log.warning("resuming from the newest good checkpoint %s instead", p)
            return str(p)
        log.warning("skipping checkpoint %s: %s", p, problem)
        passed.append(p)
    if passed:
        log.warning(
            "no usable checkpoint in %s: starting from step 0 (the broken file(s) will be replaced)", folder
        )
    return None


def weights_fingerprint(module: torch.nn.Module | Mapping[str, Any]) -> str:
    """SHA-256 (hex) of every tensor of a module's state dict (names, dtypes, shapes and bytes, sorted by name)."""
    state = module.state_dict() if isinstance(module, torch.nn.Module) else module
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
