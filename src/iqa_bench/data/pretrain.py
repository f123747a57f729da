"""Pretraining datasets: decode + crop to uint8 only (no float maths in workers).

Each dataset yields a dict of uint8 tensors. The distortions are applied later, on the batch's device, in the
method's `on_after_batch_transfer`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from iqa_bench.data.images import BadImageError, decode_image, ensure_min_side, half_scale, random_crop
from iqa_bench.errors import UserError

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_BAD = 50


class PretrainImages(Dataset):
    """Base: a list of image files with safe loading. A bad file is skipped with a warning naming it (once) and
    another image is drawn instead, so a long run never dies on one bad file; `UserError` if none is readable."""

    def __init__(self, paths: Sequence[str | Path], crop_size: int) -> None:
        if not paths:
            raise UserError("the pretraining image list is empty")
        if crop_size < 8:
            raise UserError(f"data.pretrain.crop_size must be >= 8, got {crop_size}")
        self.paths = [Path(p) for p in paths]
        self.crop_size = int(crop_size)
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def min_side(self) -> int:
        """Images whose short side is below this are upscaled first (bicubic): the full-scale view is always taken
        at native resolution otherwise (only images smaller than one crop are ever upscaled)."""
        return self.crop_size

    def load(self, index: int) -> tuple[int, torch.Tensor]:
        """Decode image `index`, or a random readable one if it is bad. Returns (index used, uint8 (3,H,W))."""
        for _ in range(MAX_CONSECUTIVE_BAD):
            if index not in self.bad:
                try:
                    return index, ensure_min_side(decode_image(self.paths[index]), self.min_side())
                except BadImageError as exc:
                    self.bad.add(index)
                    log.warning(
                        "skipping unusable pretraining image (%d skipped so far): %s", len(self.bad), exc
                    )
            if len(self.bad) >= len(self.paths):
                break
            index = int(torch.randint(0, len(self.paths), (1,)))
        raise UserError(
            f"no readable pretraining image: {len(self.bad)} of {len(self.paths)} files are unusable"
        )


def pad_to_min(img: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a uint8 `(3, H, W)` image at the bottom/right so that both sides are at least `size` (unchanged if
    already large enough). This is the official ARNIQA/Re-IQA behaviour for a half-scale image smaller than the
    crop (torchvision `crop`/`CenterCrop` pad with zeros), and the evaluator's (`eval.features.crop_views`)."""
    h, w = img.shape[-2:]
    if h >= size and w >= size:
        return img
    return F.pad(img, (0, max(0, size - w), 0, max(0, size - h)))


def half_scale_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    """A random `size × size` crop of the ×2-downscaled image (antialiased bicubic, sides `H//2 × W//2`), zero-padded
    at the bottom/right where the half-scale image is smaller than `size` (e.g. 512×384 -> 256×192: 32 zero rows
    in a 224 crop)."""
    return random_crop(pad_to_min(half_scale(img), size), size)


class ArniqaPairs(PretrainImages):
    """ARNIQA sample: image A and a random image B, each as a full-scale and a half-scale random crop.

    Returns {"a": uint8 (2, 3, c, c) [full crop, half-scale crop], "b": same for B, "index": int64 (2,)}.
    The full-scale crop is taken at native resolution (images are upscaled only if a side is below c); the
    half-scale crop is cut from the ×2-downscaled image and zero-padded at the bottom/right when that image is
    smaller than c, as the official loader and the evaluator do (see docs/methods.md).
    """

    def views(self, img: torch.Tensor) -> torch.Tensor:
        c = self.crop_size
        return torch.stack([random_crop(img, c), half_scale_crop(img, c)])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ia, a = self.load(index)
        ib, b = self.load(int(torch.randint(0, len(self.paths), (1,))))
        return {"a": self.views(a), "b": self.views(b), "index": torch.tensor([ia, ib])}


class LadderCrops(PretrainImages):
    """RankIQA/MLF sample: one random crop of one image; the method builds its distortion ladder on the device.

    Returns {"image": uint8 (3, c, c), "index": int64 ()}.
    """

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, img = self.load(index)
        return {"image": random_crop(img, self.crop_size), "index": torch.tensor(i)}


def reiqa_region_size(patch: int) -> int:
    """Side of the square region that holds two Re-IQA patches of side `patch` whose top-left corners are offset
    by (y, x) with y < 0.9·patch and x < 0.9·patch (the overlap geometry of the Re-IQA paper and code)."""
    return patch + math.ceil(0.9 * patch)


class ReiqaOverlap(PretrainImages):
    """Re-IQA sample: a random square region of the image and an independent one of its ×2-downscaled version, each
    of side `reiqa_region_size(c)`; the method distorts each region once and cuts the two overlapping c×c patches
    (10–30 % overlap) out of it on the device, so both patches show the same distorted pixels where they overlap.

    Returns {"full": uint8 (3, R, R), "half": uint8 (3, R, R), "index": int64 ()}. The full-scale region is taken at
    native resolution (images are upscaled only if a side is below R); the half-scale region is zero-padded at the
    bottom/right where the ×2-downscaled image is smaller than R, as the official loader pads (see docs/methods.md).
    """

    def min_side(self) -> int:
        return reiqa_region_size(self.crop_size)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, img = self.load(index)
        r = reiqa_region_size(self.crop_size)
        return {
            "full": random_crop(img, r),
            "half": half_scale_crop(img, r),
            "index": torch.tensor(i),
        }


SAMPLE_FORMATS: dict[str, type[PretrainImages]] = {
    "arniqa_pairs": ArniqaPairs,
    "ladder": LadderCrops,
    "reiqa_overlap": ReiqaOverlap,
}
