"""eval/ridge.py and ridge_splits.py inputs and solver details the parity tests leave open: how features, targets
and alpha grids are taken (dtypes, torch tensors, messages), `RidgePath`'s defaults and raw-feature fits with small
eigenvalues, and `fit_split_paths`' solver choice, residual check, fallback and bookkeeping."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from iqa_bench.eval import ridge_splits
from iqa_bench.eval.ridge import DEFAULT_ALPHAS, RidgePath, as_features, as_target, check_alphas, fit_ridge
from iqa_bench.eval.ridge_splits import fit_split_paths


def _problem(
    n: int, d: int, seed: int = 0, scale: float = 1.0, shift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, d), y (n,)): features of mixed scales, times `scale` around `shift * scale`; a linear target."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + shift) * scale
    return X, (X - shift * scale) @ rng.normal(size=d) / scale + rng.normal(size=n)


# ---------------------------------------------------------------------------------------------- as_features
def test_features_keep_float32_and_make_everything_else_float64() -> None:
    x32 = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert as_features(x32).dtype == np.float32
    assert as_features(x32.astype(np.float16)).dtype == np.float32  # half precision: computed in float32
    ints = as_features(np.arange(6).reshape(3, 2))
    assert ints.dtype == np.float64 and ints.tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    fortran = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(3, 2))
    out = as_features(fortran)
    assert out.flags["C_CONTIGUOUS"] and out.dtype == np.float64
    np.testing.assert_array_equal(out, fortran)
    assert as_features([[1.5]]).shape == (1, 1)  # one row and one column is enough


@pytest.mark.parametrize("dtype,expected", [(torch.float16, np.float32), (torch.bfloat16, np.float32)])
def test_half_precision_tensors_become_float32(dtype, expected) -> None:
    t = torch.tensor([[1.0, 2.5], [-3.0, 0.125]], dtype=dtype)
    out = as_features(t)
    assert out.dtype == expected
    np.testing.assert_array_equal(out, t.float().numpy())


def test_tensors_that_require_grad_are_detached() -> None:
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    out = as_features(t)
    assert out.dtype == np.float64 and out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    y = as_target(torch.tensor([1.0, 2.0], requires_grad=True), 2)
    assert y.dtype == np.float64 and y.tolist() == [1.0, 2.0]


def test_feature_shape_messages() -> None:
    with pytest.raises(ValueError, match=r"^X must be 2-D \(N, D\), got shape \(3,\)$"):
        as_features(np.zeros(3))
    with pytest.raises(ValueError, match=r"^features must be 2-D \(N, D\), got shape \(1, 2, 3\)$"):
        as_features(np.zeros((1, 2, 3)), "features")
    for shape in ((0, 3), (3, 0)):
        with pytest.raises(
            ValueError,
            match=rf"^X must have at least one row and one column, got shape \({shape[0]}, {shape[1]}\)$",
        ):
            as_features(np.zeros(shape))


def test_targets_are_float64_with_one_value_per_row() -> None:
    y = as_target([1, 2, 3], 3)
    assert y.dtype == np.float64 and y.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"^y must have shape \(3,\) to match X, got \(2,\)$"):
        as_target([1.0, 2.0], 3)
    with pytest.raises(ValueError, match=r"^y must have shape \(3,\) to match X, got \(3, 1\)$"):
        as_target(np.zeros((3, 1)), 3)


def test_alpha_grids() -> None:
    a = check_alphas(2)
    assert a.dtype == np.float64 and a.tolist() == [2.0]
    assert check_alphas([1, 1e-300]).tolist() == [1.0, 1e-300]  # any positive value
    for bad in ([1.0, 0.0], [[1.0, 2.0]], [1.0, np.inf], []):
        with pytest.raises(
            ValueError, match=r"^alphas must be a non-empty 1-D sequence of finite values > 0, got "
        ):
            check_alphas(bad)
    with pytest.raises(ValueError, match=r"got \[1\.0, -2\.0\]$"):
        check_alphas([1.0, -2.0])


# ------------------------------------------------------------------------------------------------ RidgePath
def test_path_defaults_to_the_standard_grid_and_standardised_features() -> None:
    path = RidgePath()
    np.testing.assert_array_equal(path.alphas, np.geomspace(1e-3, 1e3, 100))
    np.testing.assert_array_equal(path.alphas, DEFAULT_ALPHAS)
    X, y = _problem(30, 4, scale=50.0)
    path.fit(X, y)
    np.testing.assert_allclose(path.scale_, X.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        path.predict(X, alpha_index=40), fit_ridge(X, y, DEFAULT_ALPHAS[40]).predict(X), rtol=1e-9
    )


@pytest.mark.parametrize("n,d", [(40, 6), (6, 6), (5, 12)])  # primal, square, dual
def test_raw_path_with_small_eigenvalues_equals_sklearn(n, d) -> None:
    """Features of scale 1e-3 (L2-normalised-like): Gram eigenvalues far below 1, where a floor other than 0 on
    the eigenvalues would show; intercepts on raw features include the mean term, also off the grid."""
    X, y = _problem(n, d, seed=n + d, scale=1e-3, shift=2.0)
    alphas = np.array([1e-7, 1e-5, 1e-3])
    path = RidgePath(alphas, standardize=False).fit(X, y)
    for i, a in enumerate(alphas):
        ref = Ridge(alpha=a).fit(X, y)
        np.testing.assert_allclose(
            path.coef_path_[i], ref.coef_, rtol=1e-6, atol=1e-8 * np.abs(ref.coef_).max()
        )
        assert path.intercept_path_[i] == pytest.approx(ref.intercept_, rel=1e-8, abs=1e-10)
        np.testing.assert_allclose(path.predict(X, alpha_index=i), ref.predict(X), rtol=1e-8, atol=1e-9)
    ref = Ridge(alpha=3e-6).fit(X, y)
    np.testing.assert_allclose(path.predict(X, alpha=3e-6), ref.predict(X), rtol=1e-8, atol=1e-9)
    assert path.model(alpha=3e-6).intercept_ == pytest.approx(ref.intercept_, rel=1e-8, abs=1e-10)
    np.testing.assert_array_equal(path.mean_, np.zeros(d))  # raw features: no shift at prediction time


# ------------------------------------------------------------------------------------------ fit_split_paths
def _rows(n: int, sizes: tuple[int, ...], seed: int = 1) -> list[np.ndarray]:
    """Sorted random train rows of the given sizes, one array per split."""
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n, size=k, replace=False)) for k in sizes]


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("solver", ["exact", "lanczos"])
def test_split_paths_on_shifted_float32_features_equal_sklearn(solver, standardize) -> None:
    """float32 features far from 0 (shift 300): the exact solver predicts in float64 (no float32 products on raw
    features), raw-feature paths use the float64 train mean; both solvers equal scikit-learn per split."""
    X, y = _problem(120, 8, seed=3, shift=300.0)
    X = X.astype(np.float32)
    X64 = X.astype(np.float64)
    rows = _rows(120, (80, 70))
    alphas = np.array([1e-2, 1.0, 100.0])
    paths = fit_split_paths(X, y, rows, alphas, solver=solver, standardize=standardize)
    assert paths.solvers == [solver] * 2
    rtol = 1e-9 if solver == "exact" else 2e-5
    for s, r in enumerate(rows):
        for i, a in enumerate(alphas):
            ref = Ridge(alpha=a)
            if standardize:
                mean, std = X64[r].mean(axis=0), X64[r].std(axis=0)
                ref.fit((X64[r] - mean) / std, y[r])
                want = ref.predict((X64 - mean) / std)
            else:
                want = ref.fit(X64[r], y[r]).predict(X64)
            got = paths.predict(s, np.arange(120), alpha_index=i)
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.ptp(want))
            np.testing.assert_allclose(
                paths.predict(s, np.arange(120))[i], got, rtol=0, atol=1e-6 * np.ptp(want)
            )


def test_exact_paths_do_no_lanczos_steps_and_lanczos_paths_count_them() -> None:
    X, y = _problem(200, 12, seed=4)
    rows = _rows(200, (150, 140, 160))
    exact = fit_split_paths(X, y, rows, [0.1, 10.0], solver="exact")
    assert exact.solvers == ["exact"] * 3 and exact.iterations == [0, 0, 0] and len(exact) == 3
    fast = fit_split_paths(X, y, rows, [0.1, 10.0], solver="lanczos")
    assert fast.solvers == ["lanczos"] * 3
    assert all(isinstance(k, int) and 1 <= k <= 12 for k in fast.iterations)


@pytest.mark.parametrize("solver", ["exact", "lanczos"])
def test_train_rows_are_taken_as_integer_indices(solver) -> None:
    """Row indices given as whole floats (e.g. read back from a table) select the same rows as integers."""
    X, y = _problem(50, 6, seed=8)
    rows = _rows(50, (30, 35))
    ints = fit_split_paths(X, y, rows, [0.1, 1.0], solver=solver)
    floats = fit_split_paths(X, y, [r.astype(np.float64) for r in rows], [0.1, 1.0], solver=solver)
    for s in range(2):
        np.testing.assert_array_equal(floats.predict(s, np.arange(50)), ints.predict(s, np.arange(50)))


def test_auto_uses_the_largest_split_and_the_feature_count() -> None:
    X, y = _problem(60, 20, seed=5)
    rows = _rows(60, (8, 14))  # min(largest split 14, D 20) = 14 > 10: Lanczos
    assert fit_split_paths(X, y, rows, [1.0], exact_max_dim=10).solvers == ["lanczos"] * 2
    assert fit_split_paths(X, y, rows, [1.0], exact_max_dim=14).solvers == ["exact"] * 2
    assert fit_split_paths(X[:, :6], y, rows, [1.0], exact_max_dim=10).solvers == ["exact"] * 2  # D 6
    with pytest.raises(ValueError, match=r"^solver must be 'auto', 'exact' or 'lanczos', got 'cg'$"):
        fit_split_paths(X, y, rows, [1.0], solver="cg")


class _Chosen(Exception):
    """Raised by the stand-in solvers: which one `fit_split_paths` called."""


def test_auto_switches_to_lanczos_above_1024_dimensions(monkeypatch) -> None:
    """The default exact_max_dim is 1024: min(train rows, D) = 1024 is exact, 1025 is Lanczos (the solvers
    themselves are replaced: only the choice is tested here)."""

    def chosen(name: str):
        def solver(*args, **kwargs):
            raise _Chosen(name)

        return solver

    monkeypatch.setattr(ridge_splits, "_exact_path", chosen("exact"))
    monkeypatch.setattr(ridge_splits, "lanczos_paths", chosen("lanczos"))
    X = np.ones((1025, 1025), dtype=np.float32)
    y = np.zeros(1025)
    for width, rows, expected in ((1025, 1025, "lanczos"), (1024, 1025, "exact"), (1025, 1024, "exact")):
        with pytest.raises(_Chosen, match=f"^{expected}$"):
            fit_split_paths(X[:, :width], y, [np.arange(rows)], [1.0])


def test_loose_lanczos_tolerance_fails_the_residual_check_and_refits(caplog) -> None:
    """tol 1e-2 stops Lanczos early: the true residual of the smallest alpha (> 1e-4 relative, even for targets
    of scale 1e-8) sends every split to the exact solver, with a log line per split and one warning."""
    X, y = _problem(150, 30, seed=7)
    y = y * 1e-8
    rows = _rows(150, (100, 110))
    alphas = np.geomspace(1e-3, 1e3, 7)
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.ridge_splits"):
        with pytest.warns(RuntimeWarning) as rec:
            paths = fit_split_paths(X, y, rows, alphas, solver="lanczos", tol=1e-2)
    assert [str(w.message) for w in rec] == [
        "Lanczos ridge did not converge for split(s) [0, 1] (ill-conditioned features); refitting them with the "
        "exact eigendecomposition (slower)"
    ]
    assert paths.solvers == ["exact", "exact"] and all(k >= 1 for k in paths.iterations)
    assert [m.split(" (")[0] for m in caplog.messages] == [
        f"Lanczos ridge: split {s} fails the residual check" for s in (0, 1)
    ]
    exact = fit_split_paths(X, y, rows, alphas, solver="exact")
    for s in range(2):
        np.testing.assert_allclose(
            paths.predict(s, np.arange(150)), exact.predict(s, np.arange(150)), rtol=1e-9
        )
    # the default tolerance passes the same check
    assert fit_split_paths(X, y, rows, alphas, solver="lanczos").solvers == ["lanczos", "lanczos"]


def test_exact_split_paths_give_ridge_paths_in_feature_units() -> None:
    """The exact solver's per-split `RidgePath`: the grid, the train mean and std, the same predictions."""
    X, y = _problem(60, 5, seed=9, shift=4.0)
    rows = _rows(60, (40, 45))
    alphas = np.array([0.1, 1.0, 10.0])
    paths = fit_split_paths(X, y, rows, alphas, solver="exact")
    np.testing.assert_array_equal(paths.alphas, alphas)
    for s, r in enumerate(rows):
        path = paths.path(s)
        np.testing.assert_array_equal(path.alphas, alphas)
        np.testing.assert_allclose(path.mean_, X[r].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(path.scale_, X[r].std(axis=0), rtol=1e-12)
        np.testing.assert_allclose(
            path.predict_all(X), paths.predict(s, np.arange(60)), rtol=1e-9, atol=1e-12
        )


def test_lanczos_centres_targets_far_from_zero() -> None:
    """Targets around 1e6 with float32 features: the right-hand side is built from centred targets (a float32
    product of uncentred ones would lose the signal); predictions equal the exact solver's."""
    X, y = _problem(200, 10, seed=10)
    X = X.astype(np.float32)
    y = y + 1e6
    rows = _rows(200, (150, 140))
    alphas = np.array([0.1, 10.0])
    fast = fit_split_paths(X, y, rows, alphas, solver="lanczos")
    exact = fit_split_paths(X, y, rows, alphas, solver="exact")
    assert fast.solvers == ["lanczos"] * 2
    for s in range(2):
        pe = exact.predict(s, np.arange(200))
        np.testing.assert_allclose(fast.predict(s, np.arange(200)), pe, rtol=0, atol=1e-4 * np.ptp(pe))


def test_residual_check_uses_the_smallest_alpha_of_an_unsorted_grid() -> None:
    """A descending grid: the check is made at its smallest alpha (last entry), where tol 1e-2 fails; at the
    largest alpha the early stop would pass unnoticed."""
    X, y = _problem(150, 30, seed=7)
    rows = _rows(150, (100, 110))
    alphas = np.geomspace(1e3, 1e-3, 7)
    with pytest.warns(RuntimeWarning, match="refitting them with the exact"):
        paths = fit_split_paths(X, y, rows, alphas, solver="lanczos", tol=1e-2)
    assert paths.solvers == ["exact", "exact"]


def test_residual_check_is_per_split() -> None:
    """Split 0 has constant train targets (all coefficients exactly 0, zero residual); split 1 stops early at
    tol 1e-2 and fails its own check: only split 1 is refitted."""
    X, y = _problem(150, 30, seed=7)
    rows = _rows(150, (100, 110))
    y[rows[0]] = 3.0
    with pytest.warns(RuntimeWarning, match=r"split\(s\) \[1\]"):
        paths = fit_split_paths(X, y, rows, np.geomspace(1e-3, 1e3, 7), solver="lanczos", tol=1e-2)
    assert paths.solvers == ["lanczos", "exact"]
    np.testing.assert_array_equal(paths.predict(0, np.arange(150)), np.full((7, 150), 3.0))


def test_residual_check_is_relative_to_each_splits_own_targets() -> None:
    """Disjoint splits, targets of scale 1e-6 on split 0's rows and 1 on split 1's: at tol 1e-2 both fail their
    own relative check (split 0 measured against its own small right-hand side, not against both)."""
    X, y = _problem(200, 30, seed=11)
    rows = [np.arange(0, 100), np.arange(100, 200)]
    y[rows[0]] *= 1e-6
    with pytest.warns(RuntimeWarning, match=r"split\(s\) \[0, 1\]"):
        paths = fit_split_paths(X, y, rows, np.geomspace(1e-3, 1e3, 7), solver="lanczos", tol=1e-2)
    assert paths.solvers == ["exact", "exact"]
