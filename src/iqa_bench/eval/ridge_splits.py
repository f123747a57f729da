"""Ridge paths (every alpha of a grid) for several train subsets of one feature matrix: the core of the split protocol.

`fit_split_paths` fits each split exactly (`ridge.RidgePath`, an eigendecomposition) or, for large problems, by the
batched shifted Lanczos solver of `lanczos.py` (verified per split, exact fallback). Features are standardised on
each split's train rows, or left raw (`standardize=False`, scikit-learn `Ridge` on the features as given).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from iqa_bench.eval.lanczos import BatchedGram, lanczos_paths
from iqa_bench.eval.ridge import DEFAULT_ALPHAS, RidgePath, as_features, as_target, check_alphas

__all__ = ["SplitRidgePaths", "fit_split_paths"]

log = logging.getLogger(__name__)


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
    standardize: bool = True,
) -> SplitRidgePaths:
    """Ridge paths (every alpha) for each train subset `train_rows[s]` of X (N, D), y (N,), on features
    standardised on the split's train rows, or on the raw features with `standardize=False` (then every split's
    path equals scikit-learn's `Ridge(alpha).fit(X[rows], y[rows])` for each alpha).

    Solvers:
        'exact': `RidgePath` (eigendecomposition, float64) per split; cost per split ~ n D^2 + min(n, D)^3.
        'lanczos': shifted Lanczos batched over splits (see `lanczos.lanczos_paths`), with X's own precision in the
            matrix products (float32 features stay float32) and float64 everywhere else. Each split is then
            verified by the true residual of its smallest alpha; a split that does not converge within `max_iter`
            steps or fails the check (relative residual > `verify_tol`) is refitted with 'exact' and a warning.
        'auto': 'exact' when min(train rows, D) <= `exact_max_dim`, else 'lanczos'.
    `tol` is the Lanczos stopping residual (relative); default 1e-6 for float32 features (their own rounding
    floor), 1e-10 for float64.
    """
    X = as_features(X)
    n, d = X.shape
    y = as_target(y, n)
    alphas = check_alphas(alphas)
    rows = [np.asarray(r, dtype=np.int64) for r in train_rows]
    if solver not in ("auto", "exact", "lanczos"):
        raise ValueError(f"solver must be 'auto', 'exact' or 'lanczos', got {solver!r}")
    if solver == "auto":
        solver = "exact" if min(max(r.size for r in rows), d) <= exact_max_dim else "lanczos"
    if solver == "exact":
        paths = SplitRidgePaths(alphas, X, np.zeros(d), np.ones(d))
        for r in rows:
            mean, scale, coef, ybar = _exact_path(X[r], y[r], alphas, standardize)
            paths._add(mean, scale, coef, ybar, "exact", 0)
        return paths

    masks = np.zeros((n, len(rows)))
    for s, r in enumerate(rows):
        masks[r, s] = 1.0
    Xp, shift, spread, mu, sd = _normalise_with_stats(X, masks)
    if not standardize:  # unit scale in original units: the penalty acts on the raw coefficients
        sd = np.repeat((1.0 / spread)[:, None], len(rows), axis=1)
    cnt = masks.sum(axis=0)
    ybar = (masks * y[:, None]).sum(axis=0) / cnt
    op = BatchedGram(Xp, masks, mu, sd)
    rhs = op.rmatvec(masks * (y[:, None] - ybar), np.arange(len(rows)))
    if tol is None:
        tol = 1e-6 if Xp.dtype == np.float32 else 1e-10
    coefs, steps = lanczos_paths(op, rhs, alphas, tol, max_iter)

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
            mean, scale, coef, yb = _exact_path(X[r], y[r], alphas, standardize)
            paths._add((mean - shift) / spread, scale / spread, coef, yb, "exact", steps[s])
    return paths


def _exact_path(
    X: np.ndarray, y: np.ndarray, alphas: np.ndarray, standardize: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(train mean (D,), scale (D,), coefficients (A, D) in those units, train mean of y) of one split's rows,
    by `RidgePath` (raw features: scale 1, coefficients on the centred raw features)."""
    p = RidgePath(alphas, standardize=standardize).fit(X, y)
    if standardize:
        return p.mean_, p.scale_, p.coef_path_, float(p.intercept_path_[0])
    mean = X.mean(axis=0, dtype=np.float64)
    return mean, np.ones(X.shape[1]), p.coef_path_, float(y.mean())
