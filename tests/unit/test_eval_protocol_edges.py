"""eval/protocol.py and eval/cross.py: defaults, the per-split rows and the summary, the split-size and input
messages, what the cross-dataset fit hands on (val part, standardisation, items) and `cross_dataset`'s signature."""

from __future__ import annotations

import inspect
import logging
import re
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from iqa_bench.errors import UserError
from iqa_bench.eval.cross import cross_dataset_fit
from iqa_bench.eval.protocol import (
    DEFAULT_ALPHAS,
    cross_dataset,
    fit_final_regressor,
    ridge_probe,
    summarise_splits,
)
from iqa_bench.eval.splits import make_splits

GRID = np.geomspace(1e-2, 1e2, 9)


def _linear(n: int = 100, d: int = 5, seed: int = 0, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.arange(1, d + 1)  # unequal column scales: standardising matters
    return X, X @ rng.normal(size=d) + noise * rng.normal(size=n)


# ------------------------------------------------------------------------------------------ summarise_splits
def test_summary_is_the_median_and_iqr_without_nan_splits(caplog: pytest.LogCaptureFixture) -> None:
    vals = [0.1, 0.2, 0.4, 0.8]
    rows = [
        {"srcc": v, "plcc": v, "plcc_logistic": np.nan, "krcc": k, "n_train": t, "n_val": 5, "n_test": 9}
        for v, k, t in zip(vals, [np.nan, 0.5, 0.7, 0.6], [10, 11, 13, 20])
    ]
    with caplog.at_level(logging.WARNING, logger="iqa_bench.eval.protocol"):
        s = summarise_splits(rows)
    assert s["srcc"] == pytest.approx(0.3) and s["srcc_iqr"] == pytest.approx(
        0.5 - 0.175
    )  # linear interpolation
    assert np.isnan(s["plcc_logistic"]) and np.isnan(s["plcc_logistic_iqr"])
    assert s["krcc"] == pytest.approx(0.6) and s["krcc_iqr"] == pytest.approx(0.1)  # split 0 left out
    assert caplog.messages == ["krcc is nan on split(s) [0]; left out of the median"]
    assert (s["n_train"], s["n_val"], s["n_test"], s["n_splits"]) == (12, 5, 9, 4)  # int of the median 12.0
    assert type(s["n_train"]) is int and type(s["srcc"]) is float
    s = summarise_splits(
        [
            {"srcc": 1.0, "plcc": 1.0, "plcc_logistic": 1.0, "krcc": 1.0, "n_train": 10},
            {"srcc": 0.0, "plcc": 0.0, "plcc_logistic": 0.0, "krcc": 0.0, "n_train": 11},
        ]
    )
    assert s["n_train"] == 10 and "n_val" not in s and s["srcc_iqr"] == pytest.approx(0.5)
    s = summarise_splits(
        [
            {"srcc": 1.0, "plcc": 1.0, "plcc_logistic": 1.0, "krcc": 1.0, "n_train": 10},
            {"srcc": 0.0, "plcc": 0.0, "plcc_logistic": 0.0, "krcc": 0.0},
        ]
    )
    assert "n_train" not in s and s["n_splits"] == 2


# ------------------------------------------------------------------------------------------ ridge_probe
def test_probe_defaults_are_ten_seeded_70_10_20_splits_over_the_arniqa_grid() -> None:
    X, y = _linear(n=40)
    res = ridge_probe(X, y)
    ref = ridge_probe(
        X,
        y,
        None,
        10,
        (0.7, 0.1, 0.2),
        DEFAULT_ALPHAS,
        0,
        None,
        splits=None,
        solver="auto",
        standardize=True,
        grid_edge="warn",
        max_widen=3,
        context="",
    )
    assert res.summary == ref.summary and res.alpha == ref.alpha
    np.testing.assert_array_equal(res.val_srcc_per_split, ref.val_srcc_per_split)
    assert len(res.per_split) == 10 and res.alphas.size == 100
    assert [(r["n_train"], r["n_val"], r["n_test"]) for r in res.per_split] == [(28, 4, 8)] * 10
    # the seed and the standardisation change the numbers (so the defaults above are the ones compared)
    two = ridge_probe(X, y, n_splits=2, alphas=GRID)
    assert not np.array_equal(
        ridge_probe(X, y, n_splits=2, alphas=GRID, seed=1).val_srcc_per_split, two.val_srcc_per_split
    )
    assert not np.array_equal(
        ridge_probe(X, y, n_splits=2, alphas=GRID, standardize=False).val_srcc_per_split,
        two.val_srcc_per_split,
    )


def test_probe_rows_hold_each_splits_numbers() -> None:
    X, y = _linear(n=120, seed=3, noise=3.0)
    ids = np.repeat(np.arange(60), 2)  # two rows per item, the item's score on both
    y = np.repeat(y[::2], 2)
    res = ridge_probe(X, y, None, 4, alphas=GRID, seed=5, item_ids=ids)
    best = int(np.flatnonzero(res.alphas == res.alpha)[0])
    assert res.summary["val_srcc"] == res.val_srcc[best] == np.median(res.val_srcc_per_split[:, best])
    assert res.summary["alpha"] == res.alpha and res.items.tolist() == list(range(60))
    assert res.solvers == ["exact"] * 4 and res.alphas.tolist() == GRID.tolist()
    splits = make_splits(60, None, 4, (0.7, 0.1, 0.2), 5)
    for s, (row, sp, (idx, pred, target)) in enumerate(zip(res.per_split, splits, res.test_predictions)):
        assert row["split"] == s and row["alpha"] == res.alpha
        assert row["val_srcc"] == res.val_srcc_per_split[s, best]
        assert (row["n_train"], row["n_val"], row["n_test"]) == (
            sp["train"].size,
            sp["val"].size,
            sp["test"].size,
        )
        np.testing.assert_array_equal(idx, sp["test"])
        np.testing.assert_array_equal(target, y[2 * sp["test"]])
        assert pred.shape == (sp["test"].size,)
        assert row["srcc"] == pytest.approx(stats.spearmanr(pred, target).statistic, abs=1e-12)
        assert row["krcc"] == pytest.approx(stats.kendalltau(pred, target).statistic, abs=1e-12)


def test_predefined_splits_need_two_validation_and_two_test_items() -> None:
    X, y = _linear(n=20)
    ok = {"train": np.arange(16), "val": np.array([16, 17]), "test": np.array([18, 19])}
    assert ridge_probe(X, y, alphas=GRID, splits=[ok]).per_split[0]["n_test"] == 2
    small_val = {"train": np.arange(17), "val": np.array([17]), "test": np.array([18, 19])}
    msg = "split 1 has 1 val and 2 test item(s); the protocol needs >= 2 of each (more items or larger val/test ratios)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        ridge_probe(X, y, alphas=GRID, splits=[ok, small_val])
    small_test = {"train": np.arange(16), "val": np.array([16, 17, 18]), "test": np.array([19])}
    with pytest.raises(ValueError, match=re.escape("split 0 has 3 val and 1 test item(s)")):
        ridge_probe(X, y, alphas=GRID, splits=[small_test])


def test_the_context_prefixes_the_edge_warning(caplog: pytest.LogCaptureFixture) -> None:
    X, y = _linear(n=200, noise=0.01)  # almost noiseless: the smallest alpha wins
    with caplog.at_level(logging.WARNING):
        ridge_probe(X, y, n_splits=2, alphas=[1e3, 1e4, 1e5], context="set/enc: ")
    assert any(
        m.startswith("set/enc: the best median val SRCC is reached at the smallest") for m in caplog.messages
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ridge_probe(X, y, n_splits=2, alphas=[1e3, 1e4, 1e5])
        cross_dataset_fit(X, y, {}, alphas=[1e3, 1e4, 1e5])
    edge = [m for m in caplog.messages if "alpha grid" in m]
    assert len(edge) == 2 and all(
        m.startswith("the best median val SRCC") for m in edge
    )  # no prefix by default


def test_final_regressor_on_raw_features_is_sklearns_ridge() -> None:
    X, y = _linear(n=80, seed=4)
    m = fit_final_regressor(X, y, 3.0, standardize=False)
    ref = Ridge(alpha=3.0).fit(X, y)
    np.testing.assert_allclose(m.predict(X[:10]), ref.predict(X[:10]), rtol=1e-9)
    std = fit_final_regressor(X, y, 3.0)
    assert not np.allclose(std.predict(X[:10]), m.predict(X[:10]), rtol=1e-6)


# ------------------------------------------------------------------------------------------ cross-dataset
def _sets(seed: int = 1) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    X, y = _linear(n=100, seed=seed, noise=2.0)
    Xt, yt = _linear(n=30, seed=seed + 10, noise=2.0)
    return X, y, {"B": (Xt, yt)}


def test_cross_defaults_and_what_the_fit_returns() -> None:
    X, y, tests = _sets()
    res = cross_dataset_fit(X, y, tests)
    ref = cross_dataset_fit(
        X,
        y,
        tests,
        DEFAULT_ALPHAS,
        0.1,
        0,
        train_groups=None,
        train_item_ids=None,
        solver="auto",
        standardize=True,
        grid_edge="warn",
        max_widen=3,
        context="",
    )
    np.testing.assert_array_equal(res.val_srcc, ref.val_srcc)
    assert res.metrics == ref.metrics and res.val_srcc.size == 100
    assert not np.array_equal(cross_dataset_fit(X, y, tests, seed=1).val_srcc, res.val_srcc)
    assert not np.array_equal(cross_dataset_fit(X, y, tests, val_fraction=0.3).val_srcc, res.val_srcc)
    m = res.metrics["B"]
    assert m["alpha"] == res.alpha == res.model.alpha
    assert m["val_srcc"] == res.val_srcc[int(np.flatnonzero(DEFAULT_ALPHAS == res.alpha)[0])]
    assert m["n_test"] == 30 and set(m) == {
        "srcc",
        "plcc",
        "plcc_logistic",
        "krcc",
        "alpha",
        "val_srcc",
        "n_test",
    }
    ids, pred = res.predictions["B"]
    np.testing.assert_array_equal(ids, np.arange(30))
    np.testing.assert_allclose(pred, res.model.predict(tests["B"][0]))
    assert m["srcc"] == pytest.approx(stats.spearmanr(pred, tests["B"][1]).statistic, abs=1e-12)
    # the regressor is refit on all train rows with the chosen alpha; raw features give sklearn's Ridge
    raw = cross_dataset_fit(X, y, tests, alphas=[2.0], standardize=False)
    np.testing.assert_allclose(
        raw.predictions["B"][1], Ridge(alpha=2.0).fit(X, y).predict(tests["B"][0]), rtol=1e-9
    )
    assert not np.array_equal(
        cross_dataset_fit(X, y, tests, alphas=GRID, standardize=False).val_srcc,
        cross_dataset_fit(X, y, tests, alphas=GRID).val_srcc,
    )


def test_cross_items_groups_and_the_held_out_part() -> None:
    X, y, tests = _sets(2)
    Xt, yt = tests["B"]
    ids = np.array([5, 3] * 15) + np.repeat(np.arange(15), 2) * 10  # two rows per item, ids out of order
    yt = yt[np.argsort(ids, kind="stable")][::2].repeat(2)[np.argsort(np.argsort(ids, kind="stable"))]
    res = cross_dataset_fit(X, y, {"B": (Xt, yt, ids)}, alphas=GRID)
    got_ids, pred = res.predictions["B"]
    np.testing.assert_array_equal(got_ids, np.unique(ids))
    assert res.metrics["B"]["n_test"] == 30  # ids ending in 3 and 5 are different items
    rows = res.model.predict(Xt)
    np.testing.assert_allclose(pred, [rows[ids == i].mean() for i in np.unique(ids)])
    groups = np.repeat(np.arange(10), 10)
    grouped = cross_dataset_fit(X, y, {}, alphas=GRID, val_fraction=0.2, train_groups=groups)
    # the val part is 2 whole references: its curve is the val SRCC of that reference-disjoint part
    sp = make_splits(100, groups, 1, (0.8, 0.2, 0.0), 0)[0]
    assert len(set(groups[sp["val"]])) == 2
    a = int(np.argmax(grouped.val_srcc))
    assert grouped.alpha == GRID[a] and grouped.metrics == {}
    assert not np.array_equal(
        grouped.val_srcc, cross_dataset_fit(X, y, {}, alphas=GRID, val_fraction=0.2).val_srcc
    )
    with pytest.raises(ValueError, match=re.escape("the val part has 1 item(s); increase val_fraction")):
        cross_dataset_fit(X[:10], y[:10], {}, alphas=GRID)
    tiny = cross_dataset_fit(X[:19], y[:19], {}, alphas=GRID)
    assert tiny.val_srcc.size == GRID.size
    # 20 rows of 10 items: the held-out 10 % is one item, not two rows
    with pytest.raises(ValueError, match=re.escape("the val part has 1 item(s)")):
        cross_dataset_fit(
            X[:20], np.repeat(y[:10], 2), {}, alphas=GRID, train_item_ids=np.repeat(np.arange(10), 2)
        )


def test_cross_refusals_name_the_set_and_the_value() -> None:
    X, y, tests = _sets(3)
    Xt, yt = tests["B"]
    for vf in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=re.escape(f"val_fraction must be in (0, 1), got {vf}")):
            cross_dataset_fit(X, y, tests, val_fraction=vf)
    shape = "test_sets['B'] must be (features, scores) or (features, scores, item_ids)"
    for bad in ((Xt,), (Xt, yt, None, None), {"f": Xt}, Xt):
        with pytest.raises(ValueError, match=re.escape(shape)):
            cross_dataset_fit(X, y, {"B": bad}, alphas=GRID)
    ok = cross_dataset_fit(X, y, {"B": [Xt, yt], "C": (Xt, yt, None)}, alphas=GRID)
    assert ok.metrics["B"] == ok.metrics["C"]
    with pytest.raises(ValueError, match=re.escape("test_sets['B'] has 3 features, the train set 5")):
        cross_dataset_fit(X, y, {"B": (Xt[:, :3], yt)}, alphas=GRID)
    y_bad = y.copy()
    y_bad[4] = np.nan
    with pytest.raises(ValueError, match=re.escape("train_scores contain NaN/inf (first bad row 4)")):
        cross_dataset_fit(X, y_bad, tests, alphas=GRID)
    yt_bad = yt.copy()
    yt_bad[2] = np.inf
    with pytest.raises(
        ValueError, match=re.escape("test_sets['B'] scores contain NaN/inf (first bad row 2)")
    ):
        cross_dataset_fit(X, y, {"B": (Xt, yt_bad)}, alphas=GRID)


def test_cross_dataset_is_the_metrics_of_the_fit_with_its_signature() -> None:
    X, y, tests = _sets(4)
    assert cross_dataset(X, y, tests, GRID, 0.2, 3) == cross_dataset_fit(X, y, tests, GRID, 0.2, 3).metrics
    sig = inspect.signature(cross_dataset)
    assert list(sig.parameters) == list(inspect.signature(cross_dataset_fit).parameters)
    assert sig.return_annotation == dict[str, dict[str, Any]]


@pytest.mark.parametrize("which", ["probe", "cross"])
def test_solver_and_grid_edge_settings_reach_the_alpha_selection(which: str) -> None:
    X, y = _linear(n=200, noise=0.01)  # almost noiseless: the smallest alpha of a high grid wins

    def run(**kw: Any) -> Any:
        if which == "probe":
            return ridge_probe(X, y, n_splits=2, alphas=[1e3, 1e4, 1e5], **kw)
        return cross_dataset_fit(X, y, {}, alphas=[1e3, 1e4, 1e5], **kw)

    with pytest.raises(
        ValueError, match=re.escape("solver must be 'auto', 'exact' or 'lanczos', got 'nope'")
    ):
        run(solver="nope")
    edge = "the best median val SRCC is reached at the smallest alpha 1e+03"
    with pytest.raises(UserError, match=re.escape("ctx: " + edge)):
        run(grid_edge="error", context="ctx: ")
    with pytest.raises(UserError, match=re.escape(edge)):
        run(grid_edge="widen", max_widen=0)
    assert run(grid_edge="widen").alpha < 1e3  # widened below the given grid
