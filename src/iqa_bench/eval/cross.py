"""The cross-dataset protocol: fit the ridge probe on all of one set (alpha chosen on a held-out part of it), test
on other sets."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iqa_bench.eval.alpha_grid import fit_and_select
from iqa_bench.eval.metrics import all_metrics
from iqa_bench.eval.probe_data import check_data, items_of
from iqa_bench.eval.ridge import DEFAULT_ALPHAS, RidgeModel, check_alphas, fit_ridge
from iqa_bench.eval.splits import make_splits

__all__ = ["CrossResult", "cross_dataset", "cross_dataset_fit"]


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
    standardize: bool = True,
    grid_edge: str = "warn",
    max_widen: int = 3,
    context: str = "",
) -> CrossResult:
    """`cross_dataset`, also returning the fitted regressor and each test set's item predictions
    ((item ids sorted), predictions) for saving and plotting."""
    if not 0 < float(val_fraction) < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    X, y = check_data(train_features, train_scores, "train_")
    alphas = check_alphas(alphas)
    items = items_of(y, train_groups, train_item_ids)
    sp = make_splits(items.n, items.groups, 1, (1 - val_fraction, val_fraction, 0.0), seed)[0]
    if sp["val"].size < 2:
        raise ValueError(f"the val part has {sp['val'].size} item(s); increase val_fraction")
    _, _, best, med, alphas = fit_and_select(
        X,
        y,
        items,
        [sp],
        alphas,
        solver=solver,
        standardize=standardize,
        grid_edge=grid_edge,
        max_widen=max_widen,
        context=context,
    )
    model = fit_ridge(X, y, float(alphas[best]), standardize=standardize)
    out: dict[str, dict[str, Any]] = {}
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, value in test_sets.items():
        f, sc, ids = _unpack_test_set(name, value)
        Xt, yt = check_data(f, sc, f"test_sets[{name!r}] ")
        if Xt.shape[1] != X.shape[1]:
            raise ValueError(f"test_sets[{name!r}] has {Xt.shape[1]} features, the train set {X.shape[1]}")
        t_items = items_of(yt, None, ids)
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


def cross_dataset(*args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """Train on one dataset, test on others: `cross_dataset_fit(...).metrics` (same arguments, same signature).

    alpha is chosen by SRCC on a held-out `val_fraction` of the train items (reference-disjoint when
    `train_groups` is given; split seed `[seed, 0]`); the regressor is then refit on ALL train rows with that
    alpha and applied to each test set.

    Args:
        train_features (N, D), train_scores (N,): the training set (rows, see `ridge_probe` for item_ids).
        test_sets: name -> (features (M, D), scores (M,)) or (features, scores, item_ids (M,)).
        alphas, val_fraction (in (0, 1)), seed, train_groups, train_item_ids, solver, standardize, grid_edge,
            max_widen, context: as in `protocol.ridge_probe`.

    Returns:
        name -> {'srcc', 'plcc', 'plcc_logistic', 'krcc', 'alpha', 'val_srcc', 'n_test'} (metrics on items).
    """
    return cross_dataset_fit(*args, **kwargs).metrics


cross_dataset.__signature__ = inspect.signature(cross_dataset_fit).replace(  # type: ignore[attr-defined]
    return_annotation=dict[str, dict[str, Any]]
)
