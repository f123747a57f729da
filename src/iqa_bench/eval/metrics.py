"""IQA correlation metrics: SRCC, KRCC, PLCC (raw and after the standard 4-parameter logistic mapping).

Every function takes two 1-D sequences of equal length (numpy arrays, torch tensors or lists), computes in float64
and returns a Python float in [-1, 1], or nan when either input is constant (a correlation is undefined then).
Reference implementations are scipy's `spearmanr`, `pearsonr` and `kendalltau` (tau-b); the tests hold these
functions to them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "LogisticFitWarning",
    "all_metrics",
    "as_vector",
    "krcc",
    "logistic4",
    "logistic4_fit",
    "plcc",
    "plcc_logistic",
    "srcc",
    "srcc_rows",
]

# Half-width of the near-linear logistic used as fallback, in standard deviations of pred: the cubic term of
# the logistic then deviates from a straight line by < 1e-9 of the target's spread over +-10 std.
_LINEAR_WIDTH = 1e4


class LogisticFitWarning(RuntimeWarning):
    """The 4-parameter logistic fit failed; a (near-)linear mapping was used instead."""


def as_vector(x: Any, name: str, *, min_len: int = 1) -> np.ndarray:
    """`x` (array-like or torch tensor) -> 1-D float64 array; ValueError naming `name` if it is not 1-D, is
    shorter than `min_len`, or holds NaN/inf (the message gives the first bad index)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} values, got {a.size}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} contains NaN/inf (first at index {int(np.flatnonzero(bad)[0])})")
    return a


def _pair(pred: Any, target: Any, min_len: int = 2) -> tuple[np.ndarray, np.ndarray]:
    p = as_vector(pred, "pred", min_len=min_len)
    t = as_vector(target, "target", min_len=min_len)
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same length, got {p.size} and {t.size}")
    return p, t


def _unit_scale(a: np.ndarray) -> np.ndarray:
    """`a` divided by the power of two nearest below its largest magnitude: exact (no rounding), leaves every
    metric here unchanged (all are invariant to a positive scale) and keeps sums of squares of huge (1e300) or
    tiny (1e-300) scores from overflowing or underflowing."""
    m = float(np.max(np.abs(a))) if a.size else 0.0
    if m == 0.0 or not np.isfinite(m):
        return a
    return np.ldexp(a, -int(np.frexp(m)[1]))


def _constant(a: np.ndarray) -> bool:
    return bool(a[0] == a[-1] and np.ptp(a) == 0)


def _pearson(p: np.ndarray, t: np.ndarray) -> float:
    """Pearson r of two validated float64 vectors; nan if either is constant."""
    if _constant(p) or _constant(t):
        return float("nan")
    p, t = _unit_scale(p), _unit_scale(t)
    pc = p - p.mean()
    tc = t - t.mean()
    # Normalise before the dot product (as scipy does) so huge or tiny scales neither overflow nor underflow.
    pc /= np.linalg.norm(pc)
    tc /= np.linalg.norm(tc)
    return float(np.clip(pc @ tc, -1.0, 1.0))


def plcc(pred: Any, target: Any) -> float:
    """Pearson linear correlation of the raw predictions, in [-1, 1]; nan if either input is constant."""
    return _pearson(*_pair(pred, target))


def srcc(pred: Any, target: Any) -> float:
    """Spearman rank correlation (Pearson r of the ranks, ties get their average rank), in [-1, 1]; nan if
    either input is constant."""
    p, t = _pair(pred, target)
    return _pearson(stats.rankdata(p), stats.rankdata(t))


def krcc(pred: Any, target: Any) -> float:
    """Kendall rank correlation tau-b (ties corrected), in [-1, 1]; nan if either input is constant."""
    p, t = _pair(pred, target)
    if _constant(p) or _constant(t):
        return float("nan")
    return float(stats.kendalltau(p, t).statistic)


def srcc_rows(preds: np.ndarray, target: np.ndarray) -> np.ndarray:
    """SRCC of every row of `preds` (A, n) against `target` (n,) at once -> (A,) float64; nan for constant rows.

    Inputs are assumed validated (finite); this is the vectorised form used for alpha selection."""
    preds = np.asarray(preds, dtype=np.float64)
    rt = stats.rankdata(np.asarray(target, dtype=np.float64))
    if preds.ndim != 2 or preds.shape[1] != rt.size:
        raise ValueError(f"preds must be (A, {rt.size}), got {preds.shape}")
    out = np.full(preds.shape[0], np.nan)
    if preds.shape[1] < 2 or _constant(rt):
        return out
    rp = stats.rankdata(preds, axis=1)
    rp -= rp.mean(axis=1, keepdims=True)
    rt = rt - rt.mean()
    norms = np.linalg.norm(rp, axis=1)
    ok = norms > 0
    out[ok] = np.clip((rp[ok] @ rt) / (norms[ok] * np.linalg.norm(rt)), -1.0, 1.0)
    return out


def logistic4(x: Any, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG 4-parameter logistic f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2, elementwise.

    b1 and b2 are the upper and lower asymptotes (b1 < b2 gives a decreasing curve), b3 the midpoint and |b4| the
    width. Evaluated with `scipy.special.expit`, so it never overflows."""
    x = np.asarray(x, dtype=np.float64)
    width = max(abs(float(b4)), np.finfo(np.float64).tiny)
    return (b1 - b2) * special.expit((x - b3) / width) + b2


def _logistic4_jac(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """(n, 4) Jacobian of `logistic4` with respect to (b1, b2, b3, b4) (analytic, for curve_fit)."""
    width = max(abs(float(b4)), np.finfo(np.float64).tiny)
    sig = special.expit((x - b3) / width)
    slope = (b1 - b2) * sig * (1.0 - sig)
    return np.stack(
        [sig, 1.0 - sig, -slope / width, -slope * (x - b3) / width**2 * (1.0 if b4 >= 0 else -1.0)], axis=1
    )


def _near_linear(r: float) -> np.ndarray:
    """Logistic parameters (in standardised units) that follow the line u = r * z within 1e-9 for |z| <= 10."""
    return np.array([2 * _LINEAR_WIDTH * r, -2 * _LINEAR_WIDTH * r, 0.0, _LINEAR_WIDTH])


def _sse(params: np.ndarray, z: np.ndarray, u: np.ndarray) -> float:
    return float(np.sum((logistic4(z, *params) - u) ** 2))


def logistic4_fit(pred: Any, target: Any) -> np.ndarray:
    """Least-squares fit of `logistic4` mapping pred -> target; returns float64 (b1, b2, b3, b4) with b4 > 0.

    Fitted with `scipy.optimize.curve_fit` (Levenberg-Marquardt, analytic Jacobian, maxfev 20000) on standardised
    pred and target, from b1 = max, b2 = min of target (swapped when the correlation is negative), b3 = mean of
    pred, b4 = std(pred) (and b4 = std(pred)/4 if that start fails). The near-linear member of the family (the
    least-squares line) is always a candidate, so the result is never worse than a linear mapping. If the fit
    fails (fewer than 4 points, no convergence), a `LogisticFitWarning` is issued and the near-linear parameters are
    returned; this function never raises on a fit failure. Needs at least 3 points; constant inputs give a constant mapping (no warning)."""
    p, t = _pair(pred, target, min_len=3)
    xm, xs = float(p.mean()), float(p.std())
    ym, ys = float(t.mean()), float(t.std())
    if xs == 0 or ys == 0 or _constant(p) or _constant(t):
        return np.array([ym, ym, xm, xs or 1.0])
    z = (p - xm) / xs
    u = (t - ym) / ys
    r = float(np.clip(z @ u / z.size, -1.0, 1.0))
    best = _near_linear(r)
    best_sse = _sse(best, z, u)
    hi, lo = (float(u.max()), float(u.min())) if r >= 0 else (float(u.min()), float(u.max()))
    errors: list[str] = []
    # a second start only when the first one fails (each fit is a few hundred function evaluations)
    for width in (1.0, 0.25) if z.size >= 4 else ():
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                params, _ = optimize.curve_fit(
                    logistic4, z, u, p0=[hi, lo, 0.0, width], jac=_logistic4_jac, maxfev=20000
                )
            if not np.all(np.isfinite(params)):
                raise ValueError("non-finite parameters")
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            errors.append(str(exc).splitlines()[0])
            continue
        sse = _sse(params, z, u)
        if sse < best_sse:
            best, best_sse = params, sse
        break
    else:
        reason = "; ".join(errors) if errors else f"{z.size} points < 4 parameters"
        warnings.warn(
            f"4-parameter logistic fit failed ({reason}); using a linear mapping",
            LogisticFitWarning,
            stacklevel=2,
        )
    b1, b2, b3, b4 = (float(v) for v in best)
    return np.array([ym + ys * b1, ym + ys * b2, xm + xs * b3, xs * abs(b4)])


def _plcc_logistic(p: np.ndarray, t: np.ndarray) -> float:
    if _constant(p) or _constant(t):
        return float("nan")
    p, t = _unit_scale(p), _unit_scale(t)  # the fit's moments stay finite for huge/tiny scores
    return _pearson(logistic4(p, *logistic4_fit(p, t)), t)


def plcc_logistic(pred: Any, target: Any) -> float:
    """PLCC after mapping pred through the 4-parameter logistic fitted on (pred, target) themselves, as in the
    VQEG convention. In [0, 1]: a least-squares fit with free asymptotes never anti-correlates (a decreasing
    curve absorbs a negative relation), so compare it with |plcc|. nan for constant inputs; needs >= 3 points."""
    return _plcc_logistic(*_pair(pred, target, min_len=3))


def all_metrics(pred: Any, target: Any) -> dict[str, float]:
    """{'srcc', 'plcc', 'plcc_logistic', 'krcc'} of pred vs target (plcc_logistic is nan below 3 points)."""
    p, t = _pair(pred, target)
    return {
        "srcc": _pearson(stats.rankdata(p), stats.rankdata(t)),
        "plcc": _pearson(p, t),
        "plcc_logistic": _plcc_logistic(p, t) if p.size >= 3 else float("nan"),
        "krcc": float("nan") if _constant(p) or _constant(t) else float(stats.kendalltau(p, t).statistic),
    }
