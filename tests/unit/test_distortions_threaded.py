"""The threaded CPU composition: its dependency graph, and results equal to the sequential loop on one thread bit
for bit (ARNIQA and Re-IQA banks, with and without codec workers), with torch's thread setting restored."""

from __future__ import annotations

import pytest
import torch

from iqa_bench import distortions
from iqa_bench.distortions import DistortionPlan, threaded_compose, transform
from iqa_bench.distortions import reiqa_bank as R
from iqa_bench.distortions.threaded_compose import Call, plan_graph, run_threaded
from iqa_bench.utils import codec_pool

NAMES = distortions.names()


def _call(rows: list[int], t: int) -> Call:
    return Call(torch.tensor(rows), t, torch.ones(len(rows), dtype=torch.long))


def test_graph_waits_for_the_last_call_on_each_row_and_chains_ordered_types():
    calls = [_call([0, 1], 0), _call([2], 5), _call([1, 2], 0), _call([3], 5), _call([0, 3], 1)]
    g = plan_graph(calls, ordered={5})
    # call 2 reads rows 1 (call 0) and 2 (call 1); call 3 (type 5) follows call 1, the previous type-5 call;
    # call 4 reads row 0 last written by call 0 and row 3 by call 3
    assert g.deps == [[], [], [0, 1], [1], [0, 3]]
    assert g.dependents == [[2, 4], [2, 3], [], [4], []]


def test_rank_is_the_costliest_chain_with_started_calls_weighted():
    calls = [_call([0], 0), _call([1, 2], 1), _call([0], 7), _call([1], 0)]
    g = plan_graph(calls, ordered=(), started={7})
    cost = threaded_compose.STARTED_COST
    assert g.rank == [1 + cost, 2 + 1, cost, 1]  # call 0 heads the codec call on row 0; call 1 heads call 3


def _fake_run_rows(log: list):
    """Type 0 doubles its rows; type 1 adds a draw from the generator per row (ordered); type 2 adds 1 but is
    started: it computes from the rows at start and writes in ``finish``."""

    def run_rows(x, rows, t, levels, generator):
        log.append((t, rows.tolist(), torch.get_num_threads()))
        if t == 0:
            x.index_copy_(0, rows, x.index_select(0, rows) * 2)
        elif t == 1:
            noise = torch.rand(rows.numel(), generator=generator).view(-1, 1, 1, 1)
            x.index_copy_(0, rows, x.index_select(0, rows) + noise)
        else:
            started = x.index_select(0, rows) + 1

            def finish():
                x.index_copy_(0, rows, started)

            return finish
        return None

    return run_rows


def test_threaded_run_equals_the_sequential_one_and_consumes_the_generator_alike():
    g = torch.Generator().manual_seed(0)
    types = torch.randint(0, 3, (12, 4), generator=g)
    types[3, 2:] = -1
    x = torch.rand(12, 3, 4, 4, generator=g)
    levels = torch.ones_like(types)
    results = []
    for ordered in (None, {1}):
        gen = torch.Generator().manual_seed(7)
        log: list = []
        before = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            out = transform.compose_steps(
                x, types, levels, 3, _fake_run_rows(log), gen, first={2}, ordered=ordered
            )
        finally:
            torch.set_num_threads(before)
        results.append((out, torch.rand(1, generator=gen), log))
    (seq, seq_next, seq_log), (thr, thr_next, thr_log) = results
    assert torch.equal(seq, thr)
    assert torch.equal(seq_next, thr_next)  # the generator advanced by exactly the same draws
    assert [c[:2] for c in seq_log if c[0] == 1] == [c[:2] for c in thr_log if c[0] == 1]  # same draw order
    assert {c[2] for c in thr_log if c[0] != 2} == {1}  # pool calls run torch single-threaded


def test_an_error_in_a_call_is_raised_and_threads_are_restored():
    def run_rows(x, rows, t, levels, generator):
        if t == 1:
            raise RuntimeError("op 1 failed")
        x.index_copy_(0, rows, x.index_select(0, rows) + 1)

    calls = [_call([0], 0), _call([1], 1), _call([2], 0), _call([1], 0)]
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="op 1 failed"):
        run_threaded(torch.zeros(3, 3, 2, 2), calls, run_rows, None, ordered=(), started=(), threads=2)
    assert torch.get_num_threads() == before


def test_source_is_not_modified():
    def add_one(x, rows, t, levels, generator):
        x.index_copy_(0, rows, x.index_select(0, rows) + 1)

    source = torch.zeros(2, 3, 2, 2)
    out = run_threaded(source, [_call([0, 1], 0)], add_one, None, ordered=(), started=(), threads=2)
    assert float(source.abs().sum()) == 0 and float(out.min()) == 1


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_arniqa_plans_give_the_sequential_result_bit_for_bit(monkeypatch, two_threads, workers):
    monkeypatch.setenv(codec_pool.ENV, workers)
    codec_pool.reset()
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.interpolate(torch.rand(24, 3, 8, 8, generator=g), size=(40, 40), mode="bilinear")
    x = (0.8 * x + 0.2 * torch.rand(24, 3, 40, 40, generator=g)).clamp(0, 1)
    ids = torch.stack([torch.randperm(24, generator=g)[:4] for _ in range(24)])  # every type, 4 steps each
    ids[::5, 2:] = -1
    plan = DistortionPlan(ids, torch.where(ids >= 0, torch.randint(1, 6, ids.shape, generator=g), 0))
    torch.set_num_threads(1)  # torch's vectorised maths may differ in the last bit with the thread count
    seq = transform.compose_steps(
        x, plan.type_ids, plan.levels, len(NAMES), transform._run_inplace,
        torch.Generator().manual_seed(11), transform._FIRST, ordered=None,
    )  # fmt: skip
    torch.set_num_threads(2)
    thr = distortions.apply_plan(x, plan, generator=torch.Generator().manual_seed(11))
    codec_pool.reset()
    assert torch.equal(seq, thr)
    assert torch.get_num_threads() == 2


def test_reiqa_plans_give_the_sequential_result_bit_for_bit(two_threads):
    g = torch.Generator().manual_seed(5)
    x = torch.rand(12, 3, 32, 32, generator=g)
    plan = R.ReIQASampler(n_aug=3).sample(12, generator=g)
    torch.set_num_threads(1)
    seq = transform.compose_steps(
        x,
        plan.type_ids,
        plan.levels,
        len(R._ALL),
        R._run_rows,
        torch.Generator().manual_seed(2),
        ordered=None,
    )
    torch.set_num_threads(2)
    thr = R.apply_plan(x, plan, generator=torch.Generator().manual_seed(2))
    assert torch.equal(seq, thr)


def test_ordered_sets_are_the_stochastic_ops():
    assert {NAMES[i] for i in transform._ORDERED} == {
        n for n in NAMES if distortions.bank.get_spec(n).stochastic
    }
    assert {R._ALL[i].name for i in R._ORDERED} == {s.name for s in R._ALL if s.stochastic}


def test_a_forked_process_gets_its_own_thread_pool(monkeypatch):
    pool = threaded_compose._pool("compute", 2)
    assert threaded_compose._pool("compute", 2) is pool
    monkeypatch.setattr(threaded_compose.os, "getpid", lambda: -1)
    other = threaded_compose._pool("compute", 2)
    assert other is not pool
    other.shutdown()


@pytest.mark.parametrize("name", NAMES)
def test_apply_splits_a_deterministic_op_over_threads_with_the_one_thread_result(
    monkeypatch, two_threads, name
):
    import threading

    monkeypatch.setattr(transform, "CPU_CHUNK", 3)  # 10 images: 4 chunks
    monkeypatch.setitem(transform._CPU_CHUNK_BY_OP, "noneccpatch", 3)
    x = torch.rand(10, 3, 24, 24, generator=torch.Generator().manual_seed(9))
    levels = torch.arange(10) % 5 + 1
    seen = []
    real = transform._run
    monkeypatch.setattr(
        transform,
        "_run",
        lambda t, xs, *a: (
            seen.append((threading.current_thread().name, torch.get_num_threads(), len(xs)))
            or real(t, xs, *a)
        ),
    )
    threaded = distortions.apply(name, x, levels, torch.Generator().manual_seed(4))
    first = list(seen)
    torch.set_num_threads(1)
    sequential = distortions.apply(name, x, levels, torch.Generator().manual_seed(4))
    assert torch.equal(threaded, sequential)
    if distortions.bank.get_spec(name).stochastic or name == "jpeg2000":  # draws in order / codec workers
        assert [(n, k) for n, _, k in first] == [("MainThread", 10)]
    else:
        assert sorted(k for _, _, k in first) == [1, 3, 3, 3]
        assert all(n.startswith("iqa-bank-compute") and threads == 1 for n, threads, _ in first)


def test_pool_calls_run_without_autograd_and_finish_what_they_return():
    seen = []

    def run_rows(x, rows, t, levels, generator):
        seen.append(torch.is_grad_enabled())
        started = x.index_select(0, rows) + 1
        return lambda: x.index_copy_(0, rows, started)  # a finish() from a type not marked as started

    out = run_threaded(torch.zeros(2, 3, 2, 2), [_call([0], 0), _call([1], 0)], run_rows, None, (), (), 2)
    assert seen == [False, False]
    assert float(out.min()) == 1.0


def test_calls_run_concurrently_on_the_pool():
    import threading

    barrier = threading.Barrier(2, timeout=10)

    def run_rows(x, rows, t, levels, generator):
        barrier.wait()  # both independent calls must be in flight at once, or this times out

    run_threaded(torch.zeros(2, 3, 2, 2), [_call([0], 0), _call([1], 0)], run_rows, None, (), (), 2)


def test_ready_calls_heading_codec_work_go_first():
    order = []

    def run_rows(x, rows, t, levels, generator):
        order.append((t, rows.tolist()))
        return (lambda: None) if t == 7 else None

    # call 0 (row 1) has nothing after it; call 1 (row 0) leads to a codec call: with one thread it goes first
    calls = [_call([1], 0), _call([0], 0), _call([0], 7)]
    run_threaded(torch.zeros(2, 3, 2, 2), calls, run_rows, None, ordered=(), started={7}, threads=1)
    assert order == [(0, [0]), (7, [0]), (0, [1])]


def test_map_chunks_writes_every_chunk_and_raises_a_chunks_error():
    x = torch.arange(7.0).view(7, 1, 1, 1)
    out = threaded_compose.map_chunks(x, 3, lambda xs, c: xs * 2 + c.start, threads=2)
    assert out.flatten().tolist() == [0, 2, 4, 9, 11, 13, 18]
    before = torch.get_num_threads()

    def fail(xs, c):
        if c.start == 3:
            raise ValueError("chunk 3")
        return xs

    with pytest.raises(ValueError, match="chunk 3"):
        threaded_compose.map_chunks(x, 3, fail, threads=2)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("name", R.names())
def test_reiqa_apply_on_threads_equals_one_thread(monkeypatch, two_threads, name):
    monkeypatch.setattr(R, "REIQA_CPU_CHUNK", 3)
    monkeypatch.setattr(R, "_CPU_CHUNK_BY_OP", {})
    x = torch.rand(10, 3, 24, 24, generator=torch.Generator().manual_seed(6))
    levels = torch.arange(10) % 5 + 1
    threaded = R.apply(name, x, levels, torch.Generator().manual_seed(8))
    torch.set_num_threads(1)
    assert torch.equal(threaded, R.apply(name, x, levels, torch.Generator().manual_seed(8)))


def test_reiqa_chunk_on_threads_equals_one_thread(monkeypatch, two_threads):
    monkeypatch.setattr(R, "REIQA_CPU_CHUNK", 2)
    x = torch.rand(6, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    plan = R.ReIQASampler(n_aug=5).sample(6, generator=torch.Generator().manual_seed(2))
    threaded = R.apply_chunk(x, plan, torch.Generator().manual_seed(3))
    torch.set_num_threads(1)
    assert torch.equal(threaded, R.apply_chunk(x, plan, torch.Generator().manual_seed(3)))


def test_threaded_paths_work_inside_inference_mode(monkeypatch, two_threads):
    """Lightning runs validation under ``torch.inference_mode``: the pool threads must update the (inference)
    batch under the same mode, codec finishes included."""
    monkeypatch.setenv(codec_pool.ENV, "2")
    codec_pool.reset()
    x = torch.rand(12, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[NAMES.index("jpeg2000"), NAMES.index("brighten")]] * 12)
    plan = DistortionPlan(ids, torch.full_like(ids, 2))
    chunk_plan = R.ReIQASampler(n_aug=3).sample(12, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        composed = distortions.apply_plan(x, plan)
        single = distortions.apply("brighten", x, 2)
        chunk = R.apply_chunk(x, chunk_plan, torch.Generator().manual_seed(2))
    codec_pool.reset()
    assert torch.equal(composed, distortions.apply_plan(x, plan))
    assert torch.equal(single, distortions.apply("brighten", x, 2))
    assert torch.equal(chunk, R.apply_chunk(x, chunk_plan, torch.Generator().manual_seed(2)))
