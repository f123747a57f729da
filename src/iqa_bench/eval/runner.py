"""The ridge-probe evaluator used by every method: extract frozen features, then run the 10-split protocol (or the
cross-dataset protocol: fit on all of one set, test on others)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.errors import ConfigError, UserError
from iqa_bench.eval.alpha_grid import GRID_EDGE_POLICIES
from iqa_bench.eval.cache import FeatureCache, extract_cached
from iqa_bench.eval.features import Encoder
from iqa_bench.eval.official_splits import SPLIT_MODES, split_for
from iqa_bench.eval.preflight import check_protocol_data
from iqa_bench.eval.protocol import ProbeResult, cross_dataset_fit, fit_final_regressor, ridge_probe
from iqa_bench.eval.ridge import RidgeModel

log = logging.getLogger(__name__)

METRIC_KEYS = ("srcc", "plcc", "plcc_logistic", "krcc")


def _labels(ds: Any, items: np.ndarray) -> list[str]:
    labels = getattr(ds, "labels", None)
    if labels is None:
        return [str(int(i)) for i in items]
    return [str(labels[int(i)]) for i in items]


@dataclass
class RidgeEvaluator:
    """Frozen features (at `scales`, concatenated) -> ridge probe with alpha chosen on validation.

    Args:
        scales: image scales whose features are concatenated (ARNIQA: full and half).
        crop_size: None = whole image; an int = ARNIQA's 5 crops (centre + corners), predictions averaged per image.
        n_splits, ratios, seed: seeded train/val/test splits (reference-disjoint where the set has references).
        splits: 'random' (the seeded splits above) or 'official': a set that defines an official split (its
            `parts`) is evaluated on that one split (val carved from train when the split has none, see
            `official_splits`); sets without one keep the random splits. Each result row says which (`splits`).
        alpha_min, alpha_max, num_alphas: the log-spaced alpha grid.
        standardize: standardise features on each split's train rows (True) or use them raw (False: ARNIQA's
            official scikit-learn `Ridge` on the features as given).
        grid_edge, max_widen: when the best val SRCC lies only on the edge of the alpha grid (median or any
            split): 'widen' the grid (3 decades at a time, at most `max_widen` times, then fail), 'error' (fail
            with one line) or 'warn' (keep it, with a warning; the official protocol's fixed grid).
        batch_size, num_workers: feature-extraction loader.
        baseline_random_init: also evaluate the encoder at its random initialisation.
        train_on, test_on: cross-dataset protocol: fit on all of `train_on` (alpha chosen on a held-out
            `val_fraction` of it) and test on every set of `test_on` (default: every other evaluation set).
        val_fraction: the held-out part of `train_on` used to choose alpha.
        fit_regressor: refit the deployed regressor on all of each set with the chosen alpha (`regressors`).
        cache_dir: feature cache folder (used for encoders given a key in `run(encoder_keys=...)`), or None.
        progress: show a progress bar during feature extraction.
    """

    scales: Sequence[float] = (1.0, 0.5)
    crop_size: int | None = None
    n_splits: int = 10
    ratios: Sequence[float] = (0.7, 0.1, 0.2)
    seed: int = 0
    splits: str = "random"
    alpha_min: float = 1e-3
    alpha_max: float = 1e3
    num_alphas: int = 100
    standardize: bool = True
    grid_edge: str = "widen"
    max_widen: int = 3
    batch_size: int = 32
    num_workers: int = 0
    baseline_random_init: bool = True
    train_on: str | None = None
    test_on: Sequence[str] | None = None
    val_fraction: float = 0.1
    fit_regressor: bool = True
    cache_dir: str | None = None
    progress: bool = False
    results: dict[tuple[str, str], ProbeResult] = field(default_factory=dict, repr=False)
    regressors: dict[tuple[str, str], RidgeModel] = field(default_factory=dict, repr=False)
    excluded: dict[str, int] = field(default_factory=dict, repr=False)
    predictions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)

    protocol = "ridge"

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
            ("evaluator.val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
            ("evaluator.splits", self.splits in SPLIT_MODES, f"one of {list(SPLIT_MODES)}"),
            (
                "evaluator.grid_edge",
                self.grid_edge in GRID_EDGE_POLICIES,
                f"one of {list(GRID_EDGE_POLICIES)}",
            ),
            ("evaluator.max_widen", self.max_widen >= 0, ">= 0"),
        ]
        for key, ok, want in checks:
            if not ok:
                raise ConfigError(f"{key} must be {want}, got {getattr(self, key.split('.')[1])!r}")
        if self.test_on is not None and self.train_on is None:
            raise ConfigError("evaluator.test_on needs evaluator.train_on (the set to fit the regressor on)")
        if isinstance(self.test_on, str):
            self.test_on = [self.test_on]

    @property
    def alphas(self) -> np.ndarray:
        return np.geomspace(self.alpha_min, self.alpha_max, self.num_alphas)

    # ------------------------------------------------------------------------------------------------ features
    def _features(
        self,
        encoders: Mapping[str, Encoder],
        ds: EvalSet,
        ds_name: str,
        device: str | torch.device,
        encoder_keys: Mapping[str, Any] | None,
        dataset_keys: Mapping[str, str] | None,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(features per encoder, item id per row) without the rows of images that failed to decode (warned on
        every run, from the cache too; counted in `self.excluded[ds_name]`)."""
        log.info("features of %d images of %s for %s", len(ds), ds_name, list(encoders))
        feats, ids, excluded = extract_cached(
            encoders,
            ds,
            scales=self.scales,
            crop_size=self.crop_size,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            device=device,
            cache=FeatureCache(self.cache_dir) if self.cache_dir else None,
            encoder_keys=encoder_keys,
            dataset_key=(dataset_keys or {}).get(ds_name),
            progress=f"{ds_name}" if self.progress else False,
        )
        self.excluded[ds_name] = int(excluded.size)
        if excluded.size:
            labels = getattr(ds, "labels", None)
            names = [str(labels[i]) if labels is not None else str(i) for i in excluded[:5]]
            log.warning(
                "%s: %d image(s) could not be decoded and are excluded from the evaluation (e.g. %s)",
                ds_name,
                excluded.size,
                ", ".join(names),
            )
            keep = ~np.isin(ids, excluded)
            feats = {k: v[keep] for k, v in feats.items()}
            ids = ids[keep]
            check_protocol_data(ds_name, ds.scores[np.unique(ids)], None, 0, self)
        return feats, ids

    def _probe(
        self,
        ds_name: str,
        enc_name: str,
        x: np.ndarray,
        scores: np.ndarray,
        groups: np.ndarray | None,
        ids: np.ndarray | None,
        fixed: list[dict[str, np.ndarray]] | None,
    ) -> ProbeResult:
        """`ridge_probe` with this evaluator's settings; its input errors become one-line `UserError`s."""
        try:
            return ridge_probe(
                x,
                scores,
                groups,
                n_splits=self.n_splits,
                ratios=tuple(self.ratios),
                alphas=self.alphas,
                seed=self.seed,
                item_ids=ids,
                splits=fixed,
                standardize=self.standardize,
                grid_edge=self.grid_edge,
                max_widen=self.max_widen,
                context=f"{ds_name}/{enc_name}: ",
            )
        except ValueError as exc:
            raise UserError(f"{ds_name}/{enc_name}: {exc}") from None

    # --------------------------------------------------------------------------------------------------- run
    def run(
        self,
        encoders: Mapping[str, Encoder],
        eval_sets: Mapping[str, EvalSet],
        device: str | torch.device = "cpu",
        *,
        encoder_keys: Mapping[str, Any] | None = None,
        dataset_keys: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Evaluate every encoder on every set. Returns result rows: one per (encoder, dataset, split) plus a
        'median' row per (encoder, dataset) with the medians (and `*_iqr`) over splits; in cross-dataset mode one
        row per (encoder, test set) with split 'full' and `train_on` set.

        `encoder_keys` (name -> identity, e.g. the checkpoint's `cache.checkpoint_key`) turns on the feature
        cache (`cache_dir`) for those encoders; `dataset_keys` optionally overrides the dataset fingerprints."""
        for ds_name, ds in eval_sets.items():  # every set, before any feature is extracted
            refs = getattr(ds, "refs", None)
            cross = self.train_on is not None and ds_name != self.train_on
            parts = getattr(ds, "parts", None)
            check_protocol_data(ds_name, ds.scores, refs, -1 if cross else len(ds), self, parts)
        if self.train_on is not None:
            return self._run_cross(encoders, eval_sets, device, encoder_keys, dataset_keys)
        rows: list[dict[str, Any]] = []
        for ds_name, ds in eval_sets.items():
            feats, item_ids = self._features(encoders, ds, ds_name, device, encoder_keys, dataset_keys)
            scores = ds.scores[item_ids]
            groups = ds.refs[item_ids] if ds.refs is not None else None
            ids = item_ids if self.crop_size is not None else None
            split_kind, fixed = split_for(ds, item_ids, ids is not None, self.splits, self.ratios, self.seed)
            for enc_name, x in feats.items():
                res = self._probe(ds_name, enc_name, x, scores, groups, ids, fixed)
                self.results[(enc_name, ds_name)] = res
                if self.fit_regressor:
                    self.regressors[(enc_name, ds_name)] = fit_final_regressor(
                        x, scores, res.alpha, standardize=self.standardize
                    )
                # probe items -> dataset indices (per-crop: the unique item ids; else one row per image)
                ds_index = res.items if ids is not None else item_ids
                split_col, item_col, pred_col, mos_col = [], [], [], []
                for s, (items, pred, target) in enumerate(res.test_predictions):
                    split_col += [s] * len(items)
                    item_col += ds_index[items].tolist()
                    pred_col += np.asarray(pred).tolist()
                    mos_col += np.asarray(target).tolist()
                self.predictions[(enc_name, ds_name)] = {
                    "split": split_col,
                    "item": item_col,
                    "label": _labels(ds, np.asarray(item_col, dtype=np.int64)),
                    "pred": pred_col,
                    "mos": mos_col,
                }
                base = {
                    "encoder": enc_name,
                    "dataset": ds_name,
                    "protocol": self.protocol,
                    "train_on": "",
                    "splits": split_kind,
                    "n_excluded": self.excluded.get(ds_name, 0),
                }
                for split_row in res.per_split:
                    rows.append({**base, **split_row})
                rows.append({**base, "split": "median", **res.summary})
        return rows

    def _run_cross(
        self,
        encoders: Mapping[str, Encoder],
        eval_sets: Mapping[str, EvalSet],
        device: str | torch.device,
        encoder_keys: Mapping[str, Any] | None,
        dataset_keys: Mapping[str, str] | None,
    ) -> list[dict[str, Any]]:
        train_on = str(self.train_on)
        test_on = list(self.test_on) if self.test_on else [n for n in eval_sets if n != train_on]
        missing = [n for n in [train_on, *test_on] if n not in eval_sets]
        if missing:
            raise ConfigError(
                f"evaluator.train_on/test_on: {missing} not among the evaluation sets {list(eval_sets)} "
                "(add them to data/eval=[...])"
            )
        if not test_on:
            raise ConfigError("evaluator.test_on: no set to test on (give evaluator.test_on=[...])")
        ids_of = {}
        feats_of = {}
        for name in [train_on, *test_on]:
            feats_of[name], ids_of[name] = self._features(
                encoders, eval_sets[name], name, device, encoder_keys, dataset_keys
            )
        use_items = self.crop_size is not None
        tr = eval_sets[train_on]
        tr_ids = ids_of[train_on]
        rows: list[dict[str, Any]] = []
        for enc_name in encoders:
            test_sets = {
                n: (
                    feats_of[n][enc_name],
                    eval_sets[n].scores[ids_of[n]],
                    *((ids_of[n],) if use_items else ()),
                )
                for n in test_on
            }
            res = cross_dataset_fit(
                feats_of[train_on][enc_name],
                tr.scores[tr_ids],
                test_sets,
                self.alphas,
                self.val_fraction,
                self.seed,
                train_groups=tr.refs[tr_ids] if tr.refs is not None else None,
                train_item_ids=tr_ids if use_items else None,
                standardize=self.standardize,
                grid_edge=self.grid_edge,
                max_widen=self.max_widen,
                context=f"{train_on}/{enc_name}: ",
            )
            if self.fit_regressor:
                self.regressors[(enc_name, train_on)] = res.model
            for n in test_on:
                items, pred = res.predictions[n]
                if not use_items:  # one row per image: row -> dataset index (undecodable images are left out)
                    items = ids_of[n][np.asarray(items, dtype=np.int64)]
                self.predictions[(enc_name, n)] = {
                    "split": ["full"] * len(items),
                    "item": np.asarray(items).tolist(),
                    "label": _labels(eval_sets[n], np.asarray(items, dtype=np.int64)),
                    "pred": np.asarray(pred).tolist(),
                    "mos": eval_sets[n].scores[np.asarray(items, dtype=np.int64)].tolist(),
                }
                m = res.metrics[n]
                rows.append(
                    {
                        "encoder": enc_name,
                        "dataset": n,
                        "protocol": "ridge_cross",
                        "train_on": train_on,
                        "split": "full",
                        **m,
                        "n_train": int(np.unique(tr_ids).size),
                        "n_excluded": self.excluded.get(n, 0),
                    }
                )
        return rows
