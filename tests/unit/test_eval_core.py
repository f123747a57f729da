"""Evaluator core against scikit-learn / scipy references: metrics, ridge path, splits, protocol."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from iqa_bench.eval.metrics import all_metrics, krcc, logistic4, logistic4_fit, plcc, plcc_logistic, srcc
from iqa_bench.eval.protocol import ridge_probe
from iqa_bench.eval.ridge import RidgeModel, RidgePath, fit_ridge
from iqa_bench.eval.splits import make_splits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scipy_including_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10, 60).astype(float)  # many ties
    b = a + rng.normal(0, 3, 60)
    assert srcc(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert krcc(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
    assert plcc(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-12)


def test_logistic_fit_recovers_parameters_and_improves_plcc():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 400)
    true = (5.0, 1.0, 0.5, 0.6)
    y = logistic4(x, *true) + rng.normal(0, 0.02, 400)
    params = logistic4_fit(x, y)
    np.testing.assert_allclose(params[:3], true[:3], atol=0.05)
    assert abs(abs(params[3]) - true[3]) < 0.05
    assert plcc_logistic(x, y) > plcc(x, y) + 0.02
    assert plcc_logistic(x, y) > 0.99


def test_metrics_reject_bad_input_and_constant_is_nan():
    with pytest.raises(ValueError, match="same length"):
        srcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="target contains NaN"):
        plcc([1, 2, 3], [1, np.nan, 2])
    assert np.isnan(srcc([1, 1, 1], [1, 2, 3]))
    m = all_metrics([1, 2, 3, 4], [2, 4, 6, 9])
    assert set(m) == {"srcc", "plcc", "plcc_logistic", "krcc"} and m["srcc"] == pytest.approx(1.0)


@pytest.mark.parametrize("n,d", [(80, 12), (15, 40)])
def test_ridge_path_matches_sklearn(n, d):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d) + rng.normal(size=d)
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    Xt = rng.normal(size=(7, d))
    alphas = [1e-3, 0.1, 1.0, 10.0, 1e3]
    path = RidgePath(alphas).fit(X, y)
    preds = path.predict_all(Xt)
    scaler = StandardScaler().fit(X)
    for i, a in enumerate(alphas):
        ref = Ridge(alpha=a, fit_intercept=True).fit(scaler.transform(X), y)
        np.testing.assert_allclose(preds[i], ref.predict(scaler.transform(Xt)), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(path.model(i).coef_, ref.coef_, rtol=1e-6, atol=1e-8)
        assert path.model(i).intercept_ == pytest.approx(ref.intercept_, abs=1e-8)


def test_ridge_model_state_round_trip():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 5)), rng.normal(size=30)
    X[:, 2] = 3.0  # constant feature: scale 1, no division by zero
    m = fit_ridge(X, y, 0.5)
    m2 = RidgeModel.from_state(m.to_state())
    np.testing.assert_array_equal(m.predict(X), m2.predict(X))
    assert np.isfinite(m.predict(X)).all()


def test_splits_reference_disjoint_sizes_and_determinism():
    groups = np.repeat(np.arange(24), 50)  # 24 references x 50 distorted images
    splits = make_splits(len(groups), groups, n_splits=10, seed=3)
    assert len(splits) == 10
    for sp in splits:
        parts = [set(groups[sp[k]]) for k in ("train", "val", "test")]
        assert [len(p) for p in parts] == [17, 2, 5]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        allidx = np.concatenate([sp["train"], sp["val"], sp["test"]])
        assert sorted(allidx.tolist()) == list(range(len(groups)))
    again = make_splits(len(groups), groups, n_splits=10, seed=3)
    assert all(np.array_equal(a["test"], b["test"]) for a, b in zip(splits, again))
    other = make_splits(len(groups), groups, n_splits=10, seed=4)
    assert any(not np.array_equal(a["test"], b["test"]) for a, b in zip(splits, other))
    assert len({tuple(sp["test"]) for sp in splits}) > 1  # splits differ from each other


def test_random_splits_ratios_and_errors():
    sp = make_splits(1000, None, n_splits=2, seed=0)[0]
    assert (len(sp["train"]), len(sp["val"]), len(sp["test"])) == (700, 100, 200)
    with pytest.raises(ValueError, match="at least 3"):
        make_splits(10, np.array([0] * 5 + [1] * 5))


def _brute_force_alpha(X, y, splits, alphas):
    med = []
    for a in alphas:
        vals = []
        for sp in splits:
            sc = StandardScaler().fit(X[sp["train"]])
            r = Ridge(alpha=a).fit(sc.transform(X[sp["train"]]), y[sp["train"]])
            vals.append(stats.spearmanr(r.predict(sc.transform(X[sp["val"]])), y[sp["val"]]).statistic)
        med.append(np.median(vals))
    return alphas[int(np.argmax(med))]


def test_probe_selects_alpha_like_brute_force_and_reports_medians():
    rng = np.random.default_rng(1)
    n, d = 300, 40
    X = rng.normal(size=(n, d))
    y = X[:, :5] @ rng.normal(size=5) + rng.normal(0, 1.5, n)
    groups = np.repeat(np.arange(30), 10)
    alphas = np.geomspace(1e-2, 1e4, 9)
    res = ridge_probe(X, y, groups, n_splits=5, alphas=alphas, seed=2)
    splits = make_splits(n, groups, 5, seed=2)
    assert res.alpha == pytest.approx(_brute_force_alpha(X, y, splits, alphas))
    assert res.summary["srcc"] == pytest.approx(np.median([r["srcc"] for r in res.per_split]))
    assert res.summary["srcc"] > 0.6
    q75, q25 = np.percentile([r["srcc"] for r in res.per_split], [75, 25])
    assert res.summary["srcc_iqr"] == pytest.approx(q75 - q25)


def test_probe_on_noise_is_near_zero():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(400, 20)), rng.normal(size=400)
    res = ridge_probe(X, y, None, n_splits=10, alphas=np.geomspace(1e-2, 1e2, 5))
    assert abs(res.summary["srcc"]) < 0.2


def test_probe_averages_rows_of_one_item():
    rng = np.random.default_rng(2)
    n_items, k = 60, 5
    base = rng.normal(size=(n_items, 6))
    y_item = base @ rng.normal(size=6)
    X = np.repeat(base, k, axis=0) + rng.normal(0, 0.3, (n_items * k, 6))
    ids = np.repeat(np.arange(n_items), k)
    res = ridge_probe(X, np.repeat(y_item, k), None, n_splits=3, alphas=[0.1, 1.0], item_ids=ids)
    for idx, pred, target in res.test_predictions:
        assert len(pred) == len(idx) == len(target) and np.array_equal(target, y_item[idx])
    assert res.per_split[0]["n_test"] == 12  # items, not rows
    assert res.summary["srcc"] > 0.9


def test_probe_rejects_nan_naming_the_row():
    X = np.zeros((10, 3))
    X[4, 1] = np.nan
    with pytest.raises(ValueError, match="features contain NaN.*row 4"):
        ridge_probe(X, np.arange(10.0))
    with pytest.raises(ValueError, match="scores contain NaN.*row 2"):
        ridge_probe(np.zeros((10, 3)), np.array([1, 2, np.nan] + [1.0] * 7))
