"""The ridge-probe protocol (ARNIQA's, `shared/specs/arniqa.md` §3) on already-extracted features.

For every split: standardise the features on the train part, fit ridge for the whole alpha grid, score SRCC on the
val part. The alpha with the best MEDIAN val SRCC over splits is then used on every split's test part; the summary
is the median (and IQR) over splits. Several rows may belong to one item (e.g. 5 crops of one image): splits are
made over items, and an item's prediction is the mean over its rows. See docs/evaluator.md.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iqa_bench.eval.metrics import all_metrics, srcc_rows
from iqa_bench.eval.ridge import (
    DEFAULT_ALPHAS,
    RidgeModel,
    SplitRidgePaths,
    as_features,
    check_alphas,
    fit_ridge,
    fit_split_paths,
)
from iqa_bench.eval.splits import PARTS, make_splits

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
        alphas: (A,) the grid.
        items: (n_items,) the item ids (sorted unique `item_ids`, or arange(N) without them).
        solvers: per split, 'exact' or 'lanczos' (see `ridge.fit_split_paths`).
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


# ------------------------------------------------------------------------------------------ input checking
def _first_bad_row(a: np.ndarray) -> int | None:
    ok = np.isfinite(a) if a.ndim == 1 else np.isfinite(a).all(axis=1)
    return None if ok.all() else int(np.flatnonzero(~ok)[0])


def _check_data(features: Any, scores: Any, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """-> (X (N, D) float32/64, y (N,) float64); ValueError naming `features`/`scores` and the first bad row."""
    X = as_features(features, f"{prefix}features")
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    y = np.asarray(scores, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"{prefix}scores must have shape ({X.shape[0]},) to match {prefix}features {X.shape}, "
            f"got {y.shape}"
        )
    bad = _first_bad_row(X)
    if bad is not None:
        raise ValueError(f"{prefix}features contain NaN/inf (first bad row {bad})")
    bad = _first_bad_row(y)
    if bad is not None:
        raise ValueError(f"{prefix}scores contain NaN/inf (first bad row {bad})")
    return X, y


@dataclass
class _Items:
    """Row <-> item bookkeeping: item_of_row (N,) dense item index; ids (n_items,); scores (n_items,)."""

    item_of_row: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    groups: np.ndarray | None
    single_row: bool

    @property
    def n(self) -> int:
        return int(self.ids.size)

    def rows(self, items: np.ndarray) -> np.ndarray:
        """Sorted row indices of the given (sorted) item indices."""
        if self.single_row:
            return items
        return np.flatnonzero(np.isin(self.item_of_row, items))

    def mean_over_items(self, pred_rows: np.ndarray, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(..., len(rows)) row predictions -> (..., len(items)) mean per item, items in `items` order."""
        if self.single_row:
            return pred_rows
        pos = np.searchsorted(items, self.item_of_row[rows])
        order = np.argsort(pos, kind="stable")
        counts = np.bincount(pos, minlength=items.size)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return np.add.reduceat(pred_rows[..., order], starts, axis=-1) / counts


def _items(y: np.ndarray, groups: Any, item_ids: Any) -> _Items:
    n = y.size
    g = None
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise ValueError(f"groups must have shape ({n},) (one reference id per row), got {g.shape}")
        if g.dtype.kind == "f" and np.isnan(g).any():
            raise ValueError(f"groups contain NaN (first bad row {int(np.flatnonzero(np.isnan(g))[0])})")
    if item_ids is None:
        return _Items(np.arange(n), np.arange(n), y, g, True)
    ids = np.asarray(item_ids)
    if ids.shape != (n,):
        raise ValueError(f"item_ids must have shape ({n},) (one item id per row), got {ids.shape}")
    uniq, first, inv = np.unique(ids, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    bad = np.flatnonzero(y != y[first][inv])
    if bad.size:
        raise ValueError(
            f"scores must be equal on all rows of an item; row {int(bad[0])} differs (item "
            f"{uniq[inv[bad[0]]]!r})"
        )
    g_item = None
    if g is not None:
        bad = np.flatnonzero(g != g[first][inv])
        if bad.size:
            raise ValueError(
                f"groups must be equal on all rows of an item; row {int(bad[0])} differs (item "
                f"{uniq[inv[bad[0]]]!r})"
            )
        g_item = g[first]
    return _Items(inv, uniq, y[first], g_item, bool(np.array_equal(inv, np.arange(n))))


def _check_splits(splits: Sequence[Mapping[str, Any]], n_items: int) -> list[dict[str, np.ndarray]]:
    """Predefined splits -> sorted int64 index arrays; ValueError for a missing part, an index out of range
    (e.g. ARNIQA's -1 padding) or overlapping parts."""
    out = []
    if len(splits) == 0:
        raise ValueError("splits must contain at least one split")
    for i, sp in enumerate(splits):
        parts = {}
        for k in PARTS:
            if k not in sp:
                raise ValueError(f"splits[{i}] lacks the {k!r} part")
            idx = np.asarray(sp[k])
            if idx.size and (idx.dtype.kind not in "iu" or idx.ndim != 1):
                raise ValueError(f"splits[{i}][{k!r}] must be a 1-D integer index array")
            idx = np.sort(idx.astype(np.int64))
            if idx.size and (idx[0] < 0 or idx[-1] >= n_items):
                raise ValueError(
                    f"splits[{i}][{k!r}] has indices outside [0, {n_items}) (padding such as -1 must "
                    "be removed)"
                )
            if np.any(np.diff(idx) == 0):
                raise ValueError(f"splits[{i}][{k!r}] repeats an index")
            parts[k] = idx
        allidx = np.concatenate(list(parts.values()))
        if np.unique(allidx).size != allidx.size:
            raise ValueError(f"splits[{i}]: train, val and test overlap")
        out.append(parts)
    return out


def _select_alpha(val_srcc: np.ndarray, alphas: np.ndarray) -> tuple[int, np.ndarray]:
    """Index of the alpha with the best median val SRCC over splits (first one on ties, like ARNIQA's strict
    `>`), and the (A,) medians. nan splits are ignored; if no alpha has a finite value the largest alpha is
    taken with a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns
        med = np.nanmedian(val_srcc, axis=0)
    if not np.isfinite(med).any():
        warnings.warn(
            "val SRCC is undefined for every alpha (constant val scores or predictions); "
            "using the largest alpha",
            RuntimeWarning,
            stacklevel=3,
        )
        return int(np.argmax(alphas)), med
    best = int(np.argmax(np.where(np.isfinite(med), med, -np.inf)))
    if alphas.size > 2 and best in (int(np.argmin(alphas)), int(np.argmax(alphas))):
        log.warning(
            "chosen alpha %.3g is at the edge of the grid [%.3g, %.3g]",
            alphas[best],
            alphas.min(),
            alphas.max(),
        )
    return best, med


def _robust_median(values: Sequence[float], name: str) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return float("nan"), float("nan")
    if not ok.all():
        log.warning("%s is nan on split(s) %s; left out of the median", name, np.flatnonzero(~ok).tolist())
    q25, q50, q75 = np.percentile(v[ok], [25, 50, 75])
    return float(q50), float(q75 - q25)


def _val_srcc(paths: SplitRidgePaths, s: int, items: _Items, val_items: np.ndarray) -> np.ndarray:
    rows = items.rows(val_items)
    pred = items.mean_over_items(paths.predict(s, rows), rows, val_items)
    return srcc_rows(pred, items.scores[val_items])


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
        solver: 'auto' | 'exact' | 'lanczos' (see `ridge.fit_split_paths`).

    Returns:
        `ProbeResult`; SRCC/PLCC/PLCC-logistic/KRCC are computed on items (mean prediction over an item's rows).

    Raises:
        ValueError: shapes disagree, NaN/inf in features/scores (names the first bad row), scores or groups not
            constant within an item, or too few items/groups to split.
    """
    X, y = _check_data(features, scores)
    alphas = check_alphas(alphas)
    items = _items(y, groups, item_ids)
    if splits is None:
        splits = make_splits(items.n, items.groups, n_splits, ratios, seed)
    else:
        splits = _check_splits(splits, items.n)
    for i, sp in enumerate(splits):
        if sp["val"].size < 2 or sp["test"].size < 2:
            raise ValueError(
                f"split {i} has {sp['val'].size} val and {sp['test'].size} test item(s); the protocol "
                "needs >= 2 of each (more items or larger val/test ratios)"
            )
    paths = fit_split_paths(X, y, [items.rows(sp["train"]) for sp in splits], alphas, solver=solver)

    val_srcc = np.stack([_val_srcc(paths, s, items, sp["val"]) for s, sp in enumerate(splits)])
    best, med = _select_alpha(val_srcc, alphas)
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


def fit_final_regressor(features: Any, scores: Any, alpha: float) -> RidgeModel:
    """Refit on every row with the chosen alpha (the deployed regressor, as ARNIQA's released ones): standardised
    ridge, float64. Rows of one item all enter the fit, as in the protocol."""
    X, y = _check_data(features, scores)
    return fit_ridge(X, y, alpha)


def _unpack_test_set(name: str, value: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
        raise ValueError(f"test_sets[{name!r}] must be (features, scores) or (features, scores, item_ids)")
    return value[0], value[1], value[2] if len(value) == 3 else None


@dataclass
class CrossResult:
    """Outcome of `cross_dataset_fit`: per test set the metrics (as `cross_dataset` returns them) and the item
    predictions; the regressor fitted on all train rows; the chosen alpha and the val-SRCC curve."""

    metrics: dict[str, dict[str, Any]]
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    model: RidgeModel = field(repr=False)
    alpha: float = float("nan")
    val_srcc: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)


def cross_dataset(
    train_features: Any,
    train_scores: Any,
    test_sets: Mapping[str, tuple[Any, ...]],
    alphas: Any = DEFAULT_ALPHAS,
    val_fraction: float = 0.1,
    seed: int = 0,
    *,
    train_groups: Any | None = None,
    train_item_ids: Any | None = None,
    solver: str = "auto",
) -> dict[str, dict[str, Any]]:
    """Train on one dataset, test on others.

    alpha is chosen by SRCC on a held-out `val_fraction` of the train items (reference-disjoint when
    `train_groups` is given; split seed `[seed, 0]`); the regressor is then refit on ALL train rows with that
    alpha and applied to each test set.

    Args:
        train_features (N, D), train_scores (N,): the training set (rows, see `ridge_probe` for item_ids).
        test_sets: name -> (features (M, D), scores (M,)) or (features, scores, item_ids (M,)).
        alphas, val_fraction (in (0, 1)), seed, train_groups, train_item_ids, solver: as in `ridge_probe`.

    Returns:
        name -> {'srcc', 'plcc', 'plcc_logistic', 'krcc', 'alpha', 'val_srcc', 'n_test'} (metrics on items).
    """
    return cross_dataset_fit(
        train_features,
        train_scores,
        test_sets,
        alphas,
        val_fraction,
        seed,
        train_groups=train_groups,
        train_item_ids=train_item_ids,
        solver=solver,
    ).metrics


def cross_dataset_fit(
    train_features: Any,
    train_scores: Any,
    test_sets: Mapping[str, tuple[Any, ...]],
    alphas: Any = DEFAULT_ALPHAS,
    val_fraction: float = 0.1,
    seed: int = 0,
    *,
    train_groups: Any | None = None,
    train_item_ids: Any | None = None,
    solver: str = "auto",
) -> CrossResult:
    """`cross_dataset`, also returning the fitted regressor and each test set's item predictions
    ((item ids sorted), predictions) for saving and plotting."""
    if not 0 < float(val_fraction) < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    X, y = _check_data(train_features, train_scores, "train_")
    alphas = check_alphas(alphas)
    items = _items(y, train_groups, train_item_ids)
    sp = make_splits(items.n, items.groups, 1, (1 - val_fraction, val_fraction, 0.0), seed)[0]
    if sp["val"].size < 2:
        raise ValueError(f"the val part has {sp['val'].size} item(s); increase val_fraction")
    paths = fit_split_paths(X, y, [items.rows(sp["train"])], alphas, solver=solver)
    val_srcc = _val_srcc(paths, 0, items, sp["val"])[None, :]
    best, med = _select_alpha(val_srcc, alphas)
    model = fit_ridge(X, y, float(alphas[best]))
    out: dict[str, dict[str, Any]] = {}
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, value in test_sets.items():
        f, sc, ids = _unpack_test_set(name, value)
        Xt, yt = _check_data(f, sc, f"test_sets[{name!r}] ")
        if Xt.shape[1] != X.shape[1]:
            raise ValueError(f"test_sets[{name!r}] has {Xt.shape[1]} features, the train set {X.shape[1]}")
        t_items = _items(yt, None, ids)
        all_items = np.arange(t_items.n)
        pred = t_items.mean_over_items(model.predict(Xt), np.arange(yt.size), all_items)
        out[name] = {
            **all_metrics(pred, t_items.scores),
            "alpha": float(alphas[best]),
            "val_srcc": float(med[best]),
            "n_test": t_items.n,
        }
        preds[name] = (t_items.ids, pred)
    return CrossResult(out, preds, model, float(alphas[best]), med)
