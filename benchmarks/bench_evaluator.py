"""Time the ridge-probe protocol (10 splits x 100 alphas) on random features with a linear signal.

    python benchmarks/bench_evaluator.py [--n 10000 --d 4096 --splits 10 --alphas 100 --solver auto --json PATH]

Features are float32 N(0, 1) (optionally with a decaying spectrum, --decay > 0, which makes the ridge systems
ill-conditioned like real CNN features); scores = X w + noise at 1/4 of the signal std. Prints the wall time of
`ridge_probe` (features already in memory; data generation is not timed) and the summary; --check also compares
the first split's predictions with the exact float64 eigendecomposition path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from iqa_bench.eval.protocol import ridge_probe
from iqa_bench.eval.ridge import RidgePath
from iqa_bench.eval.ridge_splits import fit_split_paths
from iqa_bench.eval.splits import make_splits


def make_data(n: int, d: int, decay: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    if decay > 0:  # column j scaled by (1 + j)^-decay, then mixed: a power-law covariance spectrum
        X *= (1.0 + np.arange(d, dtype=np.float32)) ** np.float32(-decay)
        q, _ = np.linalg.qr(rng.standard_normal((d, d)).astype(np.float32))
        X = X @ q
    w = rng.standard_normal(d) / np.sqrt(d)
    signal = X.astype(np.float64) @ w
    y = signal + 0.25 * signal.std() * rng.standard_normal(n)
    return X, y


def check_against_exact(X: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> float:
    """Max relative deviation of the fast path's val predictions from the exact path on split 0."""
    sp = make_splits(X.shape[0], None, 1, seed=0)[0]
    fast = fit_split_paths(X, y, [sp["train"]], alphas, solver="lanczos")
    exact = RidgePath(alphas).fit(X[sp["train"]], y[sp["train"]])
    pf = fast.predict(0, sp["val"])
    pe = exact.predict_all(X[sp["val"]])
    return float(np.max(np.abs(pf - pe)) / np.max(np.abs(pe - pe.mean(axis=1, keepdims=True))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="rows (images)")
    ap.add_argument("--d", type=int, default=4096, help="feature dimension")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--alphas", type=int, default=100, help="grid size of geomspace(1e-3, 1e3)")
    ap.add_argument("--solver", default="auto", choices=("auto", "exact", "lanczos"))
    ap.add_argument(
        "--decay", type=float, default=0.0, help="power-law spectrum exponent (0 = white features)"
    )
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="compare split 0 with the exact float64 path")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    X, y = make_data(args.n, args.d, args.decay, args.seed)
    alphas = np.geomspace(1e-3, 1e3, args.alphas)
    times, cpu = [], []
    load_before = os.getloadavg()[0]
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = ridge_probe(X, y, None, n_splits=args.splits, alphas=alphas, seed=args.seed, solver=args.solver)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = {
        "n": args.n,
        "d": args.d,
        "n_splits": args.splits,
        "n_alphas": args.alphas,
        "decay": args.decay,
        "solver": args.solver,
        "solvers_used": sorted(set(res.solvers)),
        "seconds": min(times),
        "seconds_all": times,
        "cpu_seconds_all": cpu,
        "load_average_1min_before": load_before,
        "alpha": res.alpha,
        "summary": res.summary,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
    }
    if args.check:
        out["max_rel_dev_vs_exact"] = check_against_exact(X, y, alphas)
    print(
        f"ridge_probe N={args.n} D={args.d} splits={args.splits} alphas={args.alphas} decay={args.decay}: "
        f"{min(times):.2f} s wall (best of {args.repeat}; CPU {min(cpu):.1f} s; load avg {load_before:.1f}) "
        f"(solver {out['solvers_used']}), alpha={res.alpha:.4g}, "
        f"test SRCC median {res.summary['srcc']:.4f} (IQR {res.summary['srcc_iqr']:.4f})"
    )
    if args.check:
        print(
            f"max relative deviation from the exact path (split 0, all alphas): {out['max_rel_dev_vs_exact']:.2e}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
