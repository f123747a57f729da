"""eval/ridge.py and eval/alpha_grid.py details the parity tests leave open: grid widening steps, path lookups by
alpha value and index bounds, paths built from coefficients, state format, the least-squares fallback."""

from __future__ import annotations

import numpy as np
import pytest

from iqa_bench.eval.alpha_grid import widen_grid
from iqa_bench.eval.ridge import STATE_FORMAT, RidgeModel, RidgePath, fit_ridge

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
