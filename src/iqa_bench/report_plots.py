"""Report charts drawn with matplotlib (Agg backend, no display needed): a grouped bar chart per dataset and
predicted-vs-MOS scatter plots. Every figure is written atomically as PNG."""

from __future__ import annotations

import csv
import logging
import math
import re
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iqa_bench.report_tables import METRICS
from iqa_bench.utils.atomic import atomic_write_with

log = logging.getLogger(__name__)


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig: Any, path: Path) -> None:
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))


def bar_chart(path: Path, dataset: str, entries: Sequence[dict[str, Any]]) -> None:
    """Grouped bars for one dataset: one group per model, one bar per metric (SRCC, PLCC), whisker = spread
    (IQR over runs, or over the single run's splits)."""
    models = list(dict.fromkeys(e["model"] for e in entries))
    idx = {(e["model"], e["metric"]): e for e in entries}
    vals = [e["median"] for e in entries if not math.isnan(e["median"])]
    lo = min(0.0, math.floor(min(vals, default=0.0) * 4) / 4)
    fig = _figure(max(5.0, 1.5 * len(models) + 1.5), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / len(METRICS)
    x = np.arange(len(models))
    for j, m in enumerate(METRICS):
        med = [idx.get((model, m), {}).get("median", float("nan")) for model in models]
        spread = [idx.get((model, m), {}).get("spread", float("nan")) for model in models]
        err = [0.0 if math.isnan(s) else s / 2 for s in spread]
        ax.bar(x - 0.4 + (j + 0.5) * width, med, width, yerr=err, capsize=3, label=m.upper())
    ax.set_xticks(x, ["\n".join(textwrap.wrap(mdl, 18)) for mdl in models], fontsize=8)
    ax.set_ylim(lo, 1.0)
    ax.set_ylabel("median correlation with MOS")
    ax.set_xlabel("model (method/backbone)")
    ax.set_title(f"{dataset}: median SRCC / PLCC (whiskers: IQR)")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right")
    _save(fig, path)


def scatter_plot(path: Path, title: str, pred: np.ndarray, mos: np.ndarray) -> None:
    """Predicted score (x) vs MOS (y) of test items, with SRCC/PLCC in the title."""
    from iqa_bench.eval.metrics import plcc, srcc

    s = srcc(pred, mos) if pred.size >= 2 else float("nan")
    c = plcc(pred, mos) if pred.size >= 2 else float("nan")
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    ax.scatter(pred, mos, s=10, alpha=0.7)
    ax.set_xlabel("predicted quality score")
    ax.set_ylabel("MOS (ground truth)")
    ax.set_title(f"{title}\nSRCC {s:.3f}  PLCC {c:.3f}", fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, path)


def safe_name(name: str) -> str:
    """A file-name-safe version of `name` (at most 80 characters)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:80] or "x"


def scatter_plots(out: Path, rows: Sequence[dict[str, Any]], max_plots: int) -> list[Path]:
    """Scatter of the median split (or the cross-dataset test set) for runs with predictions/*.csv."""
    written: list[Path] = []
    runs = list(dict.fromkeys(r["run_dir"] for r in rows))
    for run in runs:
        for f in sorted((Path(run) / "predictions").glob("*.csv")):
            if len(written) >= max_plots:
                return written
            try:
                preds = list(csv.DictReader(f.open(newline="")))
                if not preds:
                    continue
                by_split: dict[str, list[tuple[float, float]]] = defaultdict(list)
                for p in preds:
                    by_split[p["split"]].append((float(p["pred"]), float(p["mos"])))
            except (OSError, KeyError, ValueError) as exc:
                log.warning("skipping %s (%s)", f, exc)
                continue
            from iqa_bench.eval.metrics import srcc

            scored = sorted((srcc(*np.array(v).T) if len(v) >= 2 else -2.0, k) for k, v in by_split.items())
            split = scored[len(scored) // 2][1]
            xy = np.array(by_split[split])
            rel = Path(run).name
            name = f"scatter_{safe_name(rel)}_{safe_name(f.stem)}.png"
            scatter_plot(out / name, f"{rel}: {f.stem} (split {split})", xy[:, 0], xy[:, 1])
            written.append(out / name)
    return written
