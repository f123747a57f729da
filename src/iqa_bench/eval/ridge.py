"""Closed-form ridge regression on standardised features, for one alpha or a whole alpha grid at once.

Conventions (shared by every class here):

* Features are standardised on the training rows: ``z = (x - mean_) / scale_`` with the training mean and
  population std (ddof 0, as scikit-learn's StandardScaler); a feature that is constant on the training rows gets
  ``scale_ = 1``. With ``standardize=False`` the model works on raw features (``mean_ = 0``, ``scale_ = 1``) and
  matches ``sklearn.linear_model.Ridge(alpha)`` exactly (coef_ and intercept_).
* The intercept is not penalised (scikit-learn's ``fit_intercept=True``): coefficients are fitted on centred
  features and targets, and the prediction is ``z @ coef_ + intercept_``.
* Everything is float64 except the optional Lanczos solver of `fit_split_paths`, which streams float32 features
  through float32 matrix products (results within ~1e-5 relative of the exact float64 path, verified per split).

`RidgePath` fits every alpha of a grid from one eigendecomposition (of the D x D Gram matrix when N >= D, of the
N x N kernel matrix otherwise). `fit_split_paths` does that for several train subsets of one feature matrix, the
core of the split protocol; for large problems it runs one shifted Lanczos recursion per split, batched over the
splits, which gives all alphas from a single Krylov space (see docs/evaluator.md).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

__all__ = [
    "DEFAULT_ALPHAS",
    "RidgeModel",
    "RidgePath",
    "SplitRidgePaths",
    "as_features",
    "check_alphas",
    "fit_ridge",
    "fit_split_paths",
    "standardisation",
]

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = np.geomspace(1e-3, 1e3, 100)
STATE_FORMAT = "iqa_bench.ridge/1"
_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------------- helpers
def as_features(X: Any, name: str = "X") -> np.ndarray:
    """Array-like or torch tensor (N, D) -> C-contiguous numpy array, float32 kept as float32 and anything else
    as float64. Does not check finiteness (the protocol does, with row indices)."""
    if hasattr(X, "detach"):
        X = X.detach().cpu()
        X = X.float().numpy() if str(X.dtype) in ("torch.float16", "torch.bfloat16") else X.numpy()
    a = np.asarray(X)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column, got shape {a.shape}")
    dtype = np.float32 if a.dtype in (np.float32, np.float16) else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def _as_target(y: Any, n: int) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    a = np.asarray(y, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match X, got {a.shape}")
    return a


def check_alphas(alphas: Any) -> np.ndarray:
    """Alpha grid -> 1-D float64 array; ValueError unless every alpha is finite and > 0."""
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"alphas must be a non-empty 1-D sequence of finite values > 0, got {alphas!r}")
    return a


def _scale_from_var(var: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """std with scikit-learn's rule for constant features (variance within rounding of 0 -> scale 1)."""
    constant = var <= n * _EPS * var + (n * np.abs(mean) * _EPS) ** 2
    return np.where(constant, 1.0, np.sqrt(var))


def standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), scale (D,)) float64 of the rows of X (N, D): population std, 1 for constant features."""
    mean = X.mean(axis=0, dtype=np.float64)
    var = X.var(axis=0, dtype=np.float64)
    return mean, _scale_from_var(var, mean, X.shape[0])


def _prepare(X: np.ndarray, y: np.ndarray, standardize: bool):
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    scale = standardisation(X)[1] if standardize else np.ones(X.shape[1])
    Xs = (X - mean) / scale
    ybar = float(y.mean())
    return Xs, y - ybar, mean, scale, ybar


# ----------------------------------------------------------------------------------------------- RidgeModel
@dataclass
class RidgeModel:
    """A fitted ridge regressor with its feature standardisation.

    predict(X) = ((X - mean_) / scale_) @ coef_ + intercept_, X (N, D) -> (N,).

    Attributes:
        coef_: (D,) coefficients in standardised units.
        intercept_: the intercept (the training mean of y when standardised).
        mean_, scale_: (D,) training mean and std of the features (0 and 1 with standardize=False).
        alpha: the ridge penalty it was fitted with.
    """

    coef_: np.ndarray
    intercept_: float
    mean_: np.ndarray
    scale_: np.ndarray
    alpha: float

    def __post_init__(self) -> None:
        self.coef_ = np.asarray(self.coef_, dtype=np.float64).reshape(-1)
        self.mean_ = np.asarray(self.mean_, dtype=np.float64).reshape(-1)
        self.scale_ = np.asarray(self.scale_, dtype=np.float64).reshape(-1)
        self.intercept_ = float(self.intercept_)
        self.alpha = float(self.alpha)
        d = self.coef_.size
        if self.mean_.shape != (d,) or self.scale_.shape != (d,):
            raise ValueError(
                f"RidgeModel: coef_ {self.coef_.shape}, mean_ {self.mean_.shape} and scale_ {self.scale_.shape} "
                "must all have the same length"
            )
        if np.any(self.scale_ <= 0) or not np.all(np.isfinite(self.scale_)):
            raise ValueError("RidgeModel: scale_ must be finite and > 0")

    @property
    def n_features(self) -> int:
        return int(self.coef_.size)

    def predict(self, X: Any) -> np.ndarray:
        """X (N, D) -> predictions (N,) float64."""
        X = as_features(X)
        if X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features}")
        return ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def as_linear(self) -> tuple[np.ndarray, float]:
        """(weight (D,), bias) on raw features: predict(X) == X @ weight + bias (e.g. for a torch Linear)."""
        weight = self.coef_ / self.scale_
        return weight, float(self.intercept_ - self.mean_ @ weight)

    def to_state(self) -> dict[str, Any]:
        """Plain dict (numpy arrays and floats, no pickle needed) that `from_state` turns back into this model;
        arrays may be converted to lists (e.g. for JSON) and still load."""
        return {
            "format": STATE_FORMAT,
            "coef": self.coef_.copy(),
            "intercept": self.intercept_,
            "mean": self.mean_.copy(),
            "scale": self.scale_.copy(),
            "alpha": self.alpha,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RidgeModel:
        """Inverse of `to_state`; ValueError naming the missing key or the unknown format."""
        fmt = state.get("format", STATE_FORMAT)
        if fmt != STATE_FORMAT:
            raise ValueError(f"unknown ridge state format {fmt!r} (expected {STATE_FORMAT!r})")
        missing = [k for k in ("coef", "intercept", "mean", "scale", "alpha") if k not in state]
        if missing:
            raise ValueError(f"ridge state lacks key(s) {missing}")
        return cls(
            coef_=np.asarray(state["coef"], dtype=np.float64),
            intercept_=float(np.asarray(state["intercept"])),
            mean_=np.asarray(state["mean"], dtype=np.float64),
            scale_=np.asarray(state["scale"], dtype=np.float64),
            alpha=float(np.asarray(state["alpha"])),
        )


def _solve_spd(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(A, overwrite_a=False, check_finite=False), b)
    except np.linalg.LinAlgError:  # numerically indefinite (huge scales): least squares is still defined
        return np.linalg.lstsq(A, b, rcond=None)[0]


def fit_ridge(X: Any, y: Any, alpha: float, *, standardize: bool = True) -> RidgeModel:
    """Ridge with one alpha (> 0) on X (N, D), y (N,), float64, by a Cholesky solve of the smaller of the primal
    (D x D) and dual (N x N) systems. Standardises on X unless `standardize=False` (then == sklearn Ridge)."""
    X = as_features(X)
    y = _as_target(y, X.shape[0])
    alpha = float(check_alphas(alpha)[0])
    Xs, yc, mean, scale, ybar = _prepare(X, y, standardize)
    n, d = Xs.shape
    if n >= d:
        A = Xs.T @ Xs
        A.flat[:: d + 1] += alpha
        coef = _solve_spd(A, Xs.T @ yc)
    else:
        K = Xs @ Xs.T
        K.flat[:: n + 1] += alpha
        coef = Xs.T @ _solve_spd(K, yc)
    if standardize:
        return RidgeModel(coef, ybar, mean, scale, alpha)
    return RidgeModel(coef, ybar - mean @ coef, np.zeros(d), np.ones(d), alpha)


# ------------------------------------------------------------------------------------------------ RidgePath
class RidgePath:
    """Ridge for a whole alpha grid from one symmetric eigendecomposition, float64.

    With centred (and standardised) training features Z (N, D) and centred targets c, the coefficients are
    w(alpha) = B diag(1 / (lam + alpha)) g, where (lam, B, g) come from the eigendecomposition of Z^T Z (D x D,
    B = eigenvectors, g = B^T Z^T c) when N >= D, or of Z Z^T (N x N, eigenvectors U, B = Z^T U, g = U^T c)
    otherwise. Cost: one Gram matrix and one eigh of size min(N, D); then every alpha is a matrix-vector product.

    Usage: ``path = RidgePath(alphas).fit(X, y)``; ``path.predict(X, alpha_index=3)``, ``path.predict(X,
    alpha=0.1)`` (any alpha > 0 after `fit`), ``path.predict_all(X)`` -> (A, N), ``path.model(alpha_index=3)`` ->
    `RidgeModel`.

    Attributes after fit: alphas (A,), coef_path_ (A, D), intercept_path_ (A,), mean_ (D,), scale_ (D,).
    """

    def __init__(self, alphas: Any = DEFAULT_ALPHAS, *, standardize: bool = True) -> None:
        self.alphas = check_alphas(alphas)
        self.standardize = bool(standardize)
        self._basis: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ybar = 0.0

    # -- fitting
    def fit(self, X: Any, y: Any) -> RidgePath:
        """X (N, D), y (N,) -> self."""
        X = as_features(X)
        y = _as_target(y, X.shape[0])
        Xs, yc, mean, scale, ybar = _prepare(X, y, self.standardize)
        n, d = Xs.shape
        if n >= d:
            lam, V = scipy.linalg.eigh(Xs.T @ Xs, overwrite_a=True, check_finite=False, driver="evd")
            B, g = V, V.T @ (Xs.T @ yc)
        else:
            lam, U = scipy.linalg.eigh(Xs @ Xs.T, overwrite_a=True, check_finite=False, driver="evd")
            B, g = Xs.T @ U, U.T @ yc
        self._basis = (B, g, np.maximum(lam, 0.0))
        self._ybar = ybar
        self._raw_mean = None if self.standardize else mean
        self.mean_ = mean if self.standardize else np.zeros(d)
        self.scale_ = scale
        self.coef_path_ = self._coefs(self.alphas)
        self.intercept_path_ = self._intercepts(self.coef_path_)
        return self

    @classmethod
    def from_coefs(
        cls,
        alphas: Any,
        coef_path: np.ndarray,
        intercept_path: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
    ) -> RidgePath:
        """A fitted path from precomputed coefficients (standardised units); only grid alphas can be predicted."""
        self = cls(alphas)
        self.coef_path_ = np.asarray(coef_path, dtype=np.float64)
        self.intercept_path_ = np.asarray(intercept_path, dtype=np.float64)
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.scale_ = np.asarray(scale, dtype=np.float64)
        if self.coef_path_.shape != (self.alphas.size, self.mean_.size):
            raise ValueError(f"coef_path must be (A, D) = ({self.alphas.size}, {self.mean_.size})")
        return self

    def _coefs(self, alphas: np.ndarray) -> np.ndarray:
        B, g, lam = self._basis  # type: ignore[misc]
        return (B @ (g[:, None] / (lam[:, None] + alphas[None, :]))).T

    def _intercepts(self, coefs: np.ndarray) -> np.ndarray:
        if self._raw_mean is None:
            return np.full(coefs.shape[0], self._ybar)
        return self._ybar - coefs @ self._raw_mean

    # -- prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_path_"):
            raise RuntimeError("RidgePath is not fitted; call fit(X, y) first")

    def _standardised(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = as_features(X)
        if X.shape[1] != self.mean_.size:
            raise ValueError(f"X has {X.shape[1]} features, the path was fitted on {self.mean_.size}")
        return (X - self.mean_) / self.scale_

    def _coef_intercept(self, alpha_index: int | None, alpha: float | None) -> tuple[np.ndarray, float]:
        self._check_fitted()
        if (alpha_index is None) == (alpha is None):
            raise ValueError("give exactly one of alpha_index and alpha")
        if alpha_index is not None:
            i = int(alpha_index)
            if not -self.alphas.size <= i < self.alphas.size:
                raise IndexError(f"alpha_index {i} out of range for {self.alphas.size} alphas")
            return self.coef_path_[i], float(self.intercept_path_[i])
        a = float(check_alphas(alpha)[0])
        hit = np.flatnonzero(np.isclose(self.alphas, a, rtol=1e-12, atol=0))
        if hit.size:
            return self.coef_path_[hit[0]], float(self.intercept_path_[hit[0]])
        if self._basis is None:
            raise ValueError(f"alpha {a} is not on the grid of this path (built from coefficients)")
        coef = self._coefs(np.array([a]))
        return coef[0], float(self._intercepts(coef)[0])

    def predict(self, X: Any, alpha_index: int | None = None, alpha: float | None = None) -> np.ndarray:
        """X (N, D) -> (N,) predictions for grid entry `alpha_index` or for the value `alpha` (any alpha > 0)."""
        coef, intercept = self._coef_intercept(alpha_index, alpha)
        return self._standardised(X) @ coef + intercept

    def predict_all(self, X: Any) -> np.ndarray:
        """X (N, D) -> (A, N) predictions, one row per alpha of the grid."""
        return self.coef_path_ @ self._standardised(X).T + self.intercept_path_[:, None]

    def model(self, alpha_index: int | None = None, alpha: float | None = None) -> RidgeModel:
        """The `RidgeModel` of one alpha (grid index or value)."""
        coef, intercept = self._coef_intercept(alpha_index, alpha)
        a = float(self.alphas[alpha_index]) if alpha_index is not None else float(alpha)  # type: ignore[arg-type]
        return RidgeModel(coef.copy(), intercept, self.mean_.copy(), self.scale_.copy(), a)


# ---------------------------------------------------------------------------------- paths for many splits
class SplitRidgePaths:
    """Ridge paths (every alpha) for several train subsets of one feature matrix X (N, D).

    Each split s is stored as: standardisation (mu_s, sd_s) relative to an internal copy Xp of the features
    (Xp = (X - shift) / spread, a global affine normalisation), coefficients (A, D) in standardised units and the
    train mean of y. `predict(s, rows)` evaluates rows of X (float64 products, or float32 ones on the normalised
    float32 copy made by the Lanczos solver).
    """

    def __init__(
        self, alphas: np.ndarray, Xp: np.ndarray, shift: np.ndarray, spread: np.ndarray, *, fast: bool = False
    ) -> None:
        self.alphas = alphas
        self._fast = fast and Xp.dtype == np.float32
        self._Xp = Xp
        self._shift = shift
        self._spread = spread
        self._mu: list[np.ndarray] = []
        self._sd: list[np.ndarray] = []
        self._coef: list[np.ndarray] = []
        self._ybar: list[float] = []
        self.solvers: list[str] = []
        self.iterations: list[int] = []

    def _add(
        self, mu: np.ndarray, sd: np.ndarray, coef: np.ndarray, ybar: float, solver: str, it: int
    ) -> None:
        self._mu.append(mu)
        self._sd.append(sd)
        self._coef.append(coef)
        self._ybar.append(ybar)
        self.solvers.append(solver)
        self.iterations.append(it)

    def __len__(self) -> int:
        return len(self._coef)

    def predict(self, split: int, rows: np.ndarray, alpha_index: int | None = None) -> np.ndarray:
        """Predictions of split `split` for rows `rows` of X: (A, len(rows)), or (len(rows),) for one alpha."""
        W = self._coef[split] / self._sd[split]  # (A, D): coefficients on the rows of Xp
        offset = W @ self._mu[split] - self._ybar[split]  # (A,)
        Xr = self._Xp[rows]
        if self._fast:  # normalised float32 copy: float32 product (rel. error ~1e-6), float64 offsets
            W = W.astype(np.float32)
        else:
            Xr = Xr.astype(np.float64)
        if alpha_index is not None:
            return (Xr @ W[alpha_index]).astype(np.float64) - offset[alpha_index]
        return (W @ Xr.T).astype(np.float64) - offset[:, None]

    def path(self, split: int) -> RidgePath:
        """The `RidgePath` of split `split`, in original feature units."""
        mean = self._shift + self._spread * self._mu[split]
        scale = self._spread * self._sd[split]
        return RidgePath.from_coefs(
            self.alphas, self._coef[split], np.full(self.alphas.size, self._ybar[split]), mean, scale
        )


def _normalise_with_stats(
    X: np.ndarray, masks: np.ndarray, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One float64 pass over X (N, D) for the global and per-split (masks (N, S)) moments, then a copy
    Xp = (X - shift) / spread in X's dtype (global mean and std, std 1 for constant columns).

    Returns (Xp, shift (D,), spread (D,), mu (D, S), sd (D, S)) with mu, sd the per-split train mean and std
    in Xp units; a feature constant on a split's train rows gets sd = 1 / spread (original-unit scale 1)."""
    n, d = X.shape
    m = np.concatenate([masks, np.ones((n, 1))], axis=1)
    s1 = np.zeros((m.shape[1], d))
    s2 = np.zeros((m.shape[1], d))
    for i in range(0, n, chunk):
        c = X[i : i + chunk].astype(np.float64)
        s1 += m[i : i + chunk].T @ c
        c *= c
        s2 += m[i : i + chunk].T @ c
    cnt = m.sum(axis=0)[:, None]
    mean = s1 / cnt
    second = s2 / cnt
    var = np.maximum(second - mean * mean, 0.0)
    # E[x^2] - E[x]^2 loses ~eps * E[x^2]: variance below 1e-14 of the second moment is rounding, i.e. constant
    const = var <= 1e-14 * second
    std = np.where(const, 1.0, np.sqrt(var))
    shift = mean[-1].astype(X.dtype)
    inv = (1.0 / std[-1]).astype(X.dtype)
    Xp = np.empty_like(X)
    for i in range(0, n, chunk):
        np.multiply(X[i : i + chunk] - shift, inv, out=Xp[i : i + chunk])
    shift64, spread = shift.astype(np.float64), 1.0 / inv.astype(np.float64)
    mu = ((mean[:-1] - shift64) / spread).T.copy()
    sd = (std[:-1] / spread).T.copy()
    return Xp, shift64, spread, mu, sd


class _BatchedGram:
    """Applies v -> Z_s^T Z_s v for several splits at once (one column per split), with Z_s the standardised
    train rows of split s, without forming Z_s: two float32/64 matrix products with the shared matrix Xp."""

    def __init__(self, Xp: np.ndarray, masks: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> None:
        self.Xp, self.masks, self.mu, self.sd = Xp, masks, mu, sd

    def rmatvec(self, P: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Z_s^T p for residual-space vectors P (N, k) (already zero outside the train rows) -> (D, k) float64."""
        Q = (self.Xp.T @ P.astype(self.Xp.dtype)).astype(np.float64)
        Q -= self.mu[:, cols] * P.sum(axis=0)
        return Q / self.sd[:, cols]

    def __call__(self, V: np.ndarray, cols: np.ndarray) -> np.ndarray:
        Vp = V / self.sd[:, cols]
        offset = np.einsum("dk,dk->k", self.mu[:, cols], Vp)
        P = (self.Xp @ Vp.astype(self.Xp.dtype)).astype(np.float64) - offset
        P *= self.masks[:, cols]
        return self.rmatvec(P, cols)


def _tridiagonal_solutions(a: np.ndarray, b: np.ndarray, shifts: np.ndarray, beta0: float) -> np.ndarray:
    """Y (k, A): columns solve (T + shift I) y = beta0 e1 for the symmetric tridiagonal T (diag a, off-diag b)."""
    if a.size == 1:
        return (beta0 / (a[0] + shifts))[None, :]
    theta, Z = scipy.linalg.eigh_tridiagonal(a, b)
    return Z @ ((beta0 * Z[0])[:, None] / (theta[:, None] + shifts[None, :]))


def _lanczos_paths(
    op: _BatchedGram, rhs: np.ndarray, alphas: np.ndarray, tol: float, max_iter: int
) -> tuple[list[np.ndarray | None], list[int]]:
    """Shifted Lanczos (the CG family) for (Z_s^T Z_s + alpha I) w = rhs_s, every alpha and split s at once.

    One Krylov space per split serves every alpha (Krylov spaces are shift-invariant); the splits advance
    together so each step is two matrix products with Xp of width S. A split stops when the residual of every
    shift is below `tol` (relative to |rhs|; the smallest alpha is the hardest), or is abandoned (None) when the
    observed convergence rate says it cannot get there within `max_iter` steps. Returns per split the (A, D)
    coefficients (or None) and the number of steps."""
    d, n_splits = rhs.shape
    a0 = float(alphas.min())
    shifts = alphas - a0
    beta0 = np.linalg.norm(rhs, axis=0)
    out: list[np.ndarray | None] = [None] * n_splits
    steps = [0] * n_splits
    active = np.flatnonzero(beta0 > 0)
    for s in np.flatnonzero(beta0 == 0):  # y constant on the train rows: every coefficient is 0
        out[s] = np.zeros((alphas.size, d))
    # Krylov basis of every split, in the features' precision; full re-orthogonalisation against it keeps the
    # recursion as fast as exact-arithmetic CG on ill-conditioned features (3x fewer steps than plain Lanczos)
    max_iter = int(min(max_iter, d))
    basis = np.empty((n_splits, max_iter, d), dtype=op.Xp.dtype)
    diag: list[list[float]] = [[] for _ in range(n_splits)]
    off: list[list[float]] = [[] for _ in range(n_splits)]
    # incremental LDL^T of T + shift I (one pivot per shift) gives the residual of every shift in O(A) a step
    piv = np.zeros((n_splits, alphas.size))
    fwd = np.zeros((n_splits, alphas.size))
    hist: list[list[float]] = [[] for _ in range(n_splits)]
    v = np.zeros((d, n_splits))
    v[:, active] = rhs[:, active] / beta0[active]
    v_prev = np.zeros_like(v)
    beta = np.zeros(n_splits)
    for it in range(1, max_iter + 1):
        if active.size == 0:
            break
        w = op(v[:, active], active) + a0 * v[:, active] - beta[active] * v_prev[:, active]
        alpha_j = np.einsum("dk,dk->k", w, v[:, active])
        w -= alpha_j * v[:, active]
        # a second Gram-Schmidt pass against v (local re-orthogonalisation) keeps the recursion tidy
        corr = np.einsum("dk,dk->k", w, v[:, active])
        w -= corr * v[:, active]
        alpha_j += corr
        for k, s in enumerate(active):
            basis[s, it - 1] = v[:, s]
            if it > 2:  # against v_1 .. v_(it-2); the last two were just handled
                Bk = basis[s, : it - 2]
                w[:, k] -= (Bk.T @ (Bk @ w[:, k].astype(Bk.dtype))).astype(np.float64)
        beta_j = np.linalg.norm(w, axis=0)
        still = []
        for k, s in enumerate(active):
            diag[s].append(float(alpha_j[k]))
            dd = alpha_j[k] + shifts
            if it == 1:
                piv[s], fwd[s] = dd, beta0[s]
            else:
                lk = off[s][-1] / piv[s]
                piv[s] = dd - lk * off[s][-1]
                fwd[s] = -lk * fwd[s]
            res = float(np.max(beta_j[k] * np.abs(fwd[s] / piv[s]))) / beta0[s]
            hist[s].append(res)
            steps[s] = it
            if res <= tol or beta_j[k] <= 1e-14 * beta0[s]:
                Y = _tridiagonal_solutions(np.array(diag[s]), np.array(off[s]), shifts, beta0[s])
                out[s] = Y.T @ basis[s, :it].astype(np.float64)
                continue
            h = hist[s]
            if it >= 60:
                rate = (np.log(h[-1]) - np.log(h[-41])) / 40  # log-residual change per step
                if rate >= 0 or it + np.log(tol / h[-1]) / rate > max_iter:
                    log.info(
                        "Lanczos ridge: split %d converges too slowly (residual %.1e after %d steps)",
                        s,
                        res,
                        it,
                    )
                    continue
            off[s].append(float(beta_j[k]))
            still.append(s)
        keep = np.isin(active, still)
        nxt = np.flatnonzero(keep)
        v_prev[:, active[nxt]] = v[:, active[nxt]]
        v[:, active[nxt]] = w[:, nxt] / beta_j[nxt]
        beta[active[nxt]] = beta_j[nxt]
        active = active[keep]
    return out, steps


def fit_split_paths(
    X: Any,
    y: Any,
    train_rows: Sequence[np.ndarray],
    alphas: Any = DEFAULT_ALPHAS,
    *,
    solver: str = "auto",
    exact_max_dim: int = 1024,
    tol: float | None = None,
    max_iter: int = 600,
    verify_tol: float = 1e-4,
) -> SplitRidgePaths:
    """Standardised ridge paths (every alpha) for each train subset `train_rows[s]` of X (N, D), y (N,).

    Solvers:
        'exact': `RidgePath` (eigendecomposition, float64) per split; cost per split ~ n D^2 + min(n, D)^3.
        'lanczos': shifted Lanczos batched over splits (see `_lanczos_paths`), with X's own precision in the
            matrix products (float32 features stay float32) and float64 everywhere else. Each split is then
            verified by the true residual of its smallest alpha; a split that does not converge within `max_iter`
            steps or fails the check (relative residual > `verify_tol`) is refitted with 'exact' and a warning.
        'auto': 'exact' when min(train rows, D) <= `exact_max_dim`, else 'lanczos'.
    `tol` is the Lanczos stopping residual (relative); default 1e-6 for float32 features (their own rounding
    floor), 1e-10 for float64.
    """
    X = as_features(X)
    n, d = X.shape
    y = _as_target(y, n)
    alphas = check_alphas(alphas)
    rows = [np.asarray(r, dtype=np.int64) for r in train_rows]
    if solver not in ("auto", "exact", "lanczos"):
        raise ValueError(f"solver must be 'auto', 'exact' or 'lanczos', got {solver!r}")
    if solver == "auto":
        solver = "exact" if min(max(r.size for r in rows), d) <= exact_max_dim else "lanczos"
    if solver == "exact":
        paths = SplitRidgePaths(alphas, X, np.zeros(d), np.ones(d))
        for r in rows:
            p = RidgePath(alphas).fit(X[r], y[r])
            paths._add(p.mean_, p.scale_, p.coef_path_, float(p.intercept_path_[0]), "exact", 0)
        return paths

    masks = np.zeros((n, len(rows)))
    for s, r in enumerate(rows):
        masks[r, s] = 1.0
    Xp, shift, spread, mu, sd = _normalise_with_stats(X, masks)
    cnt = masks.sum(axis=0)
    ybar = (masks * y[:, None]).sum(axis=0) / cnt
    op = _BatchedGram(Xp, masks, mu, sd)
    rhs = op.rmatvec(masks * (y[:, None] - ybar), np.arange(len(rows)))
    if tol is None:
        tol = 1e-6 if Xp.dtype == np.float32 else 1e-10
    coefs, steps = _lanczos_paths(op, rhs, alphas, tol, max_iter)

    # verify: true residual of the smallest alpha (the worst-conditioned system) for every converged split
    done = np.array([c is not None for c in coefs])
    if done.any():
        cols = np.flatnonzero(done)
        i0 = int(np.argmin(alphas))
        W = np.stack([coefs[s][i0] for s in cols], axis=1)  # type: ignore[index]
        r = rhs[:, cols] - op(W, cols) - alphas[i0] * W
        rel = np.linalg.norm(r, axis=0) / np.maximum(np.linalg.norm(rhs[:, cols], axis=0), 1e-300)
        for s, e in zip(cols, rel):
            if not e <= verify_tol:
                log.info("Lanczos ridge: split %d fails the residual check (%.1e)", s, e)
                coefs[s] = None

    paths = SplitRidgePaths(alphas, Xp, shift, spread, fast=True)
    fallback = [s for s, c in enumerate(coefs) if c is None]
    if fallback:
        warnings.warn(
            f"Lanczos ridge did not converge for split(s) {fallback} (ill-conditioned features); "
            "refitting them with the exact eigendecomposition (slower)",
            RuntimeWarning,
            stacklevel=2,
        )
    for s, r in enumerate(rows):
        if coefs[s] is not None:
            paths._add(mu[:, s], sd[:, s], coefs[s], float(ybar[s]), "lanczos", steps[s])  # type: ignore[arg-type]
        else:
            p = RidgePath(alphas).fit(X[r], y[r])
            paths._add(
                (p.mean_ - shift) / spread,
                p.scale_ / spread,
                p.coef_path_,
                float(p.intercept_path_[0]),
                "exact",
                steps[s],
            )
    return paths
