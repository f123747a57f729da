"""Image scales: full-scale views at native resolution, half-scale views by downscaling, and one rule for a
half-scale image smaller than the crop (zero rows/columns at the bottom/right) in pretraining and in the evaluator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from iqa_bench.data.images import decode_image, half_scale
from iqa_bench.data.pretrain import ArniqaPairs, LadderCrops, ReiqaOverlap, reiqa_region_size
from iqa_bench.eval.features import crop_views, rescale

W, H = 512, 384  # KADIS-700k / KADID-10k size


@pytest.fixture(scope="module")
def coded_png(tmp_path_factory) -> tuple[str, torch.Tensor]:
    """A 512x384 PNG whose pixels encode their coordinates: R = x mod 256, G = y mod 256, B = 16·(x // 256) +
    (y // 256) + 1 (never 0, so no content pixel is black). Returns (path, decoded uint8 (3, H, W))."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([x % 256, y % 256, 16 * (x // 256) + (y // 256) + 1], axis=2).astype(np.uint8)
    path = tmp_path_factory.mktemp("scales") / "coded.png"
    Image.fromarray(rgb).save(path)
    return str(path), decode_image(path)


def _coords(crop: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Decode the (x, y) coordinates of a crop of the coded image."""
    c = crop.numpy().astype(np.int64)
    return c[0] + 256 * ((c[2] - 1) // 16), c[1] + 256 * ((c[2] - 1) % 16)


def _is_native_window(crop: torch.Tensor) -> bool:
    """True iff `crop` is a contiguous window of the original pixels (no resampling)."""
    x, y = _coords(crop)
    return bool(np.all(np.diff(x, axis=1) == 1) and np.all(np.diff(y, axis=0) == 1) and np.all(x == x[:1]))


def _find_window(img: torch.Tensor, crop: torch.Tensor) -> tuple[int, int] | None:
    """Offset (top, left) at which `crop` (content part) occurs in `img`, or None."""
    h, w = crop.shape[-2:]
    for t in range(img.shape[-2] - h + 1):
        for left in range(img.shape[-1] - w + 1):
            if torch.equal(img[:, t : t + h, left : left + w], crop):
                return t, left
    return None


def test_arniqa_full_view_is_native_and_half_view_is_padded_like_the_evaluator(coded_png):
    path, img = coded_png
    ds = ArniqaPairs([path], crop_size=224)
    torch.manual_seed(0)
    views = ds[0]["a"]  # (2, 3, 224, 224): full, half
    assert views.shape == (2, 3, 224, 224)
    assert _is_native_window(views[0])  # the old path upscaled 384 -> 448 first (x1.17): not a native window
    half = half_scale(img)
    assert half.shape[-2:] == (H // 2, W // 2)
    # rows 192..223 are the zero padding; the 192 content rows are a window of the x2-downscaled image
    assert torch.all(views[1][:, H // 2 :] == 0)
    assert torch.all(views[1][:, : H // 2].sum(0) > 0)
    assert _find_window(half, views[1][:, : H // 2]) is not None

    # the evaluator: the half scale of the same image, 5 crops of 224 -> the same 32 zero rows in every crop
    x = img[None].float() / 255
    ev = crop_views(rescale(x, 0.5), 224)[0]  # (5, 3, 224, 224)
    assert ev.shape == (5, 3, 224, 224)
    pad_rows_eval = {int((v.abs().sum(dim=(0, 2)) == 0).sum()) for v in ev}
    pad_rows_train = int((views[1].sum(dim=(0, 2)) == 0).sum())
    assert pad_rows_eval == {pad_rows_train} == {224 - H // 2}
    assert torch.all(ev[:, :, H // 2 :] == 0)
    # and at full scale neither path pads
    assert torch.all(crop_views(x, 224)[0].sum(dim=(1, 3)) > 0)


def test_reiqa_regions_native_full_scale_and_padded_half_scale(coded_png):
    path, img = coded_png
    ds = ReiqaOverlap([path], crop_size=160)
    r = reiqa_region_size(160)  # 304
    torch.manual_seed(1)
    s = ds[0]
    assert s["full"].shape == s["half"].shape == (3, r, r)
    assert _is_native_window(s["full"])
    assert torch.all(s["half"][:, H // 2 :] == 0) and torch.all(s["half"][:, :, W // 2 :] == 0)
    assert torch.equal(s["half"][:, : H // 2, : W // 2], half_scale(img))


def test_small_images_are_upscaled_only_to_one_crop(tmp_path):
    """An image smaller than the crop is upscaled to a short side of exactly one crop (not two)."""
    path = tmp_path / "small.png"
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(path)
    for cls in (ArniqaPairs, LadderCrops):
        ds = cls([path], crop_size=64)
        _, loaded = ds.load(0)
        assert loaded.shape[-2:] == (64, 96)
