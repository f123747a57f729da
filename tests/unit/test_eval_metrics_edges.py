"""eval/metrics.py edges: exact messages, the [-1, 1] clip at rounding level, the logistic's formula and Jacobian,
the fit's starts, fallbacks and warning, and the size boundaries of `all_metrics` and `srcc_rows`."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from iqa_bench.eval import metrics
from iqa_bench.eval.metrics import (
    LogisticFitWarning,
    all_metrics,
    as_vector,
    krcc,
    logistic4,
    logistic4_fit,
    plcc,
    plcc_logistic,
    srcc,
    srcc_rows,
)


def _noisy(seed: int = 0, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    return x, np.tanh(1.5 * x) + 0.1 * rng.normal(size=n)


# ------------------------------------------------------------------------------------------ inputs
def test_messages_name_the_argument_and_the_values() -> None:
    with pytest.raises(ValueError, match=re.escape("feat must be 1-D, got shape (2, 3)")):
        as_vector(np.ones((2, 3)), "feat")
    with pytest.raises(ValueError, match=re.escape("feat needs at least 4 values, got 3")):
        as_vector([1.0, 2.0, 3.0], "feat", min_len=4)
    with pytest.raises(ValueError, match=re.escape("feat contains NaN/inf (first at index 2)")):
        as_vector([1.0, 2.0, -np.inf, np.nan], "feat")
    with pytest.raises(ValueError, match=re.escape("pred and target must have the same length, got 4 and 3")):
        plcc([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=re.escape("pred needs at least 2 values, got 1")):
        srcc([1.0], [1.0])
    with pytest.raises(ValueError, match=re.escape("pred needs at least 3 values, got 2")):
        plcc_logistic([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=re.escape("target needs at least 3 values, got 2")):
        plcc_logistic([1.0, 2.0, 3.0], [1.0, 1.0])  # checked before the constant test
    with pytest.raises(ValueError, match=re.escape("pred needs at least 3 values, got 2")):
        plcc_logistic([1.0, 1.0], [1.0, 2.0])


def test_vectors_are_float64_and_one_value_is_enough_by_default() -> None:
    a = as_vector([3], "x")
    assert a.dtype == np.float64 and a.tolist() == [3.0]
    with pytest.raises(ValueError, match="at least 1 values, got 0"):
        as_vector([], "x")
    t = torch.tensor([0.1, 0.2], dtype=torch.float32, requires_grad=True)
    assert as_vector(t, "x").tolist() == [float(np.float32(0.1)), float(np.float32(0.2))]
    # two points are enough for the rank and linear correlations
    assert srcc([1.0, 2.0], [3.0, 5.0]) == pytest.approx(1.0) and plcc(
        [1.0, 2.0], [5.0, 3.0]
    ) == pytest.approx(-1.0)
    assert krcc([1.0, 2.0], [3.0, 5.0]) == pytest.approx(1.0)


def test_first_equals_last_is_not_constant() -> None:
    # the first and last values are equal, the middle one differs: a real correlation
    assert plcc([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) == pytest.approx(1.0)
    assert srcc([0.0, 1.0, 0.0], [0.0, 5.0, 1.0]) == pytest.approx(
        np.corrcoef([1.5, 3, 1.5], [1, 3, 2])[0, 1]
    )
    assert krcc([1.0, 2.0, 1.0], [1.0, 2.0, 0.5]) > 0
    assert np.isfinite(plcc_logistic([1.0, 3.0, 1.0, 2.0], [1.0, 2.0, 1.5, 0.0]))
    assert np.isnan(srcc_rows(np.array([[1.0, 2.0, 3.0]]), np.array([4.0, 4.0, 4.0]))[0])
    # ranks (1, 3, 2) against (1.5, 3, 1.5): r = 1.5 / (sqrt(2) sqrt(1.5)) = sqrt(3) / 2
    assert srcc_rows(np.array([[1.0, 3.0, 2.0]]), np.array([4.0, 5.0, 4.0]))[0] == pytest.approx(
        np.sqrt(3) / 2
    )
    assert srcc_rows(np.array([[4.0, 5.0, 4.0]]), np.array([1.0, 3.0, 2.0]))[0] == pytest.approx(
        np.sqrt(3) / 2
    )


# ------------------------------------------------------------------------------------------ [-1, 1]
def test_correlations_of_a_perfect_relation_are_exactly_one() -> None:
    # unclipped, these products round to 1 + 2**-52 and -1 - 2**-52
    x = np.random.default_rng(7).normal(size=7)
    assert plcc(x, 3.0 * x) == 1.0 and plcc(x, -3.0 * x) == -1.0
    r = np.arange(17, dtype=float)
    got = srcc_rows(np.stack([r, r[::-1]]), r)
    assert got[0] == 1.0 and got[1] == -1.0


def test_huge_and_tiny_scales_keep_the_correlation() -> None:
    x, y = _noisy(1)
    ref = plcc(x, y)
    assert plcc(x * 1e300, y) == pytest.approx(ref, abs=1e-12)
    assert plcc(x * 1e-300, y * 1e-300) == pytest.approx(ref, abs=1e-12)
    ref_l = plcc_logistic(x, y)
    assert plcc_logistic(x * 1e300, y * 1e-300) == pytest.approx(ref_l, abs=1e-6)


# ------------------------------------------------------------------------------------------ srcc_rows
def test_srcc_rows_shapes_and_sizes() -> None:
    t = np.array([1.0, 3.0, 2.0, 5.0])
    with pytest.raises(ValueError, match=re.escape("preds must be (A, 4), got (4,)")):
        srcc_rows(t, t)
    with pytest.raises(ValueError, match=re.escape("preds must be (A, 4), got (2, 3)")):
        srcc_rows(np.ones((2, 3)), t)
    two = srcc_rows(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(two, [1.0, -1.0], rtol=1e-12)  # two items are enough
    assert np.isnan(srcc_rows(np.ones((2, 1)), np.array([1.0]))).all()
    assert srcc_rows(np.empty((0, 4)), t).shape == (0,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant row is nan without a division warning
        out = srcc_rows(np.array([[2.0, 2.0, 2.0, 2.0], [1.0, 3.0, 2.0, 5.0]]), t)
    assert np.isnan(out[0]) and out[1] == pytest.approx(1.0) and out.dtype == np.float64


def test_srcc_rows_gives_nan_and_empty_results_without_a_warning() -> None:
    # a constant target is nan before any division, and no rows is an empty result before any mean
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = srcc_rows(np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]]), np.array([4.0, 4.0, 4.0]))
        assert out.shape == (2,) and np.isnan(out).all()
        assert srcc_rows(np.empty((0, 4)), np.array([1.0, 3.0, 2.0, 5.0])).shape == (0,)


# ------------------------------------------------------------------------------------------ the logistic
def test_logistic4_is_the_vqeg_formula() -> None:
    x = np.array([-2.0, 0.0, 0.3, 4.0])
    b1, b2, b3, b4 = 5.0, 1.0, 0.3, 0.7
    want = (b1 - b2) / (1.0 + np.exp(-(x - b3) / b4)) + b2
    np.testing.assert_allclose(logistic4(x, b1, b2, b3, b4), want, rtol=1e-14)
    np.testing.assert_allclose(logistic4(x, b1, b2, b3, -b4), want, rtol=1e-14)  # the width is |b4|
    # zero width: a step from b2 to b1 at b3, without overflow
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logistic4([-1.0, 0.3, 1.0], 5.0, 1.0, 0.3, 0.0).tolist() == [1.0, 3.0, 5.0]
    assert logistic4([1, 2], 1.0, 0.0, 0.0, 1.0).dtype == np.float64
    # float32 input is computed in float64 too (python-float parameters alone would keep float32)
    x32 = np.array([-2.0, 0.1, 0.3, 4.0], dtype=np.float32)
    x64 = x32.astype(np.float64)
    got = logistic4(x32, b1, b2, b3, b4)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, (b1 - b2) / (1.0 + np.exp(-(x64 - b3) / b4)) + b2, rtol=1e-14)


@pytest.mark.parametrize("b4", [0.8, -0.8])
def test_logistic4_jacobian_matches_finite_differences(b4: float) -> None:
    x = np.linspace(-2.0, 3.0, 9)
    params = np.array([2.0, -1.0, 0.4, b4])
    jac = metrics._logistic4_jac(x, *params)
    assert jac.shape == (9, 4)
    h = 1e-6
    for j in range(4):
        e = np.zeros(4)
        e[j] = h
        num = (logistic4(x, *(params + e)) - logistic4(x, *(params - e))) / (2 * h)
        np.testing.assert_allclose(jac[:, j], num, atol=1e-7)


# ------------------------------------------------------------------------------------------ the fit
def _recording(monkeypatch: pytest.MonkeyPatch, fail: int = 0, result: Any = None) -> list[dict[str, Any]]:
    """Replace curve_fit by a recorder that fails `fail` times, then returns `result` (or the real fit)."""
    calls: list[dict[str, Any]] = []
    real = metrics.optimize.curve_fit

    def fake(f: Any, x: Any, y: Any, **kw: Any) -> Any:
        calls.append({"f": f, **kw})
        if len(calls) <= fail:
            raise RuntimeError(f"failure {len(calls)}\nsecond line")
        if result is not None:
            return np.asarray(result, dtype=float), None
        return real(f, x, y, **kw)

    monkeypatch.setattr(metrics.optimize, "curve_fit", fake)
    return calls


def test_the_fit_starts_at_the_asymptotes_and_falls_back_to_a_narrower_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = _noisy(2)
    z = (y - y.mean()) / y.std()
    calls = _recording(monkeypatch, fail=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second start succeeds: no warning
        params = logistic4_fit(x, y)
    assert len(calls) == 2
    assert calls[0]["p0"] == pytest.approx([z.max(), z.min(), 0.0, 1.0])
    assert calls[1]["p0"] == pytest.approx([z.max(), z.min(), 0.0, 0.25])
    for c in calls:
        assert c["f"] is logistic4 and c["jac"] is metrics._logistic4_jac and c["maxfev"] == 20000
    assert plcc(logistic4(x, *params), y) > plcc(x, y) + 0.01
    calls = _recording(monkeypatch)
    logistic4_fit(x, -y)  # a decreasing relation starts from a decreasing curve
    assert len(calls) == 1 and calls[0]["p0"] == pytest.approx([-z.max(), -z.min(), 0.0, 1.0])


def test_both_starts_failing_warn_once_with_both_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    _recording(monkeypatch, fail=2)
    x, y = _noisy(3)
    with pytest.warns(LogisticFitWarning) as rec:
        params = logistic4_fit(x, y)
    assert len(rec) == 1
    assert str(rec[0].message) == (
        "4-parameter logistic fit failed (failure 1; failure 2); using a linear mapping"
    )
    assert Path(rec[0].filename).name != "metrics.py"  # the warning points at a caller, not at the fit
    np.testing.assert_allclose(logistic4(x, *params), np.polyval(np.polyfit(x, y, 1), x), atol=1e-6)


def test_non_finite_parameters_count_as_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _recording(monkeypatch, result=[1.0, np.nan, 0.0, 1.0])
    x, y = _noisy(4)
    with pytest.warns(LogisticFitWarning, match=re.escape("(non-finite parameters; non-finite parameters)")):
        params = logistic4_fit(x, y)
    assert len(calls) == 2 and np.all(np.isfinite(params))


def test_a_worse_fit_than_the_line_keeps_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _recording(monkeypatch, result=[0.0, 0.0, 0.0, 1.0])  # a flat curve: worse than the line
    x, y = _noisy(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params = logistic4_fit(x, y)
    assert len(calls) == 1  # a converged fit ends the search
    np.testing.assert_allclose(logistic4(x, *params), np.polyval(np.polyfit(x, y, 1), x), atol=1e-6)


def test_three_points_name_the_reason_and_four_points_fit() -> None:
    with pytest.raises(ValueError, match=re.escape("pred needs at least 3 values, got 2")):
        logistic4_fit([0.0, 1.0], [0.0, 2.0])
    with pytest.warns(
        LogisticFitWarning, match=re.escape("fit failed (3 points < 4 parameters); using a linear")
    ):
        logistic4_fit([0.0, 1.0, 3.0], [0.0, 2.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LogisticFitWarning)
        params = logistic4_fit([0.0, 1.0, 2.0, 3.0], [0.0, 0.1, 0.9, 1.0])
    assert params[3] > 0 and np.all(np.isfinite(params))


def test_constant_inputs_map_to_the_mean_target() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = logistic4_fit([2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 6.0])
        np.testing.assert_allclose(logistic4([0.0, 2.0, 9.0], *p), 3.0)
        assert p[3] > 0
        p = logistic4_fit([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0])
        np.testing.assert_allclose(logistic4([0.0, 2.0, 9.0], *p), 5.0)
        assert p[3] > 0


def test_fitted_parameters_come_back_in_the_input_units() -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(10.0, 50.0, 400)
    true = (80.0, 20.0, 30.0, 4.0)
    y = logistic4(x, *true) + rng.normal(0, 0.05, x.size)
    np.testing.assert_allclose(logistic4_fit(x, y), true, rtol=0.01)
    # a decreasing curve (b1 < b2) with a negative fitted width comes back with b4 > 0
    y = logistic4(x, 20.0, 80.0, 30.0, 4.0) + rng.normal(0, 0.05, x.size)
    np.testing.assert_allclose(logistic4_fit(x, y), (20.0, 80.0, 30.0, 4.0), rtol=0.01)


# ------------------------------------------------------------------------------------------ all_metrics
def test_all_metrics_at_two_and_three_points() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        two = all_metrics([1.0, 2.0], [1.0, 3.0])
    assert [two[k] for k in ("srcc", "plcc", "krcc")] == pytest.approx([1.0, 1.0, 1.0])
    assert np.isnan(two["plcc_logistic"])
    with pytest.warns(LogisticFitWarning):
        three = all_metrics([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    assert three["plcc_logistic"] == pytest.approx(abs(three["plcc"]), abs=1e-9)
    const = all_metrics([1.0, 2.0, 3.0], [4.0, 4.0, 4.0])
    assert all(np.isnan(v) for v in const.values())
    assert np.isnan(all_metrics([4.0, 4.0, 4.0], [1.0, 2.0, 3.0])["krcc"])
    x, y = _noisy(6)
    assert all_metrics(x * 1e300, y)["plcc_logistic"] == pytest.approx(plcc_logistic(x, y), abs=1e-6)


def test_logistic_fit_constant_shortcut_depends_on_constancy_not_on_a_unit_spread() -> None:
    """Inputs whose standard deviation is exactly 1 are fitted; a constant whose float mean is not exact is not."""
    p = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])  # mean 0, std exactly 1
    t = np.array([0.1, 0.9, 0.2, 0.8, 0.15, 0.95])
    assert p.std() == 1.0
    b1, b2, _, _ = logistic4_fit(p, t)
    assert b1 != b2 and abs(b1 - b2) > 0.5, "a varying pair gets a varying mapping"
    b1, b2, _, _ = logistic4_fit(t, p)  # the target's std is exactly 1 this time
    assert b1 != b2
    flat = np.full(6, 0.1)  # its float mean is not exactly 0.1, so its std is tiny but not 0
    assert flat.std() > 0
    for pred, target in ((flat, t), (t, flat)):
        b1, b2, _, b4 = logistic4_fit(pred, target)
        assert b1 == b2 == pytest.approx(float(np.mean(target))) and b4 > 0
        assert np.all(logistic4(pred, b1, b2, 0.0, b4) == b1), "a constant input maps to the mean target"
