"""Worker processes for the one CPU codec of the banks that cannot use threads: JPEG 2000 through Pillow/OpenJPEG.

This module imports only numpy and Pillow, so a worker process starts without torch (the pool pickles
:func:`jpeg2000_round_trip` by name, and the workers import this module, not the distortion bank).

Pillow holds the GIL while it codes JPEG 2000, so threads gain nothing; separate processes do (measured on 224²
crops: 18.4 ms/image in one process, 10.8 ms/image over 2 worker processes on 2 cores). The results are identical
to coding in-process (the same function runs on the same uint8 arrays).

Worker count: ``IQA_CODEC_WORKERS`` (0 or 1 = code in-process); default = usable CPU cores divided by
``LOCAL_WORLD_SIZE`` (ranks sharing the machine), at most 16. The pool starts on first use (``forkserver`` where
available, so it is safe after CUDA is initialised) and lives until the process exits. If it cannot start or breaks
(a daemonic process, no process limit left), coding continues in-process after
one warning; a process forked from one that has a pool (a data-loading worker) codes in-process without one. The
pool starts all its workers on first use and waits for them; unlike a plain ``spawn``/``forkserver`` child, a worker
does not import the main module (see :func:`_main_module_hidden`), so it starts in well under a second.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import math
import multiprocessing as mp
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "codec_workers",
    "jpeg2000_round_trip",
    "map_images",
    "parallel_workers",
    "reset",
    "submit_images",
    "worker_pids",
]

ENV = "IQA_CODEC_WORKERS"
MAX_DEFAULT_WORKERS = 16

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_pool_owner = 0  # pid that started the pool: a forked child (a data-loading worker) codes in-process
_broken = False
last_mode = "none"  # "pool" or "serial": how the last map_images call ran (for tests and benchmarks)


def jpeg2000_round_trip(img: np.ndarray, ratio: int) -> np.ndarray:
    """Encode/decode one ``(H,W,3)`` uint8 image with OpenJPEG (Pillow) at compression ratio ``ratio``
    (``quality_mode='rates'``, one layer, LRCP, 8 resolutions as the official code, fewer on small images)."""
    h, w = img.shape[:2]
    # OpenJPEG needs every resolution level to keep >= 1 pixel; 8 levels (the official value) need >= 128 px.
    resolutions = max(1, min(8, int(math.floor(math.log2(max(1, min(h, w))))) + 1))
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(
        buf,
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=[ratio],
        num_resolutions=resolutions,
        progression="LRCP",
    )
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


def _pid(_: int) -> int:
    time.sleep(0.02)  # long enough that every idle worker takes a task
    return os.getpid()


def _heavy_modules_loaded(_: int) -> list[str]:
    """Which of torch / lightning / hydra a worker has imported (none: it starts light)."""
    return [m for m in ("torch", "lightning", "hydra") if m in sys.modules]


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def codec_workers() -> int:
    """Worker processes to use: ``IQA_CODEC_WORKERS`` if set (an integer ≥ 0), else cores / local ranks (≤ 16)."""
    raw = os.environ.get(ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(
                f"{ENV} must be an integer >= 0 (0 or 1 = no worker processes), got {raw!r}"
            ) from None
        if value < 0:
            raise ValueError(f"{ENV} must be an integer >= 0 (0 or 1 = no worker processes), got {raw!r}")
        return value
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(MAX_DEFAULT_WORKERS, _usable_cpus() // ranks))


def parallel_workers() -> int:
    """Worker processes the next call would use: :func:`codec_workers`, or 0 when it would code in-process (a
    failed pool, a process forked from the pool's owner, or fewer than 2 workers asked for)."""
    if _broken or (_pool is not None and _pool_owner != os.getpid()):
        return 0
    n = codec_workers()
    return n if n >= 2 else 0


def _shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def _get_pool(n: int) -> ProcessPoolExecutor:
    global _pool, _pool_size, _pool_owner
    if _pool is None or _pool_size != n:
        _shutdown()
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        _pool = ProcessPoolExecutor(
            n, mp_context=mp.get_context(method), initializer=_exit_with_parent, initargs=(os.getpid(),)
        )
        _pool_size = n
        _pool_owner = os.getpid()
        with _main_module_hidden():
            worker_pids(2 * n)  # start every worker now and wait for them
    return _pool


def _process_state(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of process ``pid`` from /proc (Linux), ``None`` if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], fields[19]


def _exit_with_parent(owner: int, every_s: float = 0.5) -> None:
    """Worker initializer: a daemon thread ends this worker once ``owner`` (the process that started the pool) has
    exited. A training process that exits without shutting the pool down (``os._exit``, SIGKILL, the hard exit
    after SIGTERM) would otherwise leave its workers (and their forkserver) behind, holding its stdout/stderr open.
    Where /proc is missing, it checks that a process with that id still exists."""
    import threading

    first = _process_state(owner)

    def gone() -> bool:
        if first is None:  # no /proc: best effort
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
            return False
        now = _process_state(owner)
        return now is None or now[0] == "Z" or now[1] != first[1]  # exited (zombie) or the id was reused

    def watch() -> None:
        while not gone():
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="codec-owner-watch", daemon=True).start()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While workers start, hide the main module's name and file from multiprocessing, so that a worker does not
    import the main module (e.g. ``iqa_bench.train`` with torch, Lightning and Hydra: ~0.6 GB and seconds per
    worker). The workers only run functions of this module, which imports numpy and Pillow."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__dict__["__spec__"] = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def worker_pids(tasks: int) -> set[int]:
    """Process ids that served ``tasks`` trivial tasks on the current pool (empty without a pool)."""
    if _pool is None:
        return set()
    return set(_pool.map(_pid, range(tasks)))


def map_images(fn: Callable[[Any, Any], Any], images: Sequence[Any], params: Sequence[Any]) -> list[Any]:
    """``[fn(image, param) ...]`` in order, over worker processes when there are ≥ 2 images and ≥ 2 workers.

    ``fn`` must be a module-level function (it is pickled by name); ``images`` are e.g. ``(H,W,3)`` uint8 arrays.
    """
    return submit_images(fn, images, params)()


def submit_images(
    fn: Callable[[Any, Any], Any], images: Sequence[Any], params: Sequence[Any]
) -> Callable[[], list[Any]]:
    """Start ``[fn(image, param) ...]`` and return ``collect()``, which waits and returns the results in order.

    With worker processes the coding runs while the caller goes on (e.g. applies other distortions to other
    images); without them (fewer than 2 workers, a broken pool) it runs in-process inside ``collect()``.
    ``collect`` must be called exactly once. If the pool fails, ``collect`` codes in-process after one warning.
    """
    global _broken, _pool, last_mode
    if _pool is not None and _pool_owner != os.getpid():
        # inherited through fork (a data-loading worker): the pool's threads and pipes belong to the parent, and
        # the forkserver cannot serve a forked child; such a worker is one of many processes already: code here
        _pool, _broken = None, True
    n = codec_workers()
    images, params = list(images), list(params)

    def serial() -> list[Any]:
        global last_mode
        last_mode = "serial"
        return [fn(img, p) for img, p in zip(images, params)]

    if n <= 1 or not images or _broken:
        return serial
    try:
        pool = _get_pool(n)
        chunk = max(1, math.ceil(len(images) / (2 * n)))
        futures = [
            pool.submit(_apply_chunk, fn, images[i : i + chunk], params[i : i + chunk])
            for i in range(0, len(images), chunk)
        ]
    except Exception as err:  # noqa: BLE001 - the pool cannot start: code in-process
        _fall_back(err)
        return serial

    def collect() -> list[Any]:
        global last_mode
        try:
            out = [y for f in futures for y in f.result()]
        except Exception as err:  # noqa: BLE001 - any pool failure: code in-process; a codec error re-raises there
            _fall_back(err)
            return serial()
        last_mode = "pool"
        return out

    return collect


def _apply_chunk(fn: Callable[[Any, Any], Any], images: Sequence[Any], params: Sequence[Any]) -> list[Any]:
    """``[fn(image, param) ...]`` in a worker process (one task per chunk of images)."""
    return [fn(img, p) for img, p in zip(images, params)]


def _fall_back(err: BaseException) -> None:
    """Give up on worker processes after a failure, with one warning; later calls code in-process."""
    global _broken
    _broken = True
    _shutdown()
    warnings.warn(
        f"codec worker processes unavailable ({type(err).__name__}: {err}); coding JPEG 2000 in-process "
        f"(set {ENV}=0 to silence this)",
        RuntimeWarning,
        stacklevel=3,
    )


def reset() -> None:
    """Stop the worker processes and forget an earlier failure (the next call starts a fresh pool)."""
    global _broken
    _shutdown()
    _broken = False


atexit.register(_shutdown)
