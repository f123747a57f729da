"""Feature extraction: scales concatenated, mixed image sizes, 5-crop rows, order preserved."""

from __future__ import annotations

import numpy as np
import torch

from iqa_bench.eval.features import crop_views, extract_features, five_crop_boxes, rescale


class MeanEncoder:
    """features = per-channel mean and the image height (lets the test check scale and order)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), torch.full((x.shape[0], 1), float(x.shape[2]))], dim=1)


class ListSet(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _items():
    g = torch.Generator().manual_seed(0)
    shapes = [(32, 48), (48, 32), (32, 48), (40, 40), (32, 48)]
    return [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for h, w in shapes]


def test_whole_image_two_scales_in_order():
    items = _items()
    feats, ids = extract_features({"m": MeanEncoder()}, ListSet(items), scales=(1.0, 0.5), batch_size=3)
    f = feats["m"]
    assert f.shape == (5, 8) and ids.tolist() == [0, 1, 2, 3, 4]
    for i, x in enumerate(items):
        xf = x.float() / 255
        np.testing.assert_allclose(f[i, :3], xf.mean(dim=(1, 2)).numpy(), rtol=1e-5)
        assert f[i, 3] == x.shape[1] and f[i, 7] == x.shape[1] // 2
        np.testing.assert_allclose(f[i, 4:7], f[i, :3], atol=0.02)  # half-scale mean ~ full-scale mean


def test_five_crops_rows_per_item():
    items = _items()
    feats, ids = extract_features(
        {"a": MeanEncoder(), "b": MeanEncoder()}, ListSet(items), scales=(1.0,), crop_size=24, batch_size=2
    )
    assert feats["a"].shape == (25, 4) and np.array_equal(feats["a"], feats["b"])
    assert ids.tolist() == sorted(ids.tolist()) and np.bincount(ids).tolist() == [5] * 5
    x = items[0].float()[None] / 255
    top, left = five_crop_boxes(32, 48, 24)[0]
    centre = x[..., top : top + 24, left : left + 24].mean(dim=(2, 3))[0]
    np.testing.assert_allclose(feats["a"][0, :3], centre.numpy(), rtol=1e-5)


def test_crop_views_pads_small_images():
    x = torch.ones(1, 3, 10, 30)
    v = crop_views(x, 16)
    assert v.shape == (1, 5, 3, 16, 16)
    assert v[0, 3, :, -1].sum() == 0  # bottom-left crop reaches the zero padding


def test_rescale_identity_and_half():
    x = torch.rand(2, 3, 20, 30)
    assert rescale(x, 1.0) is x
    assert rescale(x, 0.5).shape == (2, 3, 10, 15)
