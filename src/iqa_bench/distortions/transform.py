"""Applying distortions: one distortion to a batch (:func:`apply`) or a per-sample plan (:func:`apply_plan`).

Both validate their inputs, run the ops in float32 with autocast disabled (so they work inside bf16/fp16
autocast regions) and without autograd, clip to [0,1] after every distortion and return the input dtype.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator

import torch
from torch import Tensor

from ..utils import codec_pool
from .bank import _SPECS, get_spec
from .functional.compression import jpeg2000_start
from .sampling import DistortionPlan

__all__ = ["apply", "apply_plan"]

NUM_LEVELS = 5
_RANGE_TOL = 1e-3
# On the CPU, ops run on chunks of this many images: a 64x3x224x224 float32 batch (38 MB) is past glibc's
# mmap threshold, so every intermediate is a fresh page-faulting mapping and falls out of cache; chunks of
# 8 (4.8 MB) are 2-8x faster. Chunks are a cache-blocking device: each chunk is still processed vectorised.
CPU_CHUNK = 8
# Ops dominated by a sequential loop over small steps rather than by full-image intermediates prefer big chunks.
# jpeg2000 codes small uint8 images in worker processes: give them the whole batch at once.
_CPU_CHUNK_BY_OP = {"noneccpatch": 64, "jpeg2000": 1024}
# Ops started in every column before the others and finished just before a later step reads their rows (CPU
# codecs in worker processes).
_DEFERRED: dict[str, Callable[[Tensor, Tensor], Callable[[], Tensor]]] = {"jpeg2000": jpeg2000_start}
_FIRST = frozenset(i for i, spec in enumerate(_SPECS) if spec.name in _DEFERRED)
# (24, 5) float64 parameter table, row = type id, column = level - 1
_PARAMS = torch.tensor([s.levels for s in _SPECS], dtype=torch.float64)


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be (B,3,H,W) RGB in [0,1], got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor in [0,1], got dtype {images.dtype}")
    if images.numel():
        lo, hi = torch.aminmax(images.detach())
        if float(lo) < -_RANGE_TOL or float(hi) > 1 + _RANGE_TOL:
            raise ValueError(f"images must be in [0,1], got values in [{float(lo):.4g}, {float(hi):.4g}]")


def _check_levels(level: int | Tensor, batch: int) -> Tensor:
    """``level`` (int or (B,) integer tensor) -> (B,) int64 CPU tensor in 1..5."""
    if isinstance(level, Tensor):
        if level.is_floating_point() or level.dtype == torch.bool or level.shape != (batch,):
            raise ValueError(
                f"level must be an int or an integer tensor of shape ({batch},), got "
                f"{level.dtype} {tuple(level.shape)}"
            )
        lv = level.detach().to("cpu", torch.long)
    elif isinstance(level, int) and not isinstance(level, bool):
        lv = torch.full((batch,), level, dtype=torch.long)
    else:
        raise ValueError(
            f"level must be an int in 1..{NUM_LEVELS} or a LongTensor (B,), got {type(level).__name__}"
        )
    if lv.numel() and (int(lv.min()) < 1 or int(lv.max()) > NUM_LEVELS):
        raise ValueError(
            f"level must be in 1..{NUM_LEVELS}, got values in [{int(lv.min())}, {int(lv.max())}]"
        )
    return lv


def _run(type_index: int, x: Tensor, levels: Tensor, generator: torch.Generator | None) -> Tensor:
    """Op ``type_index`` on float32 ``x (b,3,H,W)`` with CPU ``levels (b,)`` in 1..5, clipped to [0,1]."""
    spec = _SPECS[type_index]
    params = _PARAMS[type_index, levels - 1].to(device=x.device, dtype=torch.float32)
    step = _chunk(type_index, x)
    if x.shape[0] <= step:
        return spec.fn(x, params, generator).clamp_(0.0, 1.0)
    out = torch.empty_like(x)
    for i in range(0, x.shape[0], step):
        out[i : i + step] = spec.fn(x[i : i + step], params[i : i + step], generator).clamp_(0.0, 1.0)
    return out


def _chunk(type_index: int, x: Tensor) -> int:
    """Images per op call: the whole batch off the CPU, else ``CPU_CHUNK`` (or the op's override)."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    return _CPU_CHUNK_BY_OP.get(_SPECS[type_index].name, CPU_CHUNK)


def _run_inplace(
    x: Tensor, rows: Tensor, type_index: int, levels: Tensor, generator: torch.Generator | None
) -> Callable[[], None] | None:
    """Replace ``x[rows]`` by op ``type_index`` applied at CPU ``levels`` (one per row), chunked on the CPU.

    A deferred op (JPEG 2000, coded in worker processes) only starts here and returns ``finish()``, which writes
    its rows; :func:`compose_steps` calls it just before a later call touches one of those rows, or at the end.
    """
    start = _DEFERRED.get(_SPECS[type_index].name)
    if start is not None:
        params = _PARAMS[type_index, levels - 1].to(dtype=torch.float32)
        idx = rows.to(x.device)
        result = start(x.index_select(0, idx), params)

        def finish() -> None:
            x.index_copy_(0, idx, result())

        return finish
    step = _chunk(type_index, x)
    for i in range(0, rows.numel(), step):
        idx = rows[i : i + step].to(x.device)
        x.index_copy_(0, idx, _run(type_index, x.index_select(0, idx), levels[i : i + step], generator))


def apply(
    name: str,
    images: Tensor,
    level: int | Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply distortion ``name`` at ``level`` to a batch.

    Args:
        name: one of :func:`iqa_bench.distortions.names`.
        images: ``(B,3,H,W)`` floating tensor in [0,1], any device.
        level: int in 1..5 for the whole batch, or an integer tensor ``(B,)`` of per-sample levels.
        generator: source of randomness for stochastic distortions (same seed -> same output on a device).

    Returns:
        ``(B,3,H,W)`` tensor in [0,1], same dtype and device as ``images``.
    """
    spec = get_spec(name)
    _check_images(images)
    levels = _check_levels(level, images.shape[0])
    index = _SPECS.index(spec)
    if images.shape[0] == 0 or images.numel() == 0:
        return images.clone()
    with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
        out = _run(index, images.float().contiguous(), levels, generator)
    return out.to(images.dtype)


def apply_plan(images: Tensor, plan: DistortionPlan, generator: torch.Generator | None = None) -> Tensor:
    """Apply a per-sample :class:`DistortionPlan` to ``images (B,3,H,W)`` in [0,1].

    Step ``s`` of sample ``i`` is applied to ``images[i]`` in column order, clipping to [0,1] after every step.
    Samples are grouped by (step, type) with ``index_select``/``index_copy``; the loop runs over steps and
    distortion types, never over samples. Calling it on several views with the same plan gives the same
    types/levels with fresh randomness per call (the generator advances), as the official loader does.

    Returns:
        ``(B,3,H,W)`` tensor, same dtype and device as ``images``.
    """
    _check_images(images)
    if not isinstance(plan, DistortionPlan):
        raise ValueError(f"plan must be a DistortionPlan, got {type(plan).__name__}")
    if plan.batch_size != images.shape[0]:
        raise ValueError(f"plan has batch_size {plan.batch_size} but images has {images.shape[0]} samples")
    return compose_steps(images, plan.type_ids, plan.levels, len(_SPECS), _run_inplace, generator, _FIRST)


def _finish_overlapping(
    pending: list[tuple[Tensor, Callable[[], None]]], mask: Tensor | None
) -> list[tuple[Tensor, Callable[[], None]]]:
    """Finish the work in flight on rows that ``mask (B,)`` selects (all of it for ``None``); return the rest."""
    rest = []
    for rows, finish in pending:
        if mask is None or bool((rows & mask).any()):
            finish()
        else:
            rest.append((rows, finish))
    return rest


@contextlib.contextmanager
def _cores_shared(images: Tensor, deferred: bool) -> Iterator[None]:
    """On the CPU, while codec worker processes code part of the batch, give torch half of its threads (at least
    one) so that the workers and torch's own threads do not fight over the cores (measured on 2 cores: 170 vs
    135 composed 224² crops/s); torch's setting is restored afterwards."""
    threads = torch.get_num_threads()
    if not deferred or images.device.type != "cpu" or threads < 2 or codec_pool.parallel_workers() < 2:
        yield
        return
    torch.set_num_threads(max(1, threads // 2))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def compose_steps(
    images: Tensor,
    type_ids: Tensor,
    levels: Tensor,
    num_types: int,
    run_rows: Callable[[Tensor, Tensor, int, Tensor, torch.Generator | None], Callable[[], None] | None],
    generator: torch.Generator | None = None,
    first: Collection[int] = (),
) -> Tensor:
    """The composition loop shared by every bank: steps ``type_ids``/``levels`` ``(B,S)`` (``-1`` = empty step)
    applied column by column to ``images (B,3,H,W)``; within a column the samples of each type are one call
    ``run_rows(x, rows, type, levels_of_rows, generator)`` that replaces ``x[rows]`` in place, or returns a
    ``finish()`` that does so (work in flight elsewhere, e.g. in codec worker processes), called just before a
    later call touches one of those rows, or at the end. Types in ``first`` run first in every column, the rest
    in increasing id. Every row still goes through its own steps in order, so neither the order within a column
    nor the deferral changes the result (the ops in ``first`` must not draw from ``generator``). Validates the ids
    (in ``-1..num_types-1``) and levels (1..5 on real steps); computes in float32 outside autocast; returns the
    input's dtype."""
    types = type_ids.detach().cpu()
    levels = levels.detach().cpu()
    real = types >= 0
    if bool((types >= num_types).any()) or bool((types < -1).any()):
        raise ValueError(f"plan.type_ids must be in -1..{num_types - 1}")
    if bool((((levels < 1) | (levels > NUM_LEVELS)) & real).any()):
        raise ValueError(f"plan.levels must be in 1..{NUM_LEVELS} for non-empty steps")
    if images.numel() == 0:  # zero-sized images: nothing to distort (the codecs crash on them)
        return images.clone()
    deferred = bool(first) and bool(torch.isin(types, torch.tensor(sorted(first))).any())
    with torch.no_grad(), torch.autocast(images.device.type, enabled=False), _cores_shared(images, deferred):
        x = images.float().clone()
        pending: list[tuple[Tensor, Callable[[], None]]] = []  # (rows mask (B,), finish) of work in flight
        for s in range(types.shape[1]):
            column = types[:, s]
            present = torch.unique(column[column >= 0]).tolist()
            for t in sorted(present, key=lambda t: (t not in first, t)):
                mask = column == t
                pending = _finish_overlapping(pending, mask)
                rows = mask.nonzero(as_tuple=True)[0]
                finish = run_rows(x, rows, t, levels[rows, s], generator)
                if finish is not None:
                    pending.append((mask, finish))
        _finish_overlapping(pending, None)
    return x.to(images.dtype)
