"""Frozen-feature extraction for the evaluator: images -> features at several scales, concatenated.

An *encoder* is anything with `features(images) -> (B, D)` taking float images in [0, 1] (every method's
`PretrainMethod.features`). Several encoders are run in the same pass over the data, so each image is decoded
(or, for the built-in set, generated) once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset


class Encoder(Protocol):
    def features(self, images: torch.Tensor) -> torch.Tensor: ...


def rescale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Antialiased bicubic rescale of float images `(B, 3, H, W)` by `scale` (1.0 = unchanged), clipped to [0, 1]."""
    if scale == 1.0:
        return x
    h, w = x.shape[-2:]
    size = (max(1, int(h * scale)), max(1, int(w * scale)))
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)


def five_crop_boxes(h: int, w: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of ARNIQA's 5 crops: centre (top = H//2 - size//2), then the 4 corners."""
    return [
        (h // 2 - size // 2, w // 2 - size // 2),
        (0, 0),
        (0, w - size),
        (h - size, 0),
        (h - size, w - size),
    ]


def crop_views(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """`(B, 3, H, W)` -> `(B, K, 3, h, w)`: K = 1 (whole image) when `size` is None, else the 5 crops of `size`
    (images smaller than `size` are zero-padded at the bottom/right, as ARNIQA's evaluation does and as pretraining
    pads a half-scale view smaller than its crop: `data.pretrain.pad_to_min`, so both paths see the same geometry,
    e.g. 32 zero rows in every half-scale crop of a 512×384 image)."""
    if size is None:
        return x[:, None]
    h, w = x.shape[-2:]
    if h < size or w < size:
        x = F.pad(x, (0, max(0, size - w), 0, max(0, size - h)))
        h, w = x.shape[-2:]
    return torch.stack([x[..., t : t + size, c : c + size] for t, c in five_crop_boxes(h, w, size)], dim=1)


def _progress(loader: DataLoader, progress: bool | str) -> Any:
    """`loader` with progress when `progress` is truthy: a tqdm bar in a terminal, plain lines in a log file
    (`utils.progress.progress`)."""
    if not progress:
        return loader
    from iqa_bench.utils.progress import progress as with_progress

    return with_progress(loader, progress if isinstance(progress, str) else "features")


def _collate_list(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


@torch.no_grad()
def extract_features(
    encoders: Mapping[str, Encoder],
    dataset: Dataset,
    scales: Sequence[float] = (1.0, 0.5),
    crop_size: int | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool | str = False,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run every encoder over `dataset` (items: uint8 `(3, H, W)`, sizes may differ).

    For each scale the image is rescaled, then cut into views (`crop_views`); view k's features at all scales are
    concatenated. Returns ({encoder name: float32 `(N*K, D*len(scales))`}, item ids int64 `(N*K,)`), where K = 1
    without crops and 5 with `crop_size`. Rows of one item are consecutive. Images are loaded one batch at a
    time (only the features are kept). `progress`: show a tqdm bar (a string is its description).
    """
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate_list)
    out: dict[str, list[np.ndarray]] = {name: [] for name in encoders}
    ids: list[np.ndarray] = []
    start = 0
    for items in _progress(loader, progress):
        # group same-size images so each group is one batched forward; keep the original order in the output
        order = sorted(range(len(items)), key=lambda i: tuple(items[i].shape))
        per_item: dict[str, list[torch.Tensor | None]] = {name: [None] * len(items) for name in encoders}
        i = 0
        while i < len(order):
            j = i
            while j < len(order) and items[order[j]].shape == items[order[i]].shape:
                j += 1
            idx = order[i:j]
            x = torch.stack([items[k] for k in idx]).to(device).float().div_(255.0)
            for name, enc in encoders.items():
                feats = []
                for s in scales:
                    views = crop_views(rescale(x, s), crop_size)  # (b, K, 3, h, w)
                    b, k = views.shape[:2]
                    f = enc.features(views.flatten(0, 1)).float()
                    feats.append(f.view(b, k, -1))
                stacked = torch.cat(feats, dim=2).cpu()  # (b, K, D*S)
                for pos, item in enumerate(idx):
                    per_item[name][item] = stacked[pos]
            i = j
        for name in encoders:
            out[name].append(torch.cat(per_item[name], dim=0).numpy())  # type: ignore[arg-type]
        k = per_item[next(iter(encoders))][0].shape[0]  # type: ignore[union-attr]
        ids.append(np.repeat(np.arange(start, start + len(items)), k))
        start += len(items)
    return {name: np.concatenate(v, 0) for name, v in out.items()}, np.concatenate(ids)
