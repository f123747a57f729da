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
N x N kernel matrix otherwise). `ridge_splits.fit_split_paths` does that for several train subsets of one feature
matrix, the core of the split protocol (with the batched Lanczos solver of `lanczos.py` for large problems).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

__all__ = [
    "DEFAULT_ALPHAS",
    "RidgeModel",
    "RidgePath",
    "as_features",
    "check_alphas",
    "fit_ridge",
    "standardisation",
]

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


def as_target(y: Any, n: int) -> np.ndarray:
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
    y = as_target(y, X.shape[0])
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
        y = as_target(y, X.shape[0])
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
