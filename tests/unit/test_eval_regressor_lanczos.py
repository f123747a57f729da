"""eval/regressor.py (saved regressors: metadata, loading errors, item averaging) and eval/lanczos.py (the batched
Gram operator and shifted Lanczos) checked against dense numpy solutions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from iqa_bench.errors import UserError
from iqa_bench.eval.lanczos import BatchedGram, _tridiagonal_solutions, lanczos_paths
from iqa_bench.eval.regressor import (
    REGRESSOR_FORMAT,
    Regressor,
    apply_regressor,
    load_regressor,
    save_regressor,
)
from iqa_bench.eval.ridge import RidgeModel, fit_ridge


# --------------------------------------------------------------------------------------------------- regressor
def _model(d: int = 4, seed: int = 0) -> tuple[RidgeModel, np.ndarray]:
    """A ridge model on `d` random features and the 30 rows it was fitted on."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, d)) * np.arange(1, d + 1) + 2.0
    y = X @ rng.standard_normal(d) + 5.0
    return fit_ridge(X, y, 0.25), X


def _write_raw(path: Path, meta: dict | None, d: int = 3) -> Path:
    """A safetensors file with the regressor's three tensors and the given metadata (None: no metadata)."""
    from safetensors.torch import save_file

    tensors = {k: torch.ones(d, dtype=torch.float64) for k in ("coef", "mean", "scale")}
    save_file(tensors, str(path), metadata=None if meta is None else {"iqa_bench": json.dumps(meta)})
    return path


def test_regressor_properties_defaults_and_types() -> None:
    """Without metadata the scales are [1.0] and there is no crop size; stored values come back as float / int."""
    model, _ = _model()
    bare = Regressor(model)
    assert bare.scales == [1.0] and bare.crop_size is None
    typed = Regressor(model, {"scales": [1, "0.5"], "crop_size": "224"})
    assert typed.scales == [1.0, 0.5] and all(type(s) is float for s in typed.scales)
    assert typed.crop_size == 224 and type(typed.crop_size) is int


def test_saved_metadata_file_and_round_trip(tmp_path: Path) -> None:
    """Both files carry the format, intercept, alpha, the caller's metadata and the model's feature count (which
    wins over a stale one in `meta`); values JSON cannot hold are written as text; arrays come back exactly."""
    model, X = _model(d=5)
    out = tmp_path / "deep" / "r.safetensors"
    out.parent.mkdir()
    meta = {"scales": [1.0], "method": "arniqa", "ckpt": Path("/runs/a.ckpt"), "feature_dim": 99}
    assert save_regressor(out, model, meta) == out
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["format"] == REGRESSOR_FORMAT == "iqa_bench.regressor/1"
    assert side["intercept"] == model.intercept_ and side["alpha"] == 0.25
    assert side["feature_dim"] == 5 and side["method"] == "arniqa" and side["ckpt"] == "/runs/a.ckpt"
    from safetensors import safe_open

    with safe_open(str(out), framework="numpy") as fh:
        assert json.loads(fh.metadata()["iqa_bench"]) == side
    reg = load_regressor(str(out))
    assert reg.meta == side and reg.model.alpha == 0.25 and reg.model.intercept_ == model.intercept_
    for name in ("coef_", "mean_", "scale_"):
        np.testing.assert_array_equal(getattr(reg.model, name), getattr(model, name))
    np.testing.assert_array_equal(reg.predict(X), model.predict(X))


def test_saving_a_non_contiguous_model(tmp_path: Path) -> None:
    """Strided coefficient arrays (views) are written as their values."""
    model, X = _model(d=3)
    strided = RidgeModel(
        coef_=np.stack([model.coef_, model.coef_], axis=1)[:, 0],
        intercept_=model.intercept_,
        mean_=np.stack([model.mean_, model.mean_], axis=1)[:, 1],
        scale_=np.stack([model.scale_, model.scale_], axis=1)[:, 0],
        alpha=model.alpha,
    )
    assert not strided.coef_.flags.c_contiguous
    reg = load_regressor(save_regressor(tmp_path / "s.safetensors", strided, {}))
    np.testing.assert_array_equal(reg.predict(X), model.predict(X))


def test_load_refuses_what_is_not_a_regressor(tmp_path: Path) -> None:
    """A folder is 'not found'; a file without our metadata, of another format, or missing a key is refused with
    the path, the exception type and its message."""
    with pytest.raises(UserError, match=r"^regressor: file not found: .*adir$"):
        (tmp_path / "adir").mkdir()
        load_regressor(tmp_path / "adir")
    no_meta = _write_raw(tmp_path / "plain.safetensors", None)
    with pytest.raises(
        UserError, match=r"^regressor: .*plain\.safetensors is not an iqa_bench regressor \(KeyError"
    ):
        load_regressor(no_meta)
    other = _write_raw(tmp_path / "other.safetensors", {"format": "x/2", "intercept": 0, "alpha": 1})
    with pytest.raises(UserError, match=r"\(ValueError: unknown format 'x/2'\)$"):
        load_regressor(other)
    unnamed = _write_raw(tmp_path / "unnamed.safetensors", {"intercept": 0, "alpha": 1})
    with pytest.raises(UserError, match=r"unknown format None"):
        load_regressor(unnamed)
    no_alpha = _write_raw(tmp_path / "na.safetensors", {"format": REGRESSOR_FORMAT, "intercept": 0})
    with pytest.raises(UserError, match=r"\(KeyError: 'alpha'\)"):
        load_regressor(no_alpha)
    with pytest.raises(UserError) as info:
        load_regressor(other)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_loaded_numbers_are_floats(tmp_path: Path) -> None:
    """Intercept and alpha stored as JSON text or integers come back as floats."""
    path = _write_raw(
        tmp_path / "t.safetensors", {"format": REGRESSOR_FORMAT, "intercept": "2.5", "alpha": 3}
    )
    reg = load_regressor(path)
    assert reg.model.intercept_ == 2.5 and type(reg.model.intercept_) is float
    assert reg.model.alpha == 3.0 and type(reg.model.alpha) is float
    np.testing.assert_allclose(reg.predict(np.zeros((2, 3))), [2.5 - 3.0, 2.5 - 3.0])


def test_item_averaging_order_and_shape_check() -> None:
    """Rows are averaged per item, items in sorted id order whatever the row order; ids of another shape are
    refused naming both shapes; a bare RidgeModel works like a Regressor."""
    model, X = _model()
    pred = model.predict(X[:6])
    ids = np.array([7, 2, 7, 5, 2, 7])
    want = [pred[[1, 4]].mean(), pred[3], pred[[0, 2, 5]].mean()]
    np.testing.assert_allclose(apply_regressor(model, X[:6], ids), want, rtol=1e-12)
    np.testing.assert_allclose(Regressor(model).predict_items(X[:6], list(ids)), want, rtol=1e-12)
    np.testing.assert_array_equal(Regressor(model).predict_items(X[:6]), pred)
    labels = np.array(["b", "a", "b", "c", "a", "b"])
    np.testing.assert_allclose(
        apply_regressor(model, X[:6], labels), want[:1] + [pred[[0, 2, 5]].mean(), pred[3]]
    )
    with pytest.raises(ValueError, match=r"item_ids must have shape \(6,\), got \(5,\)"):
        apply_regressor(model, X[:6], ids[:5])
    with pytest.raises(ValueError, match=r"got \(3, 2\)"):
        apply_regressor(model, X[:6], ids.reshape(3, 2))


# ----------------------------------------------------------------------------------------------------- lanczos
def _gram_problem(n: int = 40, d: int = 7, k: int = 3, dtype: type = np.float64, seed: int = 0):
    """Xp, train masks (n, k), per-split mean/sd (d, k) and the dense standardised train rows of each split."""
    rng = np.random.default_rng(seed)
    Xp = (rng.standard_normal((n, d)) * rng.uniform(0.5, 2, d) + rng.normal(0, 1, d)).astype(dtype)
    masks = (rng.uniform(size=(n, k)) < 0.7).astype(np.float64)
    X64 = Xp.astype(np.float64)
    # any centre, not only the train mean (with the exact mean the centring term of op() cancels out)
    mu = np.stack([X64[masks[:, s] > 0].mean(0) + 0.3 * (s + 1) for s in range(k)], axis=1)
    sd = np.stack([X64[masks[:, s] > 0].std(0) for s in range(k)], axis=1)
    Z = [(X64[masks[:, s] > 0] - mu[:, s]) / sd[:, s] for s in range(k)]
    return Xp, masks, mu, sd, Z


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_batched_gram_is_the_gram_matrix_of_each_split(dtype: type, rtol: float) -> None:
    """op(V, cols) = Z_s^T Z_s v_s and rmatvec(P, cols) = Z_s^T p_s for a subset of the splits, in float64."""
    Xp, masks, mu, sd, Z = _gram_problem(dtype=dtype)
    op = BatchedGram(Xp, masks, mu, sd)
    rng = np.random.default_rng(1)
    cols = np.array([2, 0])
    V = rng.standard_normal((Xp.shape[1], 2))
    out = op(V, cols)
    assert out.shape == (Xp.shape[1], 2) and out.dtype == np.float64
    for j, s in enumerate(cols):
        np.testing.assert_allclose(out[:, j], Z[s].T @ (Z[s] @ V[:, j]), rtol=rtol, atol=rtol * 10)
    P = rng.standard_normal((Xp.shape[0], 2)) * masks[:, cols]
    back = op.rmatvec(P, cols)
    assert back.dtype == np.float64
    for j, s in enumerate(cols):
        np.testing.assert_allclose(back[:, j], Z[s].T @ P[masks[:, s] > 0, j], rtol=rtol, atol=rtol * 10)


def test_tridiagonal_solutions_solve_every_shift() -> None:
    """Columns solve (T + shift I) y = beta0 e1, for a 1x1 and a 4x4 tridiagonal T."""
    shifts = np.array([0.0, 0.5, 3.0])
    one = _tridiagonal_solutions(np.array([2.0]), np.array([]), shifts, 3.0)
    np.testing.assert_allclose(one, [[3.0 / 2.0, 3.0 / 2.5, 3.0 / 5.0]])
    a, b = np.array([4.0, 3.0, 5.0, 2.5]), np.array([1.0, -0.5, 0.7])
    T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
    Y = _tridiagonal_solutions(a, b, shifts, 2.0)
    assert Y.shape == (4, 3)
    for j, sh in enumerate(shifts):
        np.testing.assert_allclose(Y[:, j], np.linalg.solve(T + sh * np.eye(4), [2.0, 0, 0, 0]), rtol=1e-12)


def _lanczos_case(d: int = 12, k: int = 3, seed: int = 0):
    Xp, masks, mu, sd, Z = _gram_problem(n=80, d=d, k=k, seed=seed)
    rng = np.random.default_rng(seed + 5)
    rhs = rng.standard_normal((d, k))
    return BatchedGram(Xp, masks, mu, sd), rhs, Z


def test_lanczos_paths_solve_every_alpha_of_every_split() -> None:
    """Each split's (A, D) coefficients solve (Z_s^T Z_s + alpha I) w = rhs_s; an all-zero right-hand side gives
    zeros without a step; the other splits stop within D steps."""
    op, rhs, Z = _lanczos_case()
    rhs[:, 1] = 0.0
    rhs[:, 2] *= 1e-3 / np.linalg.norm(rhs[:, 2])  # a small right-hand side is still solved
    alphas = np.array([10.0, 0.01, 1.0])  # unsorted: the smallest alpha is the base shift
    coefs, steps = lanczos_paths(op, rhs, alphas, 1e-11, 500)
    assert steps[1] == 0 and np.array_equal(coefs[1], np.zeros((3, 12)))
    for s in (0, 2):
        assert coefs[s].shape == (3, 12) and 1 <= steps[s] <= 12
        G = Z[s].T @ Z[s]
        for i, a in enumerate(alphas):
            exact = np.linalg.solve(G + a * np.eye(12), rhs[:, s])
            np.testing.assert_allclose(coefs[s][i], exact, rtol=1e-8, atol=1e-9 * np.abs(exact).max())


def test_lanczos_tolerance_sets_the_residual_and_step_count() -> None:
    """A loose tolerance stops earlier with a residual of the smallest alpha near (below) it; a tight one goes on."""
    op, rhs, Z = _lanczos_case(d=30, k=1, seed=3)
    alphas = np.array([0.1, 1.0])
    loose, n_loose = lanczos_paths(op, rhs, alphas, 1e-2, 500)
    tight, n_tight = lanczos_paths(op, rhs, alphas, 1e-10, 500)
    assert n_loose[0] < n_tight[0]
    G = Z[0].T @ Z[0]
    for coefs, tol in ((loose, 1e-2), (tight, 1e-10)):
        for i, a in enumerate(alphas):
            res = np.linalg.norm(rhs[:, 0] - (G + a * np.eye(30)) @ coefs[0][i]) / np.linalg.norm(rhs[:, 0])
            assert res <= 10 * tol
    res_loose = np.linalg.norm(rhs[:, 0] - (G + 0.1 * np.eye(30)) @ loose[0][0]) / np.linalg.norm(rhs[:, 0])
    assert res_loose > 1e-8  # it really stopped early


def test_lanczos_invariant_subspace_stops_at_breakdown() -> None:
    """A right-hand side in a 2-dimensional invariant subspace is solved exactly after 2 steps (beta = 0)."""
    d = 6
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    Xp = np.diag(np.sqrt(eig)) @ Q.T  # Gram matrix Q diag(eig) Q^T (no centring: mu 0, sd 1)
    op = BatchedGram(Xp, np.ones((d, 1)), np.zeros((d, 1)), np.ones((d, 1)))
    rhs = (Q[:, 1] + 3 * Q[:, 4])[:, None]
    coefs, steps = lanczos_paths(op, rhs, np.array([0.5]), 1e-30, 100)
    assert steps == [2]
    np.testing.assert_allclose(coefs[0][0], Q[:, 1] / 2.5 + 3 * Q[:, 4] / 16.5, rtol=1e-10, atol=1e-12)


def test_lanczos_steps_are_capped_by_max_iter_and_the_dimension() -> None:
    """With max_iter above D at most D steps are taken; a cap below what convergence needs leaves the split
    unsolved (None) after exactly max_iter steps."""
    op, rhs, _ = _lanczos_case(d=12, k=1, seed=4)
    alphas = np.array([1e-6])
    _, steps = lanczos_paths(op, rhs, alphas, 1e-30, 500)
    assert steps == [12]
    coefs, steps = lanczos_paths(op, rhs, alphas, 1e-30, 4)
    assert coefs == [None] and steps == [4]


def test_lanczos_gives_up_on_a_split_that_converges_too_slowly(caplog: pytest.LogCaptureFixture) -> None:
    """After 60 steps a split whose observed rate cannot reach `tol` within `max_iter` is abandoned (None) and
    named in an INFO line; a well-conditioned split of the same batch still converges."""
    d = 150
    rng = np.random.default_rng(0)
    eig = np.geomspace(1e-6, 1e6, d)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    Xp = np.diag(np.sqrt(eig)) @ Q.T
    mu, sd = np.zeros((d, 2)), np.ones((d, 2))
    op = BatchedGram(Xp, np.ones((d, 2)), mu, sd)
    rhs = np.stack([Q @ rng.standard_normal(d), Q[:, -1]], axis=1)
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.lanczos"):
        coefs, steps = lanczos_paths(op, rhs, np.array([1e-9]), 1e-14, 120)
    assert coefs[0] is None and 60 <= steps[0] < 120
    assert coefs[1] is not None and steps[1] == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("Lanczos ridge: split 0 converges too slowly (residual ")
    assert lines[0].endswith(f"after {steps[0]} steps)")


def _two_speed_problem() -> tuple[BatchedGram, np.ndarray]:
    """Split 0: eigenvalues 1e-6 .. 1e6 (hopeless at tol 1e-12); split 1: eigenvalues 1 .. 100 (73 steps)."""
    d = 120
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    hard = np.diag(np.sqrt(np.geomspace(1e-6, 1e6, d))) @ Q.T
    easy = np.diag(np.sqrt(np.linspace(1, 100, d))) @ Q.T
    masks = np.zeros((2 * d, 2))
    masks[:d, 0] = masks[d:, 1] = 1
    op = BatchedGram(np.vstack([hard, easy]), masks, np.zeros((d, 2)), np.ones((d, 2)))
    return op, np.stack([Q @ rng.standard_normal(d), Q @ rng.standard_normal(d)], axis=1)


def test_lanczos_keeps_a_slow_split_that_can_finish_and_drops_one_that_cannot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The rate check extrapolates the residual: a split that needs ~73 steps is kept with max_iter 100 (even
    when the split before it in the batch is given up in the same step) and solves its system; with max_iter 65
    it is given up early, well before the cap, with its own INFO line."""
    op, rhs = _two_speed_problem()
    alphas = np.array([0.0, 1.0])
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.lanczos"):
        coefs, steps = lanczos_paths(op, rhs, alphas, 1e-12, 100)
    assert coefs[0] is None and coefs[1] is not None and steps[0] < steps[1] < 100
    G = op(np.eye(120), np.ones(120, dtype=int))  # split 1's Gram matrix, column by column
    for i, a in enumerate(alphas):
        r = rhs[:, 1] - (G + a * np.eye(120)) @ coefs[1][i]
        assert np.linalg.norm(r) <= 1e-10 * np.linalg.norm(rhs[:, 1])
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "Lanczos ridge: split 0 converges too slowly"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.lanczos"):
        coefs, short = lanczos_paths(op, rhs, alphas, 1e-12, 65)
    assert coefs == [None, None] and max(short) < 65
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "Lanczos ridge: split 0 converges too slowly",
        "Lanczos ridge: split 1 converges too slowly",
    ]
