"""Applying distortions: one distortion to a batch (:func:`apply`) or a per-sample plan (:func:`apply_plan`).

Both validate their inputs, run the ops in float32 with autocast disabled (so they work inside bf16/fp16
autocast regions) and without autograd, clip to [0,1] after every distortion and return the input dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection

import torch
from torch import Tensor

from .bank import _SPECS, get_spec
from .functional.compression import jpeg2000_start
from .sampling import DistortionPlan
from .threaded_compose import Call, run_op_batch, run_threaded

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
# Ops that draw from the random generator: on the CPU's threaded path they run in the sequential order
_ORDERED = frozenset(i for i, spec in enumerate(_SPECS) if spec.stochastic)
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
    """Images per op call: the whole batch off the CPU, else :func:`_cpu_chunk`."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    return _cpu_chunk(type_index)


def _cpu_chunk(type_index: int) -> int:
    """Images per op call on the CPU: ``CPU_CHUNK`` or the op's override."""
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
        out = run_op_batch(
            images.float().contiguous(),
            levels,
            _cpu_chunk(index),
            functools.partial(_run, index),
            index not in _ORDERED | _FIRST,  # the codec codes a whole batch in its worker processes
            generator,
        )
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
    return compose_steps(
        images, plan.type_ids, plan.levels, len(_SPECS), _run_inplace, generator, _FIRST, _ORDERED, _cpu_chunk
    )


def _calls_in_order(
    types: Tensor, levels: Tensor, first: Collection[int], chunk_rows: Callable[[int], int] | None = None
) -> list[Call]:
    """The calls of the sequential loop, in its order: column by column, types in ``first`` first, then by id;
    with ``chunk_rows``, each call split into consecutive calls of at most ``chunk_rows(type)`` rows."""
    calls = []
    for s in range(types.shape[1]):
        column = types[:, s]
        present = torch.unique(column[column >= 0]).tolist()
        for t in sorted(present, key=lambda t: (t not in first, t)):
            rows = (column == t).nonzero(as_tuple=True)[0]
            step = chunk_rows(t) if chunk_rows is not None else max(1, rows.numel())
            calls.extend(Call(r, t, levels[r, s]) for r in rows.split(step))
    return calls


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


def compose_steps(
    images: Tensor,
    type_ids: Tensor,
    levels: Tensor,
    num_types: int,
    run_rows: Callable[[Tensor, Tensor, int, Tensor, torch.Generator | None], Callable[[], None] | None],
    generator: torch.Generator | None = None,
    first: Collection[int] = (),
    ordered: Collection[int] | None = None,
    chunk_rows: Callable[[int], int] | None = None,
) -> Tensor:
    """The composition loop shared by every bank: steps ``type_ids``/``levels`` ``(B,S)`` (``-1`` = empty step)
    applied column by column to ``images (B,3,H,W)``; within a column the samples of each type are one call
    ``run_rows(x, rows, type, levels_of_rows, generator)`` that replaces ``x[rows]`` in place, or returns a
    ``finish()`` that does so (work in flight elsewhere, e.g. in codec worker processes), called just before a
    later call touches one of those rows, or at the end. Types in ``first`` run first in every column, the rest
    in increasing id. Every row still goes through its own steps in order, so neither the order within a column
    nor the deferral changes the result (the ops in ``first`` must not draw from ``generator``). With ``ordered``
    (the types that draw from ``generator``) given, a CPU batch with torch set to ≥ 2 threads runs its calls on that
    many threads (:mod:`.threaded_compose`), split into chunks of ``chunk_rows(type)`` rows (those ``run_rows``
    makes itself, so that the generator is drawn alike), with the same result as on one torch thread. Validates the ids (in ``-1..num_types-1``) and
    levels (1..5 on real steps); computes in float32 outside autocast; returns the input's dtype."""
    types = type_ids.detach().cpu()
    levels = levels.detach().cpu()
    real = types >= 0
    if bool((types >= num_types).any()) or bool((types < -1).any()):
        raise ValueError(f"plan.type_ids must be in -1..{num_types - 1}")
    if bool((((levels < 1) | (levels > NUM_LEVELS)) & real).any()):
        raise ValueError(f"plan.levels must be in 1..{NUM_LEVELS} for non-empty steps")
    if images.numel() == 0:  # zero-sized images: nothing to distort (the codecs crash on them)
        return images.clone()
    threads = torch.get_num_threads()
    with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
        if ordered is not None and images.device.type == "cpu" and threads >= 2:
            calls = _calls_in_order(types, levels, first, chunk_rows)
            x = run_threaded(images.float(), calls, run_rows, generator, ordered, first, threads)
        else:
            x = _run_in_order(
                images.float().clone(), _calls_in_order(types, levels, first), run_rows, generator
            )
    return x.to(images.dtype)


def _run_in_order(
    x: Tensor,
    calls: list[Call],
    run_rows: Callable[[Tensor, Tensor, int, Tensor, torch.Generator | None], Callable[[], None] | None],
    generator: torch.Generator | None,
) -> Tensor:
    """The calls one after the other on ``x`` (in place); a call's returned ``finish()`` runs just before a later
    call touches one of its rows, or at the end."""
    pending: list[tuple[Tensor, Callable[[], None]]] = []  # (rows mask (B,), finish) of work in flight
    for call in calls:
        mask = torch.zeros(x.shape[0], dtype=torch.bool)
        mask[call.rows] = True
        pending = _finish_overlapping(pending, mask)
        finish = run_rows(x, call.rows, call.type_id, call.levels, generator)
        if finish is not None:
            pending.append((mask, finish))
    _finish_overlapping(pending, None)
    return x
