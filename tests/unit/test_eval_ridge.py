"""eval/ridge.py against scikit-learn's Ridge (and StandardScaler), plus the batched Lanczos path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from iqa_bench.eval.ridge import RidgeModel, RidgePath, fit_ridge
from iqa_bench.eval.ridge_splits import fit_split_paths

ALPHAS = np.array([1e-3, 0.05, 1.0, 30.0, 1e3])


def _problem(
    n: int, d: int, seed: int = 0, const_col: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.01, 100, d) + rng.normal(0, 50, d)  # mixed scales and offsets
    if const_col:
        X[:, 1] = 7.5
    y = X @ rng.normal(size=d) / d + rng.normal(size=n)
    Xt = rng.normal(size=(9, d)) * X.std(axis=0) + X.mean(axis=0)
    return X, y, Xt


@pytest.mark.parametrize("n,d", [(60, 12), (14, 40)])  # N > D (primal) and N < D (dual)
def test_path_unstandardised_equals_sklearn_ridge(n, d):
    X, y, Xt = _problem(n, d, seed=n)
    path = RidgePath(ALPHAS, standardize=False).fit(X, y)
    preds = path.predict_all(Xt)
    assert preds.shape == (ALPHAS.size, Xt.shape[0])
    for i, a in enumerate(ALPHAS):
        ref = Ridge(alpha=a, fit_intercept=True).fit(X, y)
        np.testing.assert_allclose(preds[i], ref.predict(Xt), rtol=1e-6, atol=1e-9 * np.abs(y).max())
        np.testing.assert_allclose(
            path.coef_path_[i], ref.coef_, rtol=1e-6, atol=1e-9 * np.abs(ref.coef_).max()
        )
        assert path.intercept_path_[i] == pytest.approx(ref.intercept_, rel=1e-6, abs=1e-9)
        m = fit_ridge(X, y, a, standardize=False)
        np.testing.assert_allclose(m.predict(Xt), ref.predict(Xt), rtol=1e-6, atol=1e-9 * np.abs(y).max())


@pytest.mark.parametrize("n,d", [(60, 12), (14, 40)])
def test_path_standardised_equals_scaler_plus_ridge(n, d):
    X, y, Xt = _problem(n, d, seed=d, const_col=True)
    path = RidgePath(ALPHAS).fit(X, y)
    scaler = StandardScaler().fit(X)
    np.testing.assert_allclose(path.mean_, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(path.scale_, scaler.scale_, rtol=1e-12)
    assert path.scale_[1] == 1.0  # constant feature
    for i, a in enumerate(ALPHAS):
        ref = make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(X, y)
        np.testing.assert_allclose(path.predict(Xt, alpha_index=i), ref.predict(Xt), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(path.predict(Xt, alpha=a), ref.predict(Xt), rtol=1e-6, atol=1e-9)
        model = fit_ridge(X, y, a)
        np.testing.assert_allclose(model.predict(Xt), ref.predict(Xt), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(model.coef_, ref[-1].coef_, rtol=1e-6, atol=1e-10)
        assert np.isfinite(model.predict(Xt)).all()


def test_off_grid_alpha_and_model_extraction():
    X, y, Xt = _problem(50, 8, seed=3)
    path = RidgePath(ALPHAS).fit(X, y)
    np.testing.assert_allclose(path.predict(Xt, alpha=0.37), fit_ridge(X, y, 0.37).predict(Xt), rtol=1e-9)
    m = path.model(alpha_index=2)
    assert m.alpha == ALPHAS[2]
    np.testing.assert_allclose(m.predict(Xt), path.predict(Xt, alpha_index=2), rtol=1e-12)
    with pytest.raises(ValueError, match="exactly one"):
        path.predict(Xt)
    with pytest.raises(IndexError):
        path.predict(Xt, alpha_index=len(ALPHAS))
    with pytest.raises(ValueError, match="features"):
        path.predict(Xt[:, :5], alpha_index=0)


def test_accepts_torch_float32():
    X, y, Xt = _problem(40, 6, seed=4)
    ref = fit_ridge(X, y, 1.0)
    got = fit_ridge(torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y), 1.0)
    np.testing.assert_allclose(got.predict(Xt), ref.predict(Xt), rtol=1e-4)


def test_model_state_round_trip_without_pickle():
    X, y, Xt = _problem(30, 5, seed=5, const_col=True)
    m = fit_ridge(X, y, 0.5)
    state = m.to_state()
    assert all(isinstance(v, (np.ndarray, float, str)) for v in state.values())
    m2 = RidgeModel.from_state(state)
    np.testing.assert_array_equal(m.predict(Xt), m2.predict(Xt))
    as_json = json.loads(
        json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in state.items()})
    )
    np.testing.assert_array_equal(RidgeModel.from_state(as_json).predict(Xt), m.predict(Xt))
    w, b = m.as_linear()
    np.testing.assert_allclose(Xt @ w + b, m.predict(Xt), rtol=1e-9)
    with pytest.raises(ValueError, match="coef"):
        RidgeModel.from_state({k: v for k, v in state.items() if k != "coef"})
    with pytest.raises(ValueError, match="format"):
        RidgeModel.from_state({**state, "format": "other/9"})


def test_bad_alphas_and_shapes():
    X, y, _ = _problem(20, 4)
    for bad in (0.0, -1.0, np.nan, []):
        with pytest.raises(ValueError, match="alphas"):
            RidgePath(bad)
    with pytest.raises(ValueError, match="y must have shape"):
        fit_ridge(X, y[:-1], 1.0)
    with pytest.raises(ValueError, match="2-D"):
        fit_ridge(y, y, 1.0)


# ------------------------------------------------------------------------------------ batched split paths
def _splits_problem(n=600, d=80, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + rng.normal(0, 2, d)).astype(dtype)
    y = X.astype(np.float64) @ rng.normal(size=d) / np.sqrt(d) + rng.normal(size=n)
    rows = [np.sort(rng.choice(n, size=int(0.7 * n), replace=False)) for _ in range(3)]
    return X, y, rows


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-7), (np.float32, 1e-4)])
def test_lanczos_paths_match_exact_paths(dtype, rtol):
    X, y, rows = _splits_problem(dtype=dtype)
    alphas = np.geomspace(1e-3, 1e3, 25)
    fast = fit_split_paths(X, y, rows, alphas, solver="lanczos")
    exact = fit_split_paths(X, y, rows, alphas, solver="exact")
    assert fast.solvers == ["lanczos"] * 3 and exact.solvers == ["exact"] * 3
    ev = np.arange(X.shape[0])
    for s, r in enumerate(rows):
        ref = make_pipeline(StandardScaler(), Ridge(alpha=alphas[7])).fit(X[r].astype(np.float64), y[r])
        pe = exact.predict(s, ev)
        np.testing.assert_allclose(pe[7], ref.predict(X[ev].astype(np.float64)), rtol=1e-6, atol=1e-8)
        pf = fast.predict(s, ev)
        spread = np.ptp(pe, axis=1, keepdims=True)
        assert np.max(np.abs(pf - pe) / spread) < rtol
        np.testing.assert_allclose(
            fast.predict(s, ev, alpha_index=3), pf[3], rtol=0, atol=1e-6 * np.ptp(pf[3])
        )
        # the per-split RidgePath in original units predicts the same
        np.testing.assert_allclose(fast.path(s).predict_all(X[:20]), pf[:, :20], rtol=1e-6, atol=1e-6)


def test_lanczos_falls_back_to_exact_when_not_converged():
    X, y, rows = _splits_problem(n=300, d=60, seed=2)
    alphas = np.geomspace(1e-3, 1e3, 10)
    with pytest.warns(RuntimeWarning, match="refitting them with the exact"):
        paths = fit_split_paths(X, y, rows, alphas, solver="lanczos", max_iter=3)
    assert paths.solvers == ["exact"] * 3
    exact = fit_split_paths(X, y, rows, alphas, solver="exact")
    for s in range(3):
        np.testing.assert_allclose(
            paths.predict(s, np.arange(50)), exact.predict(s, np.arange(50)), rtol=1e-8
        )


def test_auto_solver_choice_and_constant_train_feature():
    X, y, rows = _splits_problem(n=200, d=30)
    X[rows[0], 4] = 1.25  # constant on split 0's train rows only
    small = fit_split_paths(X, y, rows, [0.1, 1.0], solver="auto")
    assert small.solvers == ["exact"] * 3
    forced = fit_split_paths(X, y, rows, [0.1, 1.0], solver="auto", exact_max_dim=10)
    assert forced.solvers == ["lanczos"] * 3
    np.testing.assert_allclose(
        forced.predict(0, np.arange(200)), small.predict(0, np.arange(200)), rtol=1e-7, atol=1e-7
    )
    with pytest.raises(ValueError, match="solver"):
        fit_split_paths(X, y, rows, [1.0], solver="cholesky")
