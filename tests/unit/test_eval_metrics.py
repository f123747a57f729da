"""eval/metrics.py against scipy.stats, plus the 4-parameter logistic mapping."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from iqa_bench.eval import metrics
from iqa_bench.eval.metrics import (
    LogisticFitWarning,
    all_metrics,
    krcc,
    logistic4,
    logistic4_fit,
    plcc,
    plcc_logistic,
    srcc,
    srcc_rows,
)


def _data(seed: int, n: int = 80, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 8, n).astype(float) if ties else rng.normal(size=n)
    b = np.round(a + rng.normal(0, 2, n), 0 if ties else 12)  # ties in both
    return a, b


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [True, False])
def test_correlations_equal_scipy(seed, ties):
    a, b = _data(seed, ties=ties)
    assert srcc(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert krcc(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)  # tau-b
    assert plcc(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-12)
    m = all_metrics(a, b)
    assert set(m) == {"srcc", "plcc", "plcc_logistic", "krcc"}
    assert m["srcc"] == srcc(a, b) and m["plcc"] == plcc(a, b) and m["krcc"] == krcc(a, b)
    assert m["plcc_logistic"] == pytest.approx(plcc_logistic(a, b), abs=1e-12)
    assert all(isinstance(v, float) for v in m.values())


def test_negative_correlation_and_scale_invariance():
    a, b = _data(7, ties=False)
    assert srcc(a, -b) == pytest.approx(-srcc(a, b), abs=1e-12)
    assert plcc(1e8 * a + 3, 1e-8 * b) == pytest.approx(plcc(a, b), abs=1e-10)


def test_accepts_torch_tensors_and_lists():
    a, b = _data(1)
    ref = all_metrics(a, b)
    got = all_metrics(torch.tensor(a, dtype=torch.float32, requires_grad=True), b.tolist())
    for k in ("srcc", "krcc"):
        assert got[k] == pytest.approx(ref[k], abs=1e-12)
    assert got["plcc"] == pytest.approx(ref["plcc"], abs=1e-6)


def test_constant_input_gives_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (srcc, krcc, plcc, plcc_logistic):
            assert np.isnan(f([2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]))
            assert np.isnan(f([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]))
        assert all(np.isnan(v) for v in all_metrics([1, 1, 1], [1, 2, 3]).values())


@pytest.mark.parametrize("f", [srcc, krcc, plcc, plcc_logistic, all_metrics])
def test_bad_input_raises_naming_the_argument(f):
    with pytest.raises(ValueError, match="same length"):
        f([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="pred contains NaN.*index 1"):
        f([1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="target contains NaN.*index 3"):
        f([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, np.inf])
    with pytest.raises(ValueError, match="1-D"):
        f(np.ones((4, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="at least"):
        f([1.0], [2.0])


def test_srcc_rows_matches_srcc_row_by_row():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 5, 40).astype(float)
    P = rng.normal(size=(6, 40))
    P[2] = np.round(P[2])  # ties
    P[4] = 1.0  # constant row
    got = srcc_rows(P, t)
    for i in range(6):
        ref = srcc(P[i], t)
        assert (np.isnan(got[i]) and np.isnan(ref)) or got[i] == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("true", [(5.0, 1.0, 0.5, 0.6), (1.0, 5.0, -0.3, 1.2)])
def test_logistic_fit_recovers_known_parameters(true):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 500)
    y = logistic4(x, *true) + rng.normal(0, 0.02, x.size)
    params = logistic4_fit(x, y)
    assert params.shape == (4,) and params[3] > 0
    np.testing.assert_allclose(params, true, atol=0.05)


def test_logistic_plcc_beats_raw_plcc_on_monotone_nonlinear_relation():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 4, 300)
    y = np.tanh(2 * (x - 2)) + rng.normal(0, 0.05, x.size)  # saturating, like MOS vs a raw score
    assert plcc_logistic(x, y) > plcc(x, y) + 0.03
    assert plcc_logistic(x, y) > 0.98
    # a decreasing relation is fitted by a decreasing logistic: the mapped PLCC is positive
    assert plcc_logistic(x, -y) == pytest.approx(plcc_logistic(x, y), abs=1e-6)
    # the mapping never does worse than a straight line, also on (almost) linear data
    for seed in range(3):
        a, b = _data(seed, ties=False)
        assert plcc_logistic(a, b) >= abs(plcc(a, b)) - 1e-9


def test_logistic_fit_failure_falls_back_to_linear_with_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(metrics.optimize, "curve_fit", broken)
    a, b = _data(5, ties=False)
    with pytest.warns(LogisticFitWarning, match="linear mapping"):
        params = logistic4_fit(a, b)
    assert np.all(np.isfinite(params))
    np.testing.assert_allclose(
        logistic4(a, *params), np.polyval(np.polyfit(a, b, 1), a), atol=1e-6 * np.ptp(b)
    )
    with pytest.warns(LogisticFitWarning):
        assert plcc_logistic(a, b) == pytest.approx(abs(plcc(a, b)), abs=1e-9)


def test_logistic_with_three_points_warns_and_never_raises():
    with pytest.warns(LogisticFitWarning):
        v = plcc_logistic([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    # too few points for 4 parameters: the linear mapping, whose PLCC is |Pearson|
    assert v == pytest.approx(abs(plcc([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])), abs=1e-9)
    assert v == pytest.approx(0.5 / np.sqrt(7 / 3), abs=1e-9)  # Pearson by hand: cov 0.5, var_x 7/3, var_y 1
