"""eval/ridge.py, ridge_splits.py and alpha_grid.py details the parity tests leave open: grid widening steps, path lookups by
alpha value and index bounds, paths built from coefficients, state format, the least-squares fallback."""

from __future__ import annotations

import numpy as np
import pytest

from iqa_bench.errors import UserError
from iqa_bench.eval.alpha_grid import check_policy, edge_message, select_alpha, widen_grid
from iqa_bench.eval.ridge import STATE_FORMAT, RidgeModel, RidgePath, fit_ridge, standardisation
from iqa_bench.eval.ridge_splits import _normalise_with_stats

ALPHAS = np.array([1e-3, 0.05, 1.0, 30.0, 1e3])


def _problem(n: int = 40, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d)
    return X, X @ rng.normal(size=d) + rng.normal(size=n)


@pytest.mark.parametrize(
    "alphas,side,expected",
    [
        ([1.0], "high", [1.0, 10.0, 100.0, 1e3]),  # one alpha: a decade per step
        ([1.0, 100.0], "high", [1.0, 100.0, 1e4, 1e6]),  # two alphas: their own spacing, 3 decades -> 2 steps
        ([1.0, 1e3, 1e6], "high", [1.0, 1e3, 1e6, 1e9]),  # exactly 3 decades: one step (not 2 by rounding)
        ([1.0, 10.0, 100.0], "low", [1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0]),  # below the smallest, ascending
    ],
)
def test_widen_grid_adds_three_decades_at_the_grid_spacing(alphas, side, expected):
    np.testing.assert_allclose(widen_grid(np.array(alphas), side), expected, rtol=1e-12)


def test_path_lookup_by_value_and_negative_index():
    X, y = _problem()
    path = RidgePath(ALPHAS).fit(X, y)
    np.testing.assert_array_equal(path.predict(X, alpha_index=-5), path.predict(X, alpha_index=0))
    with pytest.raises(IndexError, match=r"^alpha_index 5 out of range for 5 alphas$"):
        path.predict(X, alpha_index=5)
    with pytest.raises(ValueError, match=r"^give exactly one of alpha_index and alpha$"):
        path.predict(X, alpha_index=0, alpha=1.0)
    m = path.model(alpha=0.3)  # an off-grid value gives a model with that alpha
    assert m.alpha == 0.3
    np.testing.assert_allclose(m.predict(X), fit_ridge(X, y, 0.3).predict(X), rtol=1e-9)


def test_path_from_coefficients_predicts_grid_alphas_only():
    X, y = _problem()
    fitted = RidgePath(ALPHAS).fit(X, y)
    path = RidgePath.from_coefs(
        ALPHAS, fitted.coef_path_, fitted.intercept_path_, fitted.mean_, fitted.scale_
    )
    np.testing.assert_array_equal(path.predict(X, alpha=1.0), fitted.predict(X, alpha_index=2))
    # 1e-3 * (1 + 1e-7) is not a grid value (the lookup tolerance is 1e-12 relative, no absolute one)
    with pytest.raises(ValueError, match=r"alpha 0\.0010000001 is not on the grid of this path"):
        path.predict(X, alpha=1e-3 * (1 + 1e-7))
    with pytest.raises(ValueError, match=r"^coef_path must be \(A, D\) = \(5, 5\)$"):
        RidgePath.from_coefs(
            ALPHAS, fitted.coef_path_[:4], fitted.intercept_path_, fitted.mean_, fitted.scale_
        )


def test_model_state_format_and_feature_count_message():
    X, y = _problem()
    m = fit_ridge(X, y, 0.5)
    state = m.to_state()
    assert state["format"] == STATE_FORMAT
    legacy = {
        k: v for k, v in state.items() if k != "format"
    }  # a state without a format loads as the current one
    np.testing.assert_array_equal(RidgeModel.from_state(legacy).predict(X), m.predict(X))
    with pytest.raises(ValueError, match=r"^X has 3 features, the model was fitted on 5$"):
        m.predict(X[:, :3])


def test_numerically_singular_system_falls_back_to_least_squares():
    """Duplicated features with a vanishing alpha: Cholesky fails, least squares gives the OLS fit."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    X = np.hstack([X, 3 * X[:, :2]])
    y = rng.normal(size=30)
    m = fit_ridge(X, y, 1e-300, standardize=False)
    design = np.hstack([X, np.ones((30, 1))])
    ols = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(m.predict(X), ols, rtol=1e-8, atol=1e-8)


def test_unfitted_path_says_so():
    with pytest.raises(RuntimeError, match=r"^RidgePath is not fitted; call fit\(X, y\) first$"):
        RidgePath(ALPHAS).predict(np.zeros((2, 3)), alpha_index=0)


def test_standardisation_constant_rule():
    """All-zero and constant columns get scale 1; a column with a tiny but real spread keeps its std."""
    rng = np.random.default_rng(2)
    X = np.column_stack(
        [
            np.zeros(30),  # variance exactly 0 with mean 0: `var <= tol` must hold at equality
            np.full(30, 7.5),
            1e-5 * rng.normal(size=30),  # var ~ 1e-10: real, not rounding
            1e3 + 1e-6 * rng.normal(size=30),  # var ~ 1e-12 around a large mean: still real
        ]
    )
    mean, scale = standardisation(X)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-12)
    assert scale[0] == scale[1] == 1.0
    np.testing.assert_allclose(scale[2:], X[:, 2:].std(axis=0), rtol=1e-6)


# ---------------------------------------------------------------------------------------- alpha selection
def test_select_alpha_ignores_nan_and_falls_back_to_the_largest_alpha():
    alphas = np.array([0.1, 1.0, 10.0])
    best, med = select_alpha(np.array([[np.nan, 0.5, 0.7], [np.nan, 0.6, 0.4]]), alphas)
    assert best == 1 and np.isnan(med[0]) and med[1:].tolist() == pytest.approx([0.55, 0.55])  # tie -> first
    with pytest.warns(
        RuntimeWarning, match=r"^val SRCC is undefined for every alpha .*using the largest alpha$"
    ):
        best, med = select_alpha(np.full((2, 3), np.nan), np.array([1.0, 10.0, 0.1]))
    assert best == 1 and np.isnan(med).all()  # the largest alpha, wherever it sits in the grid


def test_edge_message_and_policy_errors_name_everything():
    alphas = np.array([1e-3, 1.0, 1e3])
    assert edge_message("LIVE: ", ["low", "high"], alphas, 2) == (
        "LIVE: the best median val SRCC is reached at the smallest alpha 0.001 and largest alpha 1e+03 of the "
        "alpha grid [0.001, 1e+03] after widening it 2 time(s), so the grid may not bracket the optimum; set "
        "evaluator.alpha_min/alpha_max (or evaluator.max_widen)"
    )
    assert "after widening" not in edge_message("", ["high"], alphas, 0)
    with pytest.raises(
        UserError, match=r"^evaluator.grid_edge must be one of \['widen', 'error', 'warn'\], got 'x'$"
    ):
        check_policy("x", 3)
    with pytest.raises(UserError, match=r"^evaluator.max_widen must be >= 0, got -1$"):
        check_policy("widen", -1)


# ------------------------------------------------------------------------------------- split statistics
@pytest.mark.parametrize("chunk", [7, 1024])
def test_split_statistics_in_chunks(chunk):
    """`_normalise_with_stats` against direct numpy: global shift/spread, per-split train moments, any chunk."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 4)) * [1.0, 5.0, 0.1, 2.0] + [0.0, 3.0, -1.0, 10.0]
    X[:, 3] = 10.0  # constant column: spread 1
    X[:20, 1] = 4.0  # constant on the rows of split 0 only
    masks = np.zeros((50, 3))
    masks[:20, 0] = 1
    masks[10:45, 1] = 1
    masks[::2, 2] = 1
    Xp, shift, spread, mu, sd = _normalise_with_stats(X, masks, chunk=chunk)
    np.testing.assert_allclose(shift, X.mean(axis=0), rtol=1e-12)
    expected_spread = X.std(axis=0)
    expected_spread[3] = 1.0
    np.testing.assert_allclose(spread, expected_spread, rtol=1e-10)
    np.testing.assert_allclose(Xp, (X - shift) / spread, rtol=1e-10, atol=1e-12)
    assert mu.shape == sd.shape == (4, 3)
    for s in range(3):
        rows = X[masks[:, s] > 0]
        np.testing.assert_allclose(mu[:, s], (rows.mean(axis=0) - shift) / spread, rtol=1e-9, atol=1e-12)
        std = np.where(rows.std(axis=0) > 0, rows.std(axis=0), 1.0)
        np.testing.assert_allclose(sd[:, s], std / spread, rtol=1e-9)
    assert sd[1, 0] == pytest.approx(1.0 / spread[1])  # constant on split 0's rows: original-unit scale 1
