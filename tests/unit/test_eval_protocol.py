"""eval/protocol.py: alpha selection, aggregation, item averaging, validation, final regressor, cross-dataset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from iqa_bench.eval.metrics import all_metrics
from iqa_bench.eval.protocol import cross_dataset, fit_final_regressor, ridge_probe
from iqa_bench.eval.splits import make_splits

GRID = np.geomspace(1e-3, 1e3, 13)


def _linear(n=400, d=30, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X = rng.normal(size=(n, d))
    return X, X @ w + noise * rng.normal(size=n) * np.sqrt(d), w


def test_linear_signal_gives_high_srcc_and_sensible_alpha():
    X, y, _ = _linear()
    res = ridge_probe(X, y, None, n_splits=5, alphas=GRID, seed=1)
    assert res.summary["srcc"] > 0.85 and res.summary["plcc"] > 0.85
    assert 1e-3 <= res.alpha <= 100  # a well-determined problem needs little shrinkage
    assert res.alpha == res.summary["alpha"] and all(r["alpha"] == res.alpha for r in res.per_split)
    assert res.val_srcc.shape == (GRID.size,) and res.val_srcc_per_split.shape == (5, GRID.size)
    assert res.summary["val_srcc"] == pytest.approx(res.val_srcc.max())
    assert [r["split"] for r in res.per_split] == list(range(5))
    assert res.per_split[0]["n_train"] + res.per_split[0]["n_val"] + res.per_split[0]["n_test"] == 400


def test_pure_noise_gives_srcc_near_zero():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(500, 20)), rng.normal(size=500)
    res = ridge_probe(X, y, None, n_splits=10, alphas=GRID)
    assert abs(res.summary["srcc"]) < 0.12


def test_summary_is_median_and_iqr_of_per_split_values():
    X, y, _ = _linear(noise=2.0, seed=3)
    res = ridge_probe(X, y, None, n_splits=7, alphas=GRID, seed=2)
    for k in ("srcc", "plcc", "plcc_logistic", "krcc"):
        vals = [r[k] for r in res.per_split]
        assert res.summary[k] == pytest.approx(np.median(vals), abs=1e-15)
        q75, q25 = np.percentile(vals, [75, 25])
        assert res.summary[f"{k}_iqr"] == pytest.approx(q75 - q25, abs=1e-15)
    for (idx, pred, target), row in zip(res.test_predictions, res.per_split):
        assert np.array_equal(target, y[idx]) and len(pred) == row["n_test"]
        assert all_metrics(pred, target)["srcc"] == pytest.approx(row["srcc"], abs=1e-12)


def test_alpha_selection_equals_sklearn_brute_force():
    rng = np.random.default_rng(1)
    n, d = 240, 25
    X = rng.normal(size=(n, d)) * rng.uniform(0.2, 5, d) + 3
    y = X[:, :5] @ rng.normal(size=5) + rng.normal(0, 4, n)
    groups = np.repeat(np.arange(30), 8)
    alphas = np.geomspace(1e-2, 1e4, 11)
    res = ridge_probe(X, y, groups, n_splits=5, alphas=alphas, seed=2)
    splits = make_splits(n, groups, 5, seed=2)
    ref = np.empty((5, alphas.size))
    for j, a in enumerate(alphas):
        for i, sp in enumerate(splits):
            model = make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(X[sp["train"]], y[sp["train"]])
            ref[i, j] = stats.spearmanr(model.predict(X[sp["val"]]), y[sp["val"]]).statistic
    np.testing.assert_allclose(res.val_srcc_per_split, ref, atol=1e-12)
    best = int(np.argmax(np.median(ref, axis=0)))
    assert res.alpha == alphas[best]
    for i, sp in enumerate(splits):  # test metrics with the chosen alpha, refitted by sklearn
        model = make_pipeline(StandardScaler(), Ridge(alpha=alphas[best])).fit(X[sp["train"]], y[sp["train"]])
        assert res.per_split[i]["srcc"] == pytest.approx(
            stats.spearmanr(model.predict(X[sp["test"]]), y[sp["test"]]).statistic, abs=1e-12
        )


def test_item_ids_average_rows_of_one_item():
    rng = np.random.default_rng(2)
    n_items, k, d = 50, 5, 6
    base = rng.normal(size=(n_items, d))
    y_item = base @ rng.normal(size=d)
    X = np.repeat(base, k, axis=0) + rng.normal(0, 0.3, (n_items * k, d))
    names = np.array([f"img{i:03d}" for i in range(n_items)])
    perm = rng.permutation(n_items * k)  # rows of one item are scattered
    ids, X, y = np.repeat(names, k)[perm], X[perm], np.repeat(y_item, k)[perm]
    res = ridge_probe(X, y, None, n_splits=3, alphas=[0.1, 1.0], item_ids=ids)
    assert np.array_equal(res.items, names)
    assert res.per_split[0]["n_test"] == 10 and res.summary["srcc"] > 0.9
    sp = make_splits(n_items, None, 3)[0]
    rows_tr = np.flatnonzero(np.isin(ids, names[sp["train"]]))
    model = make_pipeline(StandardScaler(), Ridge(alpha=res.alpha)).fit(X[rows_tr], y[rows_tr])
    manual = np.array([model.predict(X[ids == names[i]]).mean() for i in sp["test"]])
    idx, pred, target = res.test_predictions[0]
    assert np.array_equal(idx, sp["test"]) and np.array_equal(target, y_item[sp["test"]])
    np.testing.assert_allclose(pred, manual, rtol=1e-9)
    assert res.per_split[0]["srcc"] == pytest.approx(stats.spearmanr(manual, target).statistic, abs=1e-12)


def test_groups_make_the_probe_reference_disjoint():
    rng = np.random.default_rng(4)
    refs = np.repeat(np.arange(12), 10)
    X = rng.normal(size=(120, 8))
    res = ridge_probe(X, X[:, 0] + rng.normal(size=120), refs, n_splits=3, alphas=[1.0])
    assert [r["n_test"] for r in res.per_split] == [20, 20, 20]  # round(0.2 * 12) = 2 references x 10
    for idx, _, _ in res.test_predictions:
        assert len(set(refs[idx])) == 2


def test_lanczos_solver_agrees_with_exact():
    X, y, _ = _linear(n=500, d=60, noise=1.0, seed=7)
    a = ridge_probe(X, y, None, n_splits=3, alphas=GRID, solver="exact")
    b = ridge_probe(X, y, None, n_splits=3, alphas=GRID, solver="lanczos")
    assert b.solvers == ["lanczos"] * 3 and a.alpha == b.alpha
    np.testing.assert_allclose(a.val_srcc_per_split, b.val_srcc_per_split, atol=1e-9)
    for k in ("srcc", "plcc", "krcc"):
        assert a.summary[k] == pytest.approx(b.summary[k], abs=1e-9)


def test_input_validation_names_argument_and_row():
    X = np.zeros((10, 3))
    X[4, 1] = np.nan
    with pytest.raises(ValueError, match="features contain NaN.*row 4"):
        ridge_probe(X, np.arange(10.0))
    with pytest.raises(ValueError, match="scores contain NaN.*row 2"):
        ridge_probe(np.zeros((10, 3)), np.array([1, 2, np.nan] + [1.0] * 7))
    with pytest.raises(ValueError, match="scores must have shape"):
        ridge_probe(np.zeros((10, 3)), np.arange(9.0))
    with pytest.raises(ValueError, match="features must be 2-D"):
        ridge_probe(np.zeros(10), np.arange(10.0))
    rng = np.random.default_rng(0)
    Xr, ids = rng.normal(size=(40, 3)), np.repeat(np.arange(20), 2)
    y = np.repeat(np.arange(20.0), 2)
    y_bad = y.copy()
    y_bad[7] += 1
    with pytest.raises(ValueError, match="scores must be equal on all rows of an item; row 7"):
        ridge_probe(Xr, y_bad, item_ids=ids)
    g_bad = np.repeat(np.arange(10), 4)
    g_bad[5] = 99
    with pytest.raises(ValueError, match="groups must be equal on all rows of an item; row 5"):
        ridge_probe(Xr, y, g_bad, item_ids=ids)
    with pytest.raises(ValueError, match="at least 3"):
        ridge_probe(Xr, y, np.repeat([0, 1], 20))


def test_final_regressor_is_a_fit_on_everything():
    X, y, _ = _linear(n=120, d=10, seed=9)
    m = fit_final_regressor(X, y, 0.7)
    ref = make_pipeline(StandardScaler(), Ridge(alpha=0.7)).fit(X, y)
    np.testing.assert_allclose(m.predict(X[:15]), ref.predict(X[:15]), rtol=1e-8)
    with pytest.raises(ValueError, match="scores contain NaN"):
        fit_final_regressor(X, np.where(np.arange(120) == 3, np.nan, y), 0.7)


def test_cross_dataset_trains_on_one_set_and_tests_on_others():
    rng = np.random.default_rng(11)
    d = 12
    w = rng.normal(size=d)
    Xa, base_b, Xc = (rng.normal(size=(n, d)) for n in (300, 40, 60))
    ya = Xa @ w + 0.3 * rng.normal(size=300)
    Xb = np.repeat(base_b, 2, axis=0) + 0.1 * rng.normal(size=(80, d))  # two crops per item
    ids_b = np.repeat(np.arange(40), 2)
    yb_items = np.repeat(base_b @ w + 0.3 * rng.normal(size=40), 2)  # the crops share the item's score
    yc = rng.normal(size=60)  # unrelated
    out = cross_dataset(
        Xa, ya, {"B": (Xb, yb_items, ids_b), "C": (Xc, yc)}, alphas=GRID, val_fraction=0.2, seed=3
    )
    assert set(out) == {"B", "C"}
    assert out["B"]["srcc"] > 0.9 and abs(out["C"]["srcc"]) < 0.35
    assert out["B"]["n_test"] == 40 and out["C"]["n_test"] == 60
    # the alpha is the val-SRCC argmax on the held-out 20 %, the model a refit on all train rows
    sp = make_splits(300, None, 1, (0.8, 0.2, 0.0), 3)[0]
    val = [
        stats.spearmanr(
            make_pipeline(StandardScaler(), Ridge(alpha=a))
            .fit(Xa[sp["train"]], ya[sp["train"]])
            .predict(Xa[sp["val"]]),
            ya[sp["val"]],
        ).statistic
        for a in GRID
    ]
    alpha = GRID[int(np.argmax(val))]
    assert out["C"]["alpha"] == alpha
    full = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(Xa, ya)
    assert out["C"]["plcc"] == pytest.approx(stats.pearsonr(full.predict(Xc), yc).statistic, abs=1e-10)
    with pytest.raises(ValueError, match="features"):
        cross_dataset(Xa, ya, {"bad": (Xc[:, :5], yc)}, alphas=GRID)


def test_predefined_splits_are_used_and_checked():
    X, y, _ = _linear(n=100, d=5, seed=12)
    sp = make_splits(100, None, 2, seed=9)
    a = ridge_probe(X, y, alphas=GRID, splits=sp)
    b = ridge_probe(X, y, n_splits=2, alphas=GRID, seed=9)
    assert a.summary == b.summary
    with pytest.raises(ValueError, match="outside"):
        ridge_probe(X, y, alphas=GRID, splits=[{**sp[0], "test": np.append(sp[0]["test"], -1)}])
    with pytest.raises(ValueError, match="overlap"):
        ridge_probe(X, y, alphas=GRID, splits=[{**sp[0], "val": np.append(sp[0]["val"], sp[0]["train"][0])}])
