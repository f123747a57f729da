"""The ridge-probe evaluator used by every method: extract frozen features, then run the 10-split protocol."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.errors import ConfigError
from iqa_bench.eval.features import Encoder, extract_features
from iqa_bench.eval.protocol import ProbeResult, ridge_probe

log = logging.getLogger(__name__)

METRIC_KEYS = ("srcc", "plcc", "plcc_logistic", "krcc")


@dataclass
class RidgeEvaluator:
    """Frozen features (at `scales`, concatenated) -> ridge probe with alpha chosen on validation.

    Args:
        scales: image scales whose features are concatenated (ARNIQA: full and half).
        crop_size: None = whole image; an int = ARNIQA's 5 crops (centre + corners), predictions averaged per image.
        n_splits, ratios, seed: seeded train/val/test splits (reference-disjoint where the set has references).
        alpha_min, alpha_max, num_alphas: the log-spaced alpha grid.
        batch_size, num_workers: feature-extraction loader.
        baseline_random_init: also evaluate the encoder at its random initialisation.
    """

    scales: Sequence[float] = (1.0, 0.5)
    crop_size: int | None = None
    n_splits: int = 10
    ratios: Sequence[float] = (0.7, 0.1, 0.2)
    seed: int = 0
    alpha_min: float = 1e-3
    alpha_max: float = 1e3
    num_alphas: int = 100
    batch_size: int = 32
    num_workers: int = 0
    baseline_random_init: bool = True
    results: dict[tuple[str, str], ProbeResult] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        checks = [
            (
                "evaluator.scales",
                len(self.scales) > 0 and all(s > 0 for s in self.scales),
                "positive numbers",
            ),
            ("evaluator.crop_size", self.crop_size is None or self.crop_size >= 16, "null or >= 16"),
            ("evaluator.n_splits", self.n_splits >= 1, ">= 1"),
            (
                "evaluator.ratios",
                len(self.ratios) == 3
                and all(r > 0 for r in self.ratios)
                and abs(sum(self.ratios) - 1) < 1e-6,
                "three positive fractions summing to 1",
            ),
            ("evaluator.alpha_min", 0 < self.alpha_min <= self.alpha_max, "0 < alpha_min <= alpha_max"),
            ("evaluator.num_alphas", self.num_alphas >= 1, ">= 1"),
            ("evaluator.batch_size", self.batch_size >= 1, ">= 1"),
            ("evaluator.num_workers", self.num_workers >= 0, ">= 0"),
        ]
        for key, ok, want in checks:
            if not ok:
                raise ConfigError(f"{key} must be {want}, got {getattr(self, key.split('.')[1])!r}")

    @property
    def alphas(self) -> np.ndarray:
        return np.geomspace(self.alpha_min, self.alpha_max, self.num_alphas)

    def run(
        self,
        encoders: Mapping[str, Encoder],
        eval_sets: Mapping[str, EvalSet],
        device: str | torch.device = "cpu",
    ) -> list[dict[str, Any]]:
        """Evaluate every encoder on every set. Returns result rows: one per (encoder, dataset, split) plus a
        'median' row per (encoder, dataset) with the medians (and `*_iqr`) over splits."""
        rows: list[dict[str, Any]] = []
        for ds_name, ds in eval_sets.items():
            log.info("extracting features of %d images of %s for %s", len(ds), ds_name, list(encoders))
            feats, item_ids = extract_features(
                encoders, ds, self.scales, self.crop_size, self.batch_size, self.num_workers, device
            )
            scores = ds.scores[item_ids]
            groups = ds.refs[item_ids] if ds.refs is not None else None
            ids = item_ids if self.crop_size is not None else None
            for enc_name, x in feats.items():
                res = ridge_probe(
                    x,
                    scores,
                    groups,
                    n_splits=self.n_splits,
                    ratios=tuple(self.ratios),
                    alphas=self.alphas,
                    seed=self.seed,
                    item_ids=ids,
                )
                self.results[(enc_name, ds_name)] = res
                for split_row in res.per_split:
                    rows.append({"encoder": enc_name, "dataset": ds_name, **split_row})
                rows.append({"encoder": enc_name, "dataset": ds_name, "split": "median", **res.summary})
        return rows
