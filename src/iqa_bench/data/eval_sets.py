"""Evaluation sets: scored images for the shared evaluator.

An `EvalSet` is a map-style dataset of uint8 images `(3, H, W)` with, per item, a quality score (higher = better),
an optional reference/content id (synthetic datasets: splits must be reference-disjoint) and a label (path or name).
Real IQA datasets (registry) and the built-in synthetic set below share this interface.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from iqa_bench.data.builtin import BUILTIN_VERSION, config_hash, kodak_paths
from iqa_bench.data.fr_metrics import SCORER, ms_ssim
from iqa_bench.data.images import decode_image, resize_uint8
from iqa_bench.errors import ConfigError
from iqa_bench.utils.atomic import atomic_open

log = logging.getLogger(__name__)


@dataclass
class EvalSet(Dataset):
    """Base of every evaluation set.

    Attributes:
        name: dataset name used in results tables.
        scores: float64 `(N,)`, higher = better quality.
        refs: int64 `(N,)` reference/content ids (splits are made disjoint over them) or None (split by image).
        labels: `N` strings naming each item (file path or synthetic id) for error messages and predictions.
        parts: object `(N,)` array of the dataset's official split part per item ('train', 'val', 'test' or None
            for an item outside it), or None when the dataset defines no official split.
    """

    name: str
    scores: np.ndarray
    refs: np.ndarray | None
    labels: list[str]
    parts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class BuiltinSyntheticEval(EvalSet):
    """Kodak-24 (vendored) × distortion types × levels, scored by MS-SSIM against the pristine image.

    Items are generated on the fly, deterministically: item `i` is reference `i // (T*L)` under distortion type
    `(i // L) % T` at level `levels[i % L]`, drawn with a CPU `torch.Generator` seeded by `(seed, i)`. Only the
    score table is cached on disk (`cache_dir/eval-<hash>/scores.csv`), so the set costs no storage. Portrait photos
    are transposed to landscape and resized to `long_side` (default 288), so every item is `(3, 192, 288)`.

    The pseudo-MOS is synthetic: torchmetrics' MS-SSIM on luma (`fr_metrics.ms_ssim`; its `SCORER` is part of the
    cache key) of the uint8-quantised distorted image
    against its reference, in [0, 1], higher = better.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        distortions: Sequence[str],
        levels: Sequence[int] = (1, 2, 3, 4, 5),
        seed: int = 0,
        name: str = "builtin_synthetic",
        long_side: int = 288,
    ) -> None:
        from iqa_bench import distortions as bank

        unknown = [d for d in distortions if d not in bank.names()]
        if unknown:
            raise ConfigError(
                f"data.eval.{name}.distortions: unknown distortion(s) {unknown}; known: {bank.names()}"
            )
        if not distortions:
            raise ConfigError(f"data.eval.{name}.distortions: must name at least one distortion")
        bad = [lv for lv in levels if not 1 <= int(lv) <= 5]
        if bad or not levels:
            raise ConfigError(f"data.eval.{name}.levels: levels must be in 1..5, got {list(levels)}")
        self.distortions = list(distortions)
        self.levels = [int(lv) for lv in levels]
        self.seed = int(seed)
        if not 176 <= int(long_side) <= 384:
            raise ConfigError(
                f"data.eval.{name}.long_side must be in 176..384 (MS-SSIM needs >= 161 px), got {long_side}"
            )
        self.long_side = int(long_side)
        self._refs_cache: list[torch.Tensor] | None = None
        n_refs = len(kodak_paths())
        per_ref = len(self.distortions) * len(self.levels)
        refs = np.repeat(np.arange(n_refs), per_ref)
        labels = [
            f"kodim{r + 1:02d}_{d}_L{lv}"
            for r in range(n_refs)
            for d in self.distortions
            for lv in self.levels
        ]
        key = config_hash([BUILTIN_VERSION, SCORER, self.distortions, self.levels, self.seed, self.long_side])
        self.cache_file = Path(cache_dir) / f"eval-{key}" / "scores.csv"
        self.labels = labels  # needed by __getitem__ while scoring
        scores = self._load_or_compute_scores(labels)
        super().__init__(name=name, scores=scores, refs=refs, labels=labels)

    # -- items -----------------------------------------------------------------------------------------------
    def _references(self) -> list[torch.Tensor]:
        if self._refs_cache is None:
            refs = []
            for p in kodak_paths():
                img = decode_image(p)
                img = img.transpose(1, 2).contiguous() if img.shape[1] > img.shape[2] else img
                h, w = img.shape[1:]
                if w != self.long_side:
                    img = resize_uint8(img, round(h * self.long_side / w), self.long_side)
                refs.append(img)
            self._refs_cache = refs
        return self._refs_cache

    def item_spec(self, index: int) -> tuple[int, str, int]:
        """(reference index, distortion name, level) of item `index`."""
        n_lv = len(self.levels)
        per_ref = len(self.distortions) * n_lv
        return index // per_ref, self.distortions[(index % per_ref) // n_lv], self.levels[index % n_lv]

    def __getitem__(self, index: int) -> torch.Tensor:
        from iqa_bench import distortions as bank

        if not 0 <= index < len(self.labels):
            raise IndexError(index)
        ref, name, level = self.item_spec(index)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        x = self._references()[ref][None].float() / 255.0
        y = bank.apply(name, x, level, generator=gen)[0]
        return (y.clamp(0, 1) * 255.0).round().to(torch.uint8)

    # -- scores ----------------------------------------------------------------------------------------------
    def _load_or_compute_scores(self, labels: list[str]) -> np.ndarray:
        if self.cache_file.is_file():
            with self.cache_file.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            if [r["label"] for r in rows] == labels:
                return np.array([float(r["mos"]) for r in rows], dtype=np.float64)
            log.warning("stale score cache %s: recomputing", self.cache_file)
        scores = self._compute_scores(len(labels))
        with atomic_open(self.cache_file, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["label", "ref", "distortion", "level", "mos"])
            for i, label in enumerate(labels):
                ref, name, level = self.item_spec(i)
                writer.writerow([label, ref, name, level, repr(float(scores[i]))])
        return scores

    def _compute_scores(self, n: int) -> np.ndarray:
        log.info("scoring %d built-in evaluation images with MS-SSIM (cached afterwards)", n)
        scores = np.empty(n, dtype=np.float64)
        per_ref = len(self.distortions) * len(self.levels)
        refs = self._references()
        for r0 in range(0, n, per_ref):
            ref = refs[r0 // per_ref][None].float() / 255.0
            batch = torch.stack([self[i] for i in range(r0, r0 + per_ref)]).float() / 255.0
            s = ms_ssim(batch, ref.expand_as(batch))
            scores[r0 : r0 + per_ref] = s.double().numpy()
        return scores
