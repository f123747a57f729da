"""Feature extraction details: the rescale's size, filter and clipping, ARNIQA's crop corners on odd sizes, the
zero padding of small images, batches that continue the item ids, float32 features and the progress wrapper."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iqa_bench.eval import features as features_mod
from iqa_bench.eval.features import crop_views, extract_features, five_crop_boxes, rescale


class _Items(torch.utils.data.Dataset):
    def __init__(self, items: list[torch.Tensor]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.items[i]


class _Enc:
    """Per-channel mean, height and width of each view, as float64 (the extractor must return float32)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        hw = torch.tensor([x.shape[2], x.shape[3]], dtype=torch.float64).expand(x.shape[0], 2)
        return torch.cat([x.mean(dim=(2, 3)).double(), hw], dim=1)


def test_rescale_is_antialiased_bicubic_to_the_floored_size_and_clipped() -> None:
    x = torch.zeros(2, 3, 25, 31)
    x[..., 15:] = 1.0  # a step edge: bicubic overshoots [0, 1] on both sides
    y = rescale(x.clone(), 0.3)
    assert y.shape == (2, 3, 7, 9)  # int(7.5), int(9.3)
    ref = F.interpolate(x, size=(7, 9), mode="bicubic", antialias=True, align_corners=False)
    assert ref.min() < 0 or ref.max() > 1
    torch.testing.assert_close(y, ref.clamp(0, 1), rtol=0, atol=1e-6)
    assert rescale(x, 0.01).shape == (2, 3, 1, 1)  # never below one pixel
    big = rescale(torch.full((1, 3, 4, 4), 0.5), 2.0)
    assert big.shape == (1, 3, 8, 8) and torch.allclose(big, torch.full_like(big, 0.5))


def test_five_crop_boxes_on_odd_sizes() -> None:
    assert five_crop_boxes(33, 47, 11) == [(11, 18), (0, 0), (0, 36), (22, 0), (22, 36)]
    assert five_crop_boxes(32, 48, 24) == [(4, 12), (0, 0), (0, 24), (8, 0), (8, 24)]
    assert all(isinstance(v, int) for box in five_crop_boxes(33, 47, 11) for v in box)


def test_crop_views_take_the_boxes_and_pad_only_what_is_missing() -> None:
    x = torch.arange(2 * 3 * 20 * 30, dtype=torch.float32).view(2, 3, 20, 30)
    whole = crop_views(x, None)
    assert whole.shape == (2, 1, 3, 20, 30) and torch.equal(whole[:, 0], x)
    v = crop_views(x, 16)
    assert v.shape == (2, 5, 3, 16, 16)
    for k, (t, c) in enumerate(five_crop_boxes(20, 30, 16)):
        assert torch.equal(v[:, k], x[..., t : t + 16, c : c + 16])
    tall = torch.ones(1, 3, 30, 10)  # only the width is short: 6 zero columns on the right, no zero row
    v = crop_views(tall, 16)
    assert v.shape == (1, 5, 3, 16, 16)
    assert torch.equal(v[0, 2, :, :, 10:], torch.zeros(3, 16, 6)) and v[0, 2, :, :, :10].min() == 1
    assert v[0, 4, :, -1, :10].min() == 1  # the bottom row is image, not padding
    wide = torch.ones(
        1, 3, 10, 30
    )  # only the height is short: the right corners end at the image's last column
    v = crop_views(wide, 16)
    assert v[0, 2, :, :10].min() == 1 and v[0, 2, :, 10:].abs().sum() == 0
    assert v[0, 4, :, :10, -1].min() == 1
    small = torch.ones(1, 3, 10, 12)  # both short: every crop is the padded image
    v = crop_views(small, 16)
    assert all(torch.equal(v[0, k], v[0, 0]) for k in range(5)) and v[0, 0].sum() == 3 * 10 * 12


def test_ids_continue_across_batches_and_features_are_float32() -> None:
    items = [torch.full((3, 20, 24 if i % 2 else 20), 25 * i, dtype=torch.uint8) for i in range(7)]
    feats, ids = extract_features(
        {"e": _Enc()}, _Items(items), scales=(1.0, 0.5), crop_size=None, batch_size=3
    )
    f = feats["e"]
    assert f.dtype == np.float32 and f.shape == (7, 10) and ids.dtype == np.int64
    assert ids.tolist() == list(range(7))
    for i, x in enumerate(items):
        np.testing.assert_allclose(f[i, :3], [25 * i / 255] * 3, rtol=1e-6)
        assert f[i, 3:5].tolist() == [20, x.shape[2]] and f[i, 8:10].tolist() == [10, x.shape[2] // 2]
    feats, ids = extract_features({"e": _Enc()}, _Items(items), scales=(1.0,), crop_size=16, batch_size=3)
    assert ids.tolist() == np.repeat(np.arange(7), 5).tolist() and feats["e"].shape == (35, 5)
    np.testing.assert_allclose(feats["e"][5:10, 0], [25 / 255] * 5, rtol=1e-6)  # item 1's five crops


def test_progress_wraps_the_loader_with_its_description(monkeypatch) -> None:
    import iqa_bench.utils.progress as progress_mod

    seen: list[str] = []

    def spy(loader: Any, desc: str) -> Any:
        seen.append(desc)
        return loader

    monkeypatch.setattr(progress_mod, "progress", spy)
    items = [torch.zeros(3, 8, 8, dtype=torch.uint8)] * 2
    for progress, want in [(True, ["features"]), ("koniq", ["koniq"]), (False, []), ("", [])]:
        seen.clear()
        feats, _ = extract_features({"e": _Enc()}, _Items(items), scales=(1.0,), progress=progress)
        assert seen == want and feats["e"].shape == (2, 5)
    loader = torch.utils.data.DataLoader(_Items(items))
    assert features_mod._progress(loader, False) is loader


@pytest.mark.parametrize("batch_size", [1, 2])
def test_batches_of_mixed_sizes_keep_each_items_features(batch_size: int) -> None:
    items = [torch.full((3, 8 + 4 * (i % 3), 12), 30 * i, dtype=torch.uint8) for i in range(5)]
    feats, ids = extract_features(
        {"a": _Enc(), "b": _Enc()}, _Items(items), scales=(1.0,), batch_size=batch_size
    )
    assert ids.tolist() == list(range(5)) and np.array_equal(feats["a"], feats["b"])
    assert feats["a"][:, 3].tolist() == [8.0 + 4 * (i % 3) for i in range(5)]
    np.testing.assert_allclose(feats["a"][:, 0], [30 * i / 255 for i in range(5)], rtol=1e-6)
