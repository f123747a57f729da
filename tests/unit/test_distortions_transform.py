"""distortions/transform.py details the bank-wide tests leave open: input checks at their boundaries and their
messages, per-sample level dtypes, CPU chunking of large batches, zero-sized images, plan validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from iqa_bench import distortions
from iqa_bench.distortions import DistortionPlan, transform

NAMES = distortions.names()
STOCHASTIC = sorted(n for n in NAMES if distortions.bank.get_spec(n).stochastic)
DETERMINISTIC = [n for n in NAMES if n not in STOCHASTIC]


def _images(b: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images that reach both 0 and 1 (so ops that push values out of range get clipped)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 5, 5, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(24, 28), mode="bilinear", align_corners=False)
    x[:, :, :6, :6] = 0.0
    x[:, :, -6:, -6:] = 1.0
    return x.clamp(0, 1)


# ------------------------------------------------------------------------------------------- image checks
def test_non_tensor_and_bad_shape_messages_name_what_was_given():
    with pytest.raises(ValueError, match=r"images must be \(B,3,H,W\) RGB in \[0,1\], got ndarray$"):
        distortions.apply("gaublur", np.zeros((1, 3, 8, 8), dtype=np.float32), 1)
    with pytest.raises(ValueError, match=r"got \(2, 1, 8, 8\)$"):
        distortions.apply("gaublur", torch.zeros(2, 1, 8, 8), 1)


def test_range_tolerance_is_inclusive_and_tight():
    """Values down to -1e-3 and up to 1 + 1e-3 pass (rounding of upstream ops); 1.01 does not."""
    for v in (-1e-3, 1 + 1e-3):
        x = torch.full((1, 3, 8, 8), v, dtype=torch.float64)
        assert distortions.apply("brighten", x, 1).dtype == torch.float64
    with pytest.raises(ValueError, match=r"images must be in \[0,1\], got values in \[1\.01, 1\.01\]"):
        distortions.apply("brighten", torch.full((1, 3, 8, 8), 1.01), 1)


# ------------------------------------------------------------------------------------------- level checks
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32])
def test_any_integer_level_tensor_acts_like_int64(dtype):
    """A uint8 level tensor would index the level table as a boolean mask if it were not converted to int64."""
    x = _images(3)
    levels = torch.tensor([1, 3, 5])
    ref = distortions.apply("gaublur", x, levels)
    assert torch.equal(distortions.apply("gaublur", x, levels.to(dtype)), ref)


def test_bad_level_type_is_named():
    with pytest.raises(ValueError, match=r"or a LongTensor \(B,\), got float$"):
        distortions.apply("gaublur", _images(1), 2.0)


# ------------------------------------------------------------------------------------------- CPU chunking
def _record_calls(monkeypatch, name: str) -> list[int]:
    """Make op `name` record the batch size of every call (the op itself still runs)."""
    calls: list[int] = []
    index = NAMES.index(name)
    spec = transform._SPECS[index]

    def fn(x, params, generator):
        calls.append(int(x.shape[0]))
        return spec.fn(x, params, generator)

    specs = list(transform._SPECS)
    specs[index] = dataclasses.replace(spec, fn=fn)
    monkeypatch.setattr(transform, "_SPECS", tuple(specs))
    monkeypatch.setattr(transform, "get_spec", lambda n: transform._SPECS[NAMES.index(n)])
    return calls


@pytest.mark.parametrize(
    "name,b,expected", [("gaublur", 20, [8, 8, 4]), ("gaublur", 8, [8]), ("noneccpatch", 70, [64, 6])]
)
def test_cpu_batches_run_in_chunks(monkeypatch, name, b, expected):
    """`CPU_CHUNK` images per op call on the CPU (64 for `noneccpatch`), through `apply` and `apply_plan`."""
    calls = _record_calls(monkeypatch, name)
    distortions.apply(name, _images(b), 2, generator=torch.Generator().manual_seed(0))
    assert calls == expected
    calls.clear()
    distortions.apply_plan(_images(b), DistortionPlan.from_sequences([[(name, 2)]] * b))
    assert calls == expected


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_chunked_batch_equals_per_image_and_is_clipped(name):
    """A batch of 20 (chunks 8+8+4) equals image-by-image application, clipped to [0,1] in every chunk."""
    x = _images(20)
    levels = torch.arange(20) % 5 + 1
    y = distortions.apply(name, x, levels)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    single = torch.cat([distortions.apply(name, x[i : i + 1], int(levels[i])) for i in range(20)])
    torch.testing.assert_close(y, single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_chunked_batch_of_stochastic_op_follows_the_generator(name):
    """Every chunk draws from the given generator: same seed, same output; another seed, another output."""
    x = _images(20)
    a = distortions.apply(name, x, 5, generator=torch.Generator().manual_seed(1))
    b = distortions.apply(name, x, 5, generator=torch.Generator().manual_seed(1))
    c = distortions.apply(name, x, 5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a[8:16], c[8:16])
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_ops_run_in_float32_even_under_autocast():
    """Autocast is disabled inside `apply`: a bf16 autocast region would otherwise run the blur convolution in
    bf16. The reference is `apply_plan`, whose composition loop disables autocast on its own."""
    x = _images(4)
    ref = distortions.apply_plan(x, DistortionPlan.from_sequences([[("gaublur", 4)]] * 4))
    for region in (torch.autocast("cpu", enabled=False), torch.autocast("cpu", dtype=torch.bfloat16)):
        with region:
            y = distortions.apply("gaublur", x, 4)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, ref, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------- zero-sized input
@pytest.mark.parametrize("name", ["gaublur", "jpeg", "jpeg2000", "colorsat1"])
def test_zero_sized_images_are_returned_unchanged(name):
    """Images with a zero height are returned as they are (the codecs and convolutions fail on them)."""
    x = torch.rand(2, 3, 0, 6)
    y = distortions.apply(name, x, 2)
    assert y.shape == x.shape and y is not x
    z = distortions.apply_plan(x, DistortionPlan.from_sequences([[(name, 2)], [(name, 3)]]))
    assert z.shape == x.shape and z is not x


# ---------------------------------------------------------------------------------------- plan validation
def test_plan_errors_name_the_problem():
    x = _images(2)
    with pytest.raises(ValueError, match=r"plan must be a DistortionPlan, got list"):
        distortions.apply_plan(x, [[("jpeg", 2)], []])
    with pytest.raises(ValueError, match=r"plan has batch_size 1 but images has 2 samples"):
        distortions.apply_plan(x, DistortionPlan.from_sequences([[("jpeg", 2)]]))
    with pytest.raises(ValueError, match=r"plan\.type_ids must be in -1\.\.23$"):
        distortions.apply_plan(x, DistortionPlan(torch.tensor([[-2], [1]]), torch.tensor([[1], [2]])))
