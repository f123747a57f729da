"""The CPU-fast forms of the ARNIQA ops against the straightforward formulations they replace: colorsat1's closed
form vs kornia's HSV round trip, the f-space Lab ops vs kornia Lab, the truncated-power lincontrchange curve vs
per-segment evaluation, the shifted-sum separable filter vs a convolution, and the per-image NumPy loops of
noneccpatch/colorblock vs their batched forms and the official in-place copies."""

from __future__ import annotations

import kornia
import pytest
import torch
import torch.nn.functional as F

from iqa_bench.distortions import functional as Fn
from iqa_bench.distortions.functional import _curves, _lab, _utils, spatial
from iqa_bench.distortions.functional._kernels import gaussian_kernel1d
from iqa_bench.distortions.functional._utils import rand
from iqa_bench.distortions.functional.sharpness import SHARPEN_RADIUS


def _images(b: int = 4, size: int = 40, seed: int = 0) -> torch.Tensor:
    """Smooth colour fields plus texture, in [0,1], with a black, a grey and a near-black image."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(b, 3, 6, 6, generator=g), size=(size, size), mode="bilinear")
    x = (0.8 * x + 0.2 * torch.rand(b, 3, size, size, generator=g)).clamp(0, 1)
    x[0] = 0.0
    x[1] = 0.5
    x[2] = x[2] * 1e-3
    return x


def _column(v: float, b: int) -> torch.Tensor:
    return torch.full((b,), v)


@pytest.mark.parametrize("factor", [0.4, 0.2, 0.1, 0.0, -0.4])
def test_colorsat1_closed_form_equals_kornias_hsv_round_trip(factor):
    x = _images()
    hsv = kornia.color.rgb_to_hsv(x.flip(1))
    hsv = torch.cat([hsv[:, :1], hsv[:, 1:2] * factor, hsv[:, 2:]], dim=1)
    expected = kornia.color.hsv_to_rgb(hsv).flip(1)
    assert torch.allclose(Fn.color_saturation1(x, _column(factor, 4)), expected, atol=2e-6, rtol=0)


def _kornia_lab(x):
    return kornia.color.rgb_to_lab(x.flip(1))


def _kornia_rgb(lab):
    return kornia.color.lab_to_rgb(lab).flip(1)


def _trunc(rgb):
    return torch.trunc(rgb * 255.0) / 255.0


@pytest.mark.parametrize("amount", [0.1, 0.4, 1.1])
def test_brighten_in_f_space_equals_the_kornia_lab_form(amount):
    x = _images()
    mid = torch.full((4,), 0.5 + amount / 2)
    lab = _kornia_lab(x)
    lum = _curves.parabola_curve_clamped(lab[:, :1] / 100.0, mid) * 100.0
    expected = (
        2 * _curves.parabola_curve_clamped(x, mid) + _kornia_rgb(torch.cat([lum, lab[:, 1:]], 1)).clamp(0, 1)
    ) / 3
    assert torch.allclose(Fn.brighten(x, _column(amount, 4)), expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("amount", [1.0, 3.0, 12.0])
def test_highsharpen_in_f_space_equals_the_kornia_lab_form(amount):
    x = _images()
    lab = _kornia_lab(x)
    g = gaussian_kernel1d(float(SHARPEN_RADIUS), 2 * SHARPEN_RADIUS + 1)
    lum = lab[:, :1] + amount * (lab[:, :1] - _utils.conv_separable(lab[:, :1], g))
    expected = _kornia_rgb(torch.cat([lum, lab[:, 1:]], 1))
    assert torch.allclose(Fn.high_sharpen(x, _column(amount, 4)), expected, atol=2e-5, rtol=0)


def _within_one_level_mostly_equal(ours: torch.Tensor, expected: torch.Tensor) -> None:
    diff = (ours - expected).abs()
    assert float(diff.max()) <= 1 / 255 + 1e-6  # a grey level at most (a floor taken on the other side)
    assert float((diff > 1e-6).float().mean()) < 0.01


@pytest.mark.parametrize("factor", [2.0, 3.0, 9.0])
def test_colorsat2_in_f_space_equals_the_kornia_lab_form(factor):
    x = _images()
    lab = _kornia_lab(x)
    expected = _trunc(_kornia_rgb(torch.cat([lab[:, :1], lab[:, 1:] * factor], 1)))
    _within_one_level_mostly_equal(Fn.color_saturation2(x, _column(factor, 4)), expected)


@pytest.mark.parametrize("amount", [1.0, 6.0, 12.0])  # 12: sigma 20, the banded-matrix filter
def test_colordiff_in_f_space_equals_the_kornia_lab_form(amount):
    x = _images()
    lab = _kornia_lab(x)
    ab = _utils.conv_separable(lab[:, 1:], gaussian_kernel1d(1.5 * amount + 2)) * amount
    expected = _trunc(_kornia_rgb(torch.cat([lab[:, :1], ab], 1)))
    _within_one_level_mostly_equal(Fn.color_diffusion(x, _column(amount, 4)), expected)


def test_f_space_round_trip_is_the_identity_across_the_knees():
    v = torch.linspace(0, 1, 2001)
    knees = torch.tensor([0.04045, 0.0031308, 0.2068966, 0.008856])
    v = torch.cat([v, knees, knees + 1e-6, knees - 1e-6]).clamp(0, 1)
    x = torch.stack(torch.meshgrid(v, v[:3], v[-3:], indexing="ij"), 0).reshape(1, 3, -1, 1)
    assert torch.allclose(_lab.f_to_rgb_(_lab.rgb_to_f(x)), x, atol=2e-5, rtol=0)
    swapped = _lab.f_to_rgb_(_lab.rgb_to_f(x, swap_rb=True), swap_rb=True)
    assert torch.allclose(swapped, x, atol=2e-5, rtol=0)
    assert torch.allclose(_lab.lab_from_f(_lab.rgb_to_f(x, swap_rb=True)), _kornia_lab(x), atol=1e-3, rtol=0)


def _segment_reference(x: torch.Tensor, coefs: torch.Tensor) -> torch.Tensor:
    breaks = torch.tensor(_curves.LINCONTR_BREAKS)
    seg = torch.bucketize(x, breaks[1:4])
    t = x - breaks[seg]
    c = coefs[0][seg]  # (..., 4)
    return (((c[..., 0] * t + c[..., 1]) * t + c[..., 2]) * t + c[..., 3]).clamp(0, 1)


@pytest.mark.parametrize("amount", [0.0, 0.15, -0.4, 0.3, -0.6])
def test_truncated_power_curve_equals_per_segment_evaluation(amount):
    coefs = _curves.lincontr_coefficients(amount).unsqueeze(0)
    x = torch.cat([torch.linspace(0, 1, 1001), torch.tensor(_curves.LINCONTR_BREAKS)]).view(1, 1, 1, -1)
    ours = _curves.piecewise_cubic(x, coefs)
    assert torch.allclose(ours, _segment_reference(x, coefs), atol=1e-6, rtol=0)


def _conv_reference(x, k_row, k_col):
    kh, kw = k_col.numel(), k_row.numel()
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    c = x.shape[1]
    weight = torch.outer(k_col, k_row).expand(c, 1, kh, kw)
    return F.conv2d(padded, weight.contiguous(), groups=c)


@pytest.mark.parametrize(
    ("taps_row", "taps_col", "h", "w"), [(5, 5, 20, 24), (13, 3, 9, 30), (21, 39, 50, 7)]
)
def test_shifted_sum_filter_equals_a_replicate_padded_convolution(taps_row, taps_col, h, w):
    g = torch.Generator().manual_seed(taps_row)
    x = torch.rand(2, 3, h, w, generator=g)
    k_row, k_col = torch.rand(taps_row, generator=g), torch.rand(taps_col, generator=g)
    assert torch.allclose(_utils.conv_separable(x, k_row, k_col), _conv_reference(x, k_row, k_col), atol=1e-5)


def _noneccpatch_corners(x, counts, seed):
    b, _, h, w = x.shape
    ph, pw = min(16, h), min(16, w)
    lo_h, hi_h = spatial._patch_range(h, ph, 16)
    lo_w, hi_w = spatial._patch_range(w, pw, 16)
    u = rand((int(counts.max()), 4, b), torch.Generator().manual_seed(seed), x.device)
    src_c = torch.round(u[:, 0] * (hi_w - lo_w)).long() + lo_w
    src_r = torch.round(u[:, 1] * (hi_h - lo_h)).long() + lo_h
    dst_c = torch.round((u[:, 2] - 0.5) * 16 + src_c).long().clamp(0, w - pw)
    dst_r = torch.round((u[:, 3] - 0.5) * 16 + src_r).long().clamp(0, h - ph)
    return (src_r, src_c, dst_r, dst_c), ph, pw


@pytest.mark.parametrize("shape", [(3, 3, 64, 64), (2, 3, 20, 17)])
def test_noneccpatch_per_image_loop_equals_batched_form_and_official_copies(shape):
    for seed in range(8):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
        n = torch.tensor([20, 100, 60][: shape[0]])
        corners, ph, pw = _noneccpatch_corners(x, n, seed)
        ours = spatial._noneccpatch_per_image(x, n, corners, ph, pw)
        assert torch.equal(ours, spatial._noneccpatch_batched(x, n, corners, ph, pw))
        official = x.clone()  # the official loop: assignment between (overlapping) views of the image
        for i in range(shape[0]):
            for t in range(int(n[i])):
                sr, sc, dr, dc = (int(v[t, i]) for v in corners)
                official[i, :, dr : dr + ph, dc : dc + pw] = official[i, :, sr : sr + ph, sc : sc + pw]
        assert torch.equal(ours, official)


def test_colorblock_per_image_loop_equals_batched_form():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 3, 48, 40, generator=g)
    n = torch.tensor([2, 10, 0])
    colors = torch.rand(3, 10, 3, generator=g)
    top = torch.randint(0, 48 - 32, (3, 10), generator=g)
    left = torch.randint(0, 40 - 32, (3, 10), generator=g)
    ours = spatial._color_block_per_image(x, n, colors, top, left, 32, 32)
    assert torch.equal(ours, spatial._color_block_batched(x, n, colors, top, left, 32, 32))
    assert torch.equal(ours[2], x[2]) and not torch.equal(ours[1], x[1])


def test_gradient_magnitude_equals_kornias_spatial_gradient():
    from iqa_bench.distortions.functional.color import _gradient_magnitude

    gray = torch.rand(3, 1, 21, 34, generator=torch.Generator().manual_seed(2))
    expected = torch.sum(kornia.filters.spatial_gradient(gray, "diff") ** 2, 2) ** 0.5
    assert torch.allclose(_gradient_magnitude(gray), expected, atol=1e-7, rtol=0)


@pytest.mark.parametrize("levels", [20, 13, 7])
def test_quantization_table_equals_bucketizing(levels):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(levels))
    # bucket edges and their neighbours
    x[0, 0, 0, :6] = torch.tensor([0.0, 1.0, 36 / 255, 37 / 255, 1e-7, 1 - 1e-7])
    bins = torch.tensor(spatial._quantization_bins(levels), dtype=torch.float32)
    expected = spatial._min_max(torch.bucketize(x * 255.0, bins).to(torch.float32))
    assert torch.equal(spatial._quantization_shared(x, float(levels)), expected)


@pytest.mark.parametrize("radius", [1, 2, 4])  # 9 and 21 taps as shifted sums, 69 as a convolution
def test_shared_2d_filter_equals_a_convolution(radius):
    from iqa_bench.distortions.functional._kernels import disk_kernel

    x = torch.rand(2, 3, 30, 26, generator=torch.Generator().manual_seed(radius))
    k = disk_kernel(radius)
    kh, kw = k.shape
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    expected = F.conv2d(padded, k.expand(3, 1, kh, kw).contiguous(), groups=3)
    assert torch.allclose(_utils.conv2d_shared(x, k), expected, atol=1e-6, rtol=0)
