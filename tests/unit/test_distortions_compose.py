"""The composition loop's scheduling: work started in worker processes (JPEG 2000) overlaps the other ops of a
step but is always written back before a later step reads the same image; ops run single-threaded on the
composition's thread pool and torch's setting is restored after; the fused Lab conversions equal kornia's."""

from __future__ import annotations

import kornia
import pytest
import torch

from iqa_bench import distortions
from iqa_bench.distortions import DistortionPlan, transform
from iqa_bench.distortions.functional._lab import lab_to_rgb, rgb_to_lab
from iqa_bench.utils import codec_pool

ADD, DOUBLE = 1, 0  # the deferred type has the larger id: only `first` puts it first


def _fake_bank(calls: list):
    """Type ADD adds 1 but is deferred (computed from the rows at start, written by ``finish``); DOUBLE doubles."""

    def run_rows(x, rows, t, levels, generator):
        calls.append((t, rows.tolist()))
        if t == ADD:
            started = x.index_select(0, rows) + 1

            def finish():
                calls.append(("finish", rows.tolist()))
                x.index_copy_(0, rows, started)

            return finish
        x.index_copy_(0, rows, x.index_select(0, rows) * 2)
        return None

    return run_rows


def test_deferred_work_is_written_before_a_later_step_reads_the_row():
    x = torch.tensor([1.0, 1.0, 1.0, 1.0]).view(4, 1, 1, 1).expand(4, 3, 2, 2).contiguous()
    types = torch.tensor([[ADD, DOUBLE], [DOUBLE, ADD], [ADD, -1], [DOUBLE, DOUBLE]])
    calls: list = []
    out = transform.compose_steps(x, types, torch.ones_like(types), 2, _fake_bank(calls), None, first={ADD})
    assert out[:, 0, 0, 0].tolist() == [4.0, 3.0, 2.0, 4.0]  # (1+1)*2, 1*2+1, 1+1, 1*2*2
    # each column runs the deferred type first; rows 0 and 2 are finished only when column 1 doubles row 0;
    # row 1's job (column 1) is still in flight at the end and finished there
    assert calls == [
        (ADD, [0, 2]),
        (DOUBLE, [1, 3]),
        (ADD, [1]),
        ("finish", [0, 2]),
        (DOUBLE, [0, 3]),
        ("finish", [1]),
    ]


def test_deferred_work_not_read_again_stays_in_flight_across_steps():
    x = torch.ones(3, 3, 2, 2)
    types = torch.tensor([[ADD, -1], [DOUBLE, DOUBLE], [DOUBLE, -1]])
    calls: list = []
    transform.compose_steps(x, types, torch.ones_like(types), 2, _fake_bank(calls), None, first={ADD})
    assert calls[-1] == ("finish", [0])  # row 0 had no later step: finished only at the end
    assert [c[0] for c in calls] == [ADD, DOUBLE, DOUBLE, "finish"]


def _plan(rows: list[list[str]]) -> DistortionPlan:
    names = distortions.names()
    width = max(len(r) for r in rows)
    ids = torch.tensor([[names.index(n) for n in r] + [-1] * (width - len(r)) for r in rows])
    return DistortionPlan(ids, torch.where(ids >= 0, torch.tensor(3), torch.tensor(0)))


@pytest.fixture
def fresh_pool():
    codec_pool.reset()
    yield
    codec_pool.reset()


def test_pooled_composition_equals_the_in_process_one(monkeypatch, fresh_pool):
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(
        torch.rand(5, 3, 8, 8, generator=g), size=(48, 48), mode="bilinear"
    )
    x = 0.7 * smooth + 0.3 * torch.rand(5, 3, 48, 48, generator=g)  # texture: every JPEG 2000 level differs
    plan = _plan(
        [
            ["jpeg2000", "gaublur"],
            ["colorsat2", "jpeg2000", "pixelate"],
            ["jpeg2000"],
            ["brighten", "jpeg"],
            ["jpeg2000", "jpeg2000"],
        ]
    )
    monkeypatch.setenv(codec_pool.ENV, "0")
    serial = distortions.apply_plan(x, plan)
    monkeypatch.setenv(codec_pool.ENV, "2")
    pooled = distortions.apply_plan(x, plan)
    assert codec_pool.last_mode == "pool"
    assert torch.equal(serial, pooled)
    step_by_step = x.clone()
    for i, row in enumerate(plan.type_ids.tolist()):
        for t in row:
            if t >= 0:
                step_by_step[i : i + 1] = distortions.apply(
                    distortions.names()[t], step_by_step[i : i + 1], 3
                )
    assert torch.equal(pooled, step_by_step)


def _threads_seen(monkeypatch, rows: list[list[str]]) -> list[int]:
    seen: list[int] = []
    real = transform._run_inplace

    def probe(*args):
        seen.append(torch.get_num_threads())
        return real(*args)

    monkeypatch.setattr(transform, "_run_inplace", probe)
    distortions.apply_plan(torch.rand(len(rows), 3, 16, 16), _plan(rows))
    return seen


def test_ops_run_single_threaded_on_the_pool_and_torch_threads_are_restored(monkeypatch, fresh_pool):
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        monkeypatch.setenv(codec_pool.ENV, "2")
        assert set(_threads_seen(monkeypatch, [["jpeg2000", "gaublur"], ["jpeg"]])) == {1}
        assert torch.get_num_threads() == 4
        torch.set_num_threads(1)  # one thread: the sequential loop, torch untouched
        assert set(_threads_seen(monkeypatch, [["gaublur"], ["jpeg"]])) == {1}
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_fused_lab_conversions_equal_kornias():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 17, 23, generator=g)
    x[0, :, 0, :4] = torch.tensor([0.0, 0.04045, 0.0031308, 1.0])  # the branch points
    lab = kornia.color.rgb_to_lab(x)
    assert torch.allclose(rgb_to_lab(x), lab, atol=1e-3, rtol=0)  # ~1e-5 of the range: float32 cube roots
    assert torch.allclose(lab_to_rgb(lab), kornia.color.lab_to_rgb(lab), atol=1e-5, rtol=0)
    wild = lab * torch.tensor([1.0, 1.8, -1.6]).view(1, 3, 1, 1)  # out of gamut: clipping and the z clamp
    assert torch.allclose(lab_to_rgb(wild), kornia.color.lab_to_rgb(wild), atol=1e-5, rtol=0)
    unclipped = lab_to_rgb(wild, clip=False)
    assert torch.allclose(unclipped, kornia.color.lab_to_rgb(wild, clip=False), atol=1e-5, rtol=0)
    assert unclipped.min() < 0 or unclipped.max() > 1


def test_a_composition_starts_jpeg2000_through_the_deferred_path(monkeypatch, fresh_pool):
    """The overlap only happens if apply_plan hands JPEG 2000 to its deferred start (same output either way)."""
    started: list[tuple[int, list[float]]] = []
    real = transform._DEFERRED["jpeg2000"]

    def spy(x, params):
        started.append((x.shape[0], params.tolist()))
        return real(x, params)

    monkeypatch.setitem(transform._DEFERRED, "jpeg2000", spy)
    monkeypatch.setenv(codec_pool.ENV, "0")
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    plan = _plan([["jpeg2000"], ["gaublur", "jpeg2000"], ["jpeg2000"]])
    out = distortions.apply_plan(x, plan)
    level3 = float(transform._PARAMS[distortions.names().index("jpeg2000"), 2])
    assert started == [(2, [level3, level3]), (1, [level3])]  # column 0: rows 0 and 2; column 1: row 1
    assert torch.equal(out[0], distortions.apply("jpeg2000", x[:1], 3)[0])
