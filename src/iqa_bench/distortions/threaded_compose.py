"""Run a composition's (step, type) calls on several CPU threads, with the sequential loop's exact result.

A composition is a list of calls ``run_rows(x, rows, type, levels, generator)``, each replacing ``x[rows]`` in
place (see :func:`iqa_bench.distortions.transform.compose_steps`). Two calls commute when they touch disjoint rows
and at most one of them draws from the random generator, so the calls form a dependency graph:

* a call waits for the last earlier call that touched any of its rows (every image still goes through its own
  steps in order);
* the calls of *ordered* types (those that draw from ``generator``) also wait for the previous such call, so the
  generator is consumed in exactly the sequential order.

The graph runs on a pool of threads, each running torch single-threaded (intra-op threads are set to 1 meanwhile and
restored after): on a CPU the banks' ops are chains of element-wise passes over a few images, which one thread per
call runs more efficiently than all threads on every pass (measured on 2 cores, 224² crops: brighten 4.1 ms/image on
one thread, 3.0 ms on two, 2 x 4.3 ms on two processes). Among the calls whose inputs are ready, the one heading the
costliest remaining chain goes first (list scheduling), so that slow codec work starts early. Calls of *started*
types (the JPEG 2000 codec, which codes in worker processes) are started from the scheduling thread and finished on
a waiting thread that uses no CPU. The result equals the sequential loop's bit for bit (tested), given ops that are per-image independent and
deterministic apart from the generator.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["STARTED_COST", "Call", "map_chunks", "plan_graph", "run_op_batch", "run_threaded"]

RunRows = Callable[[Tensor, Tensor, int, Tensor, "torch.Generator | None"], "Callable[[], None] | None"]

# weight of one image of a started (codec) call relative to one image of another op, for the scheduling order
# (JPEG 2000 of a 224² crop: ~16 ms; the other ARNIQA ops: 0.2-5 ms)
STARTED_COST = 8.0
_WAITING_THREADS = 4

_pools: dict[tuple[str, int], tuple[int, ThreadPoolExecutor]] = {}
_pools_lock = threading.Lock()


@dataclass
class Call:
    """One call of a composition: op ``type_id`` on ``rows (k,)`` (int64 CPU) at ``levels (k,)`` (CPU, 1..5)."""

    rows: Tensor
    type_id: int
    levels: Tensor


@dataclass
class Graph:
    """What :func:`plan_graph` derives from a call list: per call its prerequisite calls (``deps``), the calls
    waiting for it (``dependents``) and its priority (``rank``: own cost plus the costliest chain after it)."""

    deps: list[list[int]]
    dependents: list[list[int]]
    rank: list[float]


def plan_graph(calls: Sequence[Call], ordered: Collection[int], started: Collection[int] = ()) -> Graph:
    """The dependency graph of ``calls``: each call depends on the last earlier call on each of its rows and, for
    an ``ordered`` type, on the previous call of an ordered type; ``started`` types weigh ``STARTED_COST`` per
    image in the ranks."""
    last_on_row: dict[int, int] = {}
    last_ordered = -1
    deps: list[list[int]] = []
    for i, call in enumerate(calls):
        need = set()
        for r in call.rows.tolist():
            prev = last_on_row.get(r)
            if prev is not None:
                need.add(prev)
            last_on_row[r] = i
        if call.type_id in ordered:
            if last_ordered >= 0:
                need.add(last_ordered)
            last_ordered = i
        deps.append(sorted(need))
    dependents: list[list[int]] = [[] for _ in calls]
    for i, d in enumerate(deps):
        for j in d:
            dependents[j].append(i)
    rank = [0.0] * len(calls)
    for i in range(len(calls) - 1, -1, -1):
        own = calls[i].rows.numel() * (STARTED_COST if calls[i].type_id in started else 1.0)
        rank[i] = own + max((rank[j] for j in dependents[i]), default=0.0)
    return Graph(deps, dependents, rank)


def _pool(kind: str, size: int) -> ThreadPoolExecutor:
    """A process-wide thread pool of ``size`` threads (a new one in a forked child, whose copy has no threads)."""
    key = (kind, os.getpid())
    with _pools_lock:
        entry = _pools.get(key)
        if entry is None or entry[0] != size:
            if entry is not None:
                entry[1].shutdown(wait=False)
            entry = (size, ThreadPoolExecutor(size, thread_name_prefix=f"iqa-bank-{kind}"))
            _pools[key] = entry
        return entry[1]


@contextlib.contextmanager
def _torch_single_threaded() -> Iterator[None]:
    """torch's intra-op threads set to 1 while the pool threads run (each call runs single-threaded), restored
    afterwards even on an error."""
    intra = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(intra)


def _in_caller_modes(fn: Callable[..., object], inference: bool) -> Callable[..., None]:
    """``fn`` wrapped to run in a pool thread under the caller's modes: grad mode, inference mode and autocast
    are thread-local (an inference tensor, e.g. a batch in Lightning's validation loop, can only be updated in
    place inside inference mode)."""

    def run(*args: object) -> None:
        with torch.inference_mode(inference), torch.no_grad(), torch.autocast("cpu", enabled=False):
            fn(*args)

    return run


def _call_in_thread(run_rows: RunRows, x: Tensor, call: Call, generator: torch.Generator | None) -> None:
    finish = run_rows(x, call.rows, call.type_id, call.levels, generator)
    if finish is not None:
        finish()


def run_threaded(
    source: Tensor,
    calls: Sequence[Call],
    run_rows: RunRows,
    generator: torch.Generator | None,
    ordered: Collection[int],
    started: Collection[int],
    threads: int,
) -> Tensor:
    """Apply ``calls`` to a copy of ``source`` (CPU, float32, ``(B,3,H,W)``, not modified) over ``threads``
    threads and return it, equal to running the calls one after the other in list order (see the module
    docstring). ``started`` types are started by the scheduling thread (``run_rows`` must return quickly with a
    ``finish()``); the others run on the pool with torch's intra-op threads set to 1. The first error of any call
    is raised after the calls in flight end."""
    x = source.clone()
    graph = plan_graph(calls, ordered, started)
    waiting = [len(d) for d in graph.deps]
    ready = [(-graph.rank[i], i) for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    compute = _pool("compute", threads)
    waiters = _pool("wait", _WAITING_THREADS)
    inference = torch.is_inference_mode_enabled()
    call_in_thread = _in_caller_modes(_call_in_thread, inference)
    in_flight: dict[Future, int] = {}
    computing = 0
    done = 0
    error: BaseException | None = None
    with _torch_single_threaded():
        while done < len(calls):
            held: list[tuple[float, int]] = []
            while ready and error is None:
                key, i = heapq.heappop(ready)
                call = calls[i]
                if call.type_id in started:
                    finish = run_rows(x, call.rows, call.type_id, call.levels, generator)
                    if finish is None:
                        fut: Future = Future()
                        fut.set_result(None)
                    else:
                        fut = waiters.submit(_in_caller_modes(finish, inference))
                elif computing < threads:
                    fut = compute.submit(call_in_thread, run_rows, x, call, generator)
                    computing += 1
                else:
                    held.append((key, i))
                    continue
                in_flight[fut] = i
            for item in held:
                heapq.heappush(ready, item)
            if not in_flight:
                break  # only after an error: nothing left running
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in finished:
                i = in_flight.pop(fut)
                if calls[i].type_id not in started:
                    computing -= 1
                exc = fut.exception()
                if exc is not None:
                    error = error or exc
                    continue
                done += 1
                for j in graph.dependents[i]:
                    waiting[j] -= 1
                    if waiting[j] == 0:
                        heapq.heappush(ready, (-graph.rank[j], j))
    if error is not None:
        raise error
    return x


def map_chunks(x: Tensor, step: int, fn: Callable[[Tensor, slice], Tensor], threads: int) -> Tensor:
    """``cat([fn(x[c], c) for each slice c of step rows])`` computed on ``threads`` threads, each with torch on one
    intra-op thread (restored afterwards), written straight into the output. ``fn`` must not depend on the order
    of the chunks (no random draws); the result equals running the chunks one after the other on one thread."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)

    def one(c: slice) -> None:
        out[c] = fn(x[c], c)

    task = _in_caller_modes(one, torch.is_inference_mode_enabled())
    with _torch_single_threaded():
        pool = _pool("compute", threads)
        futures = [pool.submit(task, slice(i, i + step)) for i in range(0, x.shape[0], step)]
        wait(futures)
        for f in futures:
            f.result()
    return out


def run_op_batch(
    x: Tensor,
    levels: Tensor,
    step: int,
    run: Callable[[Tensor, Tensor, torch.Generator | None], Tensor],
    deterministic: bool,
    generator: torch.Generator | None,
) -> Tensor:
    """``run(x, levels, generator)`` (one op on a whole batch, chunked by ``run`` itself into ``step`` rows on a
    CPU). On a CPU with torch set to ≥ 2 threads, a ``deterministic`` op's chunks run on that many threads with
    one torch thread each (:func:`map_chunks`; same result as on one thread: torch's own two-thread element-wise
    kernels are slower on these small tensors); a stochastic op draws in order, so it runs as is."""
    threads = torch.get_num_threads()
    if x.device.type == "cpu" and threads >= 2 and x.shape[0] > step and deterministic:
        return map_chunks(x, step, lambda xs, c: run(xs, levels[c], None), threads)
    return run(x, levels, generator)
