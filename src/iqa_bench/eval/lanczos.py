"""Shifted Lanczos for ridge: every alpha of a grid and several train subsets (splits) of one feature matrix at once.

For split s with standardised train rows Z_s (never formed: `_BatchedGram` applies Z_s^T Z_s through two matrix
products with the shared normalised copy Xp of the features), one Krylov space of Z_s^T Z_s serves every alpha
because Krylov spaces are shift-invariant; the splits advance together, so each step is two products with Xp of
width S. Used by `ridge_splits.fit_split_paths` for large problems, which verifies every split's solution and
falls back to the exact eigendecomposition where this does not converge.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

__all__ = ["BatchedGram", "lanczos_paths"]

log = logging.getLogger(__name__)


class BatchedGram:
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


def lanczos_paths(
    op: BatchedGram, rhs: np.ndarray, alphas: np.ndarray, tol: float, max_iter: int
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
