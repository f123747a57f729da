"""Internal building blocks of the distortion bank: kernels, filters, curves, patch copies (no reference data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iqa_bench.distortions.functional import _curves, _kernels, _utils
from iqa_bench.distortions.functional.color import _sort_index_clip
from iqa_bench.distortions.functional.spatial import _overlapping_copy_source, _quantization_bins


def _fspecial_gaussian_2d(size: int, sigma: float) -> np.ndarray:
    """MATLAB fspecial('gaussian') written directly in 2-D (independent of the separable implementation)."""
    m = (size - 1) / 2
    y, x = np.mgrid[-m : m + 1, -m : m + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


@pytest.mark.parametrize("sigma", [0.1, 0.5, 1, 2, 5, 3.5, 6.5, 11, 14, 20, 4])
def test_separable_gaussian_equals_fspecial(sigma):
    g = _kernels.gaussian_kernel1d(sigma).double().numpy()
    size = 2 * math.ceil(2 * sigma) + 1
    assert g.size == size
    np.testing.assert_allclose(np.outer(g, g), _fspecial_gaussian_2d(size, sigma), atol=1e-7)


def test_gaussian_sigma_01_is_delta():
    g = _kernels.gaussian_kernel1d(0.1)
    assert g.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("radius", [1, 2, 4, 6, 8])
def test_disk_kernel(radius):
    k = _kernels.disk_kernel(radius)
    assert k.shape == (2 * radius + 1, 2 * radius + 1)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.t())
    assert float(k[radius, radius]) > 0
    # the official port's rim quirk: its kernel is not MATLAB's (which has no negative taps) - kept for parity
    assert radius == 1 or float(k.min()) < 0


def test_motion_kernels():
    unit = _kernels.motion_kernel_table(1)  # length 1: a delta (plus 2.2e-16 taps for angles in (90, 180))
    c = unit.shape[-1] // 2
    assert torch.all(unit[:, c, c] == 1) and float(unit.sum(dim=(1, 2)).max()) < 1 + 1e-12
    horizontal = _kernels.motion_kernel(6, 0)
    assert horizontal.shape[0] == 1 and float(horizontal.sum()) == pytest.approx(1.0, abs=1e-6)
    vertical = _kernels.motion_kernel(6, 90)
    assert vertical.shape[1] == 1
    table = _kernels.motion_kernel_table(10)
    assert table.shape[1] == table.shape[2] and table.shape[1] % 2 == 1
    assert torch.allclose(table.sum(dim=(1, 2)), torch.ones(180), atol=1e-5)
    assert not torch.allclose(table[30], table[120])


@pytest.mark.parametrize("taps", [3, 17, 81])
def test_conv_separable_matches_replicate_conv2d(taps):
    x = torch.rand(2, 3, 30, 37)
    k = torch.rand(taps, dtype=torch.float64).float()
    k /= k.sum()
    ref = F.conv2d(
        F.pad(x, (taps // 2,) * 4, mode="replicate").reshape(6, 1, 30 + taps - 1, 37 + taps - 1),
        torch.outer(k, k).view(1, 1, taps, taps),
    ).view_as(x)
    torch.testing.assert_close(_utils.conv_separable(x, k), ref, atol=5e-6, rtol=0)


def test_conv_per_sample_uses_each_samples_kernel():
    x = torch.rand(3, 3, 20, 20)
    kernels = torch.rand(3, 5, 5)
    out = _utils.conv2d_per_sample(x, kernels)
    for i in range(3):
        torch.testing.assert_close(
            out[i : i + 1], _utils.conv2d_shared(x[i : i + 1], kernels[i]), atol=1e-6, rtol=0
        )


def test_per_level_groups_by_value():
    x = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 3, 2, 2).contiguous()
    param = torch.tensor([1.0, 2.0, 1.0, 3.0, 2.0, 1.0])
    calls = []

    def fn(xs: torch.Tensor, v: float) -> torch.Tensor:
        calls.append((v, xs.shape[0]))
        return xs * v

    out = _utils.per_level(x, param, fn)
    assert sorted(calls) == [(1.0, 3), (2.0, 2), (3.0, 1)]
    torch.testing.assert_close(out, x * param.view(6, 1, 1, 1))


def test_parabola_curve_passes_through_knots():
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3).expand(3, 1, 1, 3)
    mid = torch.tensor([0.45, 0.6, 1.05])
    y = _curves.parabola_curve(x, mid)
    torch.testing.assert_close(y[:, 0, 0, 1], mid)
    torch.testing.assert_close(y[:, 0, 0, 0], torch.zeros(3))
    torch.testing.assert_close(y[:, 0, 0, 2], torch.ones(3))


@pytest.mark.parametrize("amount", [0.0, 0.15, -0.4, 0.3, -0.6])
def test_lincontr_curve_interpolates_and_is_c1(amount):
    knots = torch.tensor(_curves.LINCONTR_BREAKS)
    coefs = _curves.lincontr_coefficients(amount).unsqueeze(0)
    y = _curves.piecewise_cubic(knots.view(1, 1, 1, 5), coefs).flatten()
    expected = torch.tensor([0.0, 0.25 - amount / 4, 0.5, 0.75 + amount / 4, 1.0]).clamp(0, 1)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=0)
    eps = 1e-3
    for k in (0.3, 0.5, 0.7):  # continuous first derivative across interior knots
        pts = torch.tensor([k - 2 * eps, k - eps, k + eps, k + 2 * eps]).view(1, 1, 1, 4)
        v = _curves.piecewise_cubic(pts, coefs).flatten()
        assert float((v[1] - v[0]) / eps) == pytest.approx(float((v[3] - v[2]) / eps), rel=0.02, abs=0.02)


def test_quantization_bins():
    assert _quantization_bins(10) == [0, 25, 51, 76, 102, 127, 153, 178, 204, 229, 256]
    assert len(_quantization_bins(7)) == 8


def test_sort_index_clip_matches_torch_sort_formula():
    def official(e: torch.Tensor) -> torch.Tensor:
        hi = torch.sort(e).indices.to(e.dtype)
        lo = 1 - torch.sort(1 - e).indices.to(e.dtype)
        return torch.maximum(torch.minimum(e, hi), lo)

    g = torch.Generator().manual_seed(0)
    cases = [
        torch.rand(2, 1, 20, 50, generator=g),
        (torch.rand(2, 1, 20, 224, generator=g) * 3).round() / 3,  # many ties, long rows
        torch.zeros(1, 1, 4, 9),
    ]
    for e in cases:
        assert torch.equal(_sort_index_clip(e), official(e))


def test_overlapping_copy_matches_row_by_row_copy():
    """The closed form equals copying a 16x16 window row by row (top first) inside one image."""
    g = torch.Generator().manual_seed(0)
    pr = torch.arange(16).view(1, 16, 1)
    pc = torch.arange(16).view(1, 1, 16)
    for _ in range(30):
        img = torch.rand(48, 48, generator=g)
        sr, sc = (int(v) for v in torch.randint(10, 22, (2,), generator=g))
        dr, dc = (int(v) for v in torch.randint(-8, 9, (2,), generator=g))
        ref = img.clone()
        for r in range(16):
            ref[sr + dr + r, sc + dc : sc + dc + 16] = ref[sr + r, sc : sc + 16].clone()
        rr, cc = _overlapping_copy_source(
            pr, pc, torch.tensor(dr).view(1, 1, 1), torch.tensor(dc).view(1, 1, 1), 16
        )
        ours = img.clone()
        ours[sr + dr + pr[0], sc + dc + pc[0]] = img[sr + rr[0], sc + cc[0]]
        assert torch.equal(ours, ref), (dr, dc)
