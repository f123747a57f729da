"""A `RidgeModel` built by hand (not from a fit or a saved state) checks its arrays: one length for coef_, mean_ and
scale_, and a finite, positive scale, with messages that name the shapes."""

from __future__ import annotations

import numpy as np
import pytest

from iqa_bench.eval.ridge import RidgeModel


def test_hand_built_model_predicts_from_its_arrays():
    m = RidgeModel(
        coef_=[[1.0, -2.0]], intercept_=np.float32(0.5), mean_=(1.0, 1.0), scale_=[2.0, 0.5], alpha=3
    )
    assert m.coef_.shape == m.mean_.shape == m.scale_.shape == (2,) and m.n_features == 2
    assert type(m.intercept_) is float and type(m.alpha) is float and m.alpha == 3.0
    X = np.array([[3.0, 2.0], [1.0, 1.0]])
    np.testing.assert_allclose(m.predict(X), [(2 / 2) * 1 + (1 / 0.5) * -2 + 0.5, 0.5])
    ints = RidgeModel(coef_=[1, 2], intercept_=1, mean_=[0, 1], scale_=[1, 2], alpha=1)  # integers: float64
    assert ints.coef_.dtype == ints.mean_.dtype == ints.scale_.dtype == np.float64
    np.testing.assert_allclose(ints.predict(np.array([[1.0, 2.0]])), [1 + 2 * 0.5 + 1])
    one = RidgeModel(coef_=2.0, intercept_=0, mean_=0.0, scale_=1.0, alpha=1)  # scalars: one feature
    assert one.n_features == 1 and one.predict([[3.0]]).tolist() == [6.0]


@pytest.mark.parametrize(
    ("coef", "mean", "scale", "shapes"),
    [
        ([1.0, 2.0], [0.0], [1.0, 1.0], r"coef_ \(2,\), mean_ \(1,\) and scale_ \(2,\)"),
        ([1.0, 2.0], [0.0, 0.0], [1.0, 1.0, 1.0], r"coef_ \(2,\), mean_ \(2,\) and scale_ \(3,\)"),
        ([1.0], [0.0, 0.0], [1.0, 1.0], r"coef_ \(1,\), mean_ \(2,\) and scale_ \(2,\)"),
        ([], [], [1.0], r"coef_ \(0,\), mean_ \(0,\) and scale_ \(1,\)"),
    ],
)
def test_lengths_must_match(coef, mean, scale, shapes):
    with pytest.raises(ValueError, match=rf"^RidgeModel: {shapes} must all have the same length$"):
        RidgeModel(coef_=coef, intercept_=0.0, mean_=mean, scale_=scale, alpha=1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, np.nan, -np.inf])
def test_scale_must_be_finite_and_positive(bad):
    with pytest.raises(ValueError, match=r"^RidgeModel: scale_ must be finite and > 0$"):
        RidgeModel(coef_=[1.0, 1.0], intercept_=0.0, mean_=[0.0, 0.0], scale_=[1.0, bad], alpha=1.0)


def test_tiny_positive_scale_and_an_empty_model_are_accepted():
    m = RidgeModel(coef_=[1.0], intercept_=0.0, mean_=[0.0], scale_=[1e-300], alpha=1.0)
    assert m.scale_[0] == 1e-300
    empty = RidgeModel(coef_=[], intercept_=1.5, mean_=[], scale_=[], alpha=1.0)
    assert empty.n_features == 0
