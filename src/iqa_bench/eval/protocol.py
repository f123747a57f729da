"""The ridge-probe protocol (ARNIQA's) on already-extracted features.

For every split: standardise the features on the train part (or keep them raw, as ARNIQA's official code), fit ridge
for the whole alpha grid, score SRCC on the val part. The alpha with the best MEDIAN val SRCC over splits is then used on every split's test part; the summary
is the median (and IQR) over splits. Several rows may belong to one item (e.g. 5 crops of one image): splits are
made over items, and an item's prediction is the mean over its rows. See docs/evaluator.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iqa_bench.eval.alpha_grid import fit_and_select
from iqa_bench.eval.cross import CrossResult, cross_dataset, cross_dataset_fit
from iqa_bench.eval.metrics import all_metrics
from iqa_bench.eval.probe_data import check_data, check_splits, items_of
from iqa_bench.eval.ridge import DEFAULT_ALPHAS, RidgeModel, check_alphas, fit_ridge
from iqa_bench.eval.splits import make_splits

__all__ = [
    "DEFAULT_ALPHAS",
    "CrossResult",
    "ProbeResult",
    "cross_dataset",
    "cross_dataset_fit",
    "fit_final_regressor",
    "ridge_probe",
    "summarise_splits",
]

log = logging.getLogger(__name__)

METRICS = ("srcc", "plcc", "plcc_logistic", "krcc")


@dataclass
class ProbeResult:
    """Outcome of `ridge_probe`.

    Attributes:
        per_split: one dict per split: split (int), srcc, plcc, plcc_logistic, krcc (test, at the chosen alpha),
            alpha, val_srcc (this split's val SRCC at the chosen alpha), n_train, n_val, n_test (items).
        summary: median over splits of srcc, plcc, plcc_logistic, krcc, with their IQR (q75 - q25, linear
            interpolation) as `<metric>_iqr`; alpha; val_srcc (median val SRCC at the chosen alpha); n_train,
            n_val, n_test (medians); n_splits. Splits whose metric is nan are left out of its median.
        alpha: the chosen alpha.
        test_predictions: per split (test item indices, predictions, targets); indices index `items`.
        val_srcc: (A,) median over splits of the val SRCC of each alpha (the selection curve).
        val_srcc_per_split: (S, A) val SRCC of every split and alpha.
        alphas: (A,) the grid actually searched (widened beyond the given one when `grid_edge='widen'` needed it).
        items: (n_items,) the item ids (sorted unique `item_ids`, or arange(N) without them).
        solvers: per split, 'exact' or 'lanczos' (see `ridge_splits.fit_split_paths`).
    """

    per_split: list[dict[str, Any]]
    summary: dict[str, Any]
    alpha: float
    test_predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(repr=False)
    val_srcc: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    val_srcc_per_split: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    alphas: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    items: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    solvers: list[str] = field(default_factory=list, repr=False)


def _robust_median(values: Sequence[float], name: str) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return float("nan"), float("nan")
    if not ok.all():
        log.warning("%s is nan on split(s) %s; left out of the median", name, np.flatnonzero(~ok).tolist())
    q25, q50, q75 = np.percentile(v[ok], [25, 50, 75])
    return float(q50), float(q75 - q25)


# ---------------------------------------------------------------------------------------------- protocol
def summarise_splits(per_split: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Median and IQR over splits of every metric in METRICS (nan splits left out), medians of the part sizes
    and `n_splits`; the summary row of any split protocol (ridge probe, finetuning)."""
    summary: dict[str, Any] = {}
    for k in METRICS:
        summary[k], summary[f"{k}_iqr"] = _robust_median([r[k] for r in per_split], k)
    for k in ("n_train", "n_val", "n_test"):
        if all(k in r for r in per_split):
            summary[k] = int(np.median([r[k] for r in per_split]))
    summary["n_splits"] = len(per_split)
    return summary


def ridge_probe(
    features: Any,
    scores: Any,
    groups: Any | None = None,
    n_splits: int = 10,
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    alphas: Any = DEFAULT_ALPHAS,
    seed: int = 0,
    item_ids: Any | None = None,
    *,
    splits: Sequence[Mapping[str, Any]] | None = None,
    solver: str = "auto",
    standardize: bool = True,
    grid_edge: str = "warn",
    max_widen: int = 3,
    context: str = "",
) -> ProbeResult:
    """The split protocol on frozen features.

    Args:
        features: (N, D) one row per image or per crop (float32 stays float32 inside the fast solver).
        scores: (N,) quality scores, higher = better (the row's image score).
        groups: (N,) reference/content id per row (constant within an item) for reference-disjoint splits, or
            None for random splits by item.
        n_splits, ratios, seed: see `splits.make_splits` (split i uses `default_rng([seed, i])`).
        alphas: ridge penalties (> 0), default `np.geomspace(1e-3, 1e3, 100)` as ARNIQA.
        item_ids: (N,) item id per row (e.g. 5 crops of an image share one id), or None (one row per item).
        splits: predefined splits instead of `make_splits` (e.g. an official split such as FLIVE's): dicts with
            'train', 'val', 'test' item-index arrays (into `ProbeResult.items`); n_splits/ratios/seed are then
            ignored.
        solver: 'auto' | 'exact' | 'lanczos' (see `ridge_splits.fit_split_paths`).
        standardize: standardise features on each split's train rows (True) or fit on the raw features (False:
            scikit-learn `Ridge(alpha)` as ARNIQA's official evaluation does).
        grid_edge, max_widen: what to do when the best val SRCC lies only on the grid's edge ('widen' | 'error' |
            'warn', see `alpha_grid`); `context` prefixes its messages (e.g. 'biq2021/pretrained: ').

    Returns:
        `ProbeResult`; SRCC/PLCC/PLCC-logistic/KRCC are computed on items (mean prediction over an item's rows).

    Raises:
        ValueError: shapes disagree, NaN/inf in features/scores (names the first bad row), scores or groups not
            constant within an item, or too few items/groups to split.
    """
    X, y = check_data(features, scores)
    alphas = check_alphas(alphas)
    items = items_of(y, groups, item_ids)
    if splits is None:
        splits = make_splits(items.n, items.groups, n_splits, ratios, seed)
    else:
        splits = check_splits(splits, items.n)
    for i, sp in enumerate(splits):
        if sp["val"].size < 2 or sp["test"].size < 2:
            raise ValueError(
                f"split {i} has {sp['val'].size} val and {sp['test'].size} test item(s); the protocol "
                "needs >= 2 of each (more items or larger val/test ratios)"
            )
    paths, val_srcc, best, med, alphas = fit_and_select(
        X,
        y,
        items,
        splits,
        alphas,
        solver=solver,
        standardize=standardize,
        grid_edge=grid_edge,
        max_widen=max_widen,
        context=context,
    )
    alpha = float(alphas[best])

    per_split: list[dict[str, Any]] = []
    test_predictions = []
    for s, sp in enumerate(splits):
        rows = items.rows(sp["test"])
        pred = items.mean_over_items(paths.predict(s, rows, alpha_index=best), rows, sp["test"])
        target = items.scores[sp["test"]]
        per_split.append(
            {
                "split": s,
                **all_metrics(pred, target),
                "alpha": alpha,
                "val_srcc": float(val_srcc[s, best]),
                "n_train": int(sp["train"].size),
                "n_val": int(sp["val"].size),
                "n_test": int(sp["test"].size),
            }
        )
        test_predictions.append((sp["test"], pred, target))

    summary = summarise_splits(per_split)
    summary["alpha"] = alpha
    summary["val_srcc"] = float(med[best])
    return ProbeResult(
        per_split, summary, alpha, test_predictions, med, val_srcc, alphas, items.ids, list(paths.solvers)
    )


def fit_final_regressor(features: Any, scores: Any, alpha: float, *, standardize: bool = True) -> RidgeModel:
    """Refit on every row with the chosen alpha (the deployed regressor, as ARNIQA's released ones), float64,
    standardised or on raw features as in the protocol. Rows of one item all enter the fit, as in the protocol."""
    X, y = check_data(features, scores)
    return fit_ridge(X, y, alpha, standardize=standardize)
