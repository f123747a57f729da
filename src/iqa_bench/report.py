"""`python -m iqa_bench.report DIR [DIR ...] [--out OUT]`: one table and plots from many runs.

Collects every `results.csv` under the given run / multirun directories (train and evaluate runs alike) and
writes into OUT (default `<first DIR>/report`):

* `report.md`: SRCC and PLCC tables, model x dataset. A model is `method/backbone` (plus `[protocol]` when not the
  ridge probe); initialisation rows (ckpt `init=random` / `init=imagenet`) are listed as baselines. A cell is the median over
  runs (seeds, checkpoints) of each run's median-over-splits value, with its spread in brackets: the IQR over runs
  when there are >= 2 runs, else the IQR over that run's splits (marked `*`); `n` is the number of runs.
  Cross-dataset rows appear as dataset `A->B`.
* `report.csv`: the same in long form (model, baseline, dataset, metric, median, spread, spread_over, n_runs).
* `bars_<dataset>.png`: grouped bar chart per dataset (SRCC and PLCC per model, whiskers = spread).
* `scatter_<run>_<encoder>_<dataset>.png`: predicted score vs MOS of the test items (the split whose SRCC is the
  run's median) for runs that saved predictions (`evaluate` does), at most `--max-scatter` of them.

Plots are drawn with Pillow (matplotlib is not a dependency of the project).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iqa_bench.errors import UserError, exit_on_user_error
from iqa_bench.utils.atomic import atomic_write_text, atomic_write_with

BASELINE_LABELS = ("init=random", "init=imagenet", "init=weights", "random_init")
"""ckpt labels of initialisation baselines (`methods/baselines.py`; `random_init` = older runs' name)."""

log = logging.getLogger(__name__)

REQUIRED = ("method", "backbone", "ckpt", "dataset", "split", "srcc", "plcc")
METRICS = ("srcc", "plcc")
SUMMARY_SPLITS = ("median", "full")


# --------------------------------------------------------------------------------------------- collecting
def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def find_results(dirs: Sequence[str | Path]) -> list[Path]:
    """Every results.csv under `dirs` (sorted); UserError for a missing directory or one without results."""
    found: list[Path] = []
    for d in dirs:
        p = Path(d)
        if p.is_file() and p.name == "results.csv":
            found.append(p)
            continue
        if not p.is_dir():
            raise UserError(f"report: no such directory: {p}")
        hits = sorted(p.rglob("results.csv"))
        if not hits:
            raise UserError(f"report: no results.csv under {p} (is it a train/evaluate run directory?)")
        found += hits
    return sorted(set(found))


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of one results.csv with `run_dir` added; UserError naming the file and the missing columns."""
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"report: {path} lacks column(s) {missing}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"report: cannot read {path} ({type(exc).__name__}: {exc})") from None
    for r in rows:
        r["run_dir"] = str(path.parent)
    return rows


def model_label(r: dict[str, Any]) -> tuple[str, bool]:
    """('method/backbone[ [protocol]][ (init=random|init=imagenet|...)]', is_baseline)."""
    label = f"{r['method']}/{r['backbone']}"
    proto = r.get("protocol") or "ridge"
    if proto not in ("ridge", "ridge_cross"):
        label += f" [{proto}]"
    baseline = r["ckpt"] in BASELINE_LABELS
    if baseline:
        label += " (init=random)" if r["ckpt"] == "random_init" else f" ({r['ckpt']})"
    elif str(r["ckpt"]).startswith("weights:"):
        label += f" ({r['ckpt']})"
    return label, baseline


def dataset_label(r: dict[str, Any]) -> str:
    return f"{r['train_on']}->{r['dataset']}" if r.get("train_on") else r["dataset"]


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long table: one entry per (model, dataset, metric) over the summary rows of all runs."""
    groups: dict[tuple[str, bool, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("split") not in SUMMARY_SPLITS:
            continue
        label, baseline = model_label(r)
        groups[(label, baseline, dataset_label(r))].append(r)
    out = []
    for (label, baseline, ds), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        for m in METRICS:
            vals = np.array([_float(r[m]) for r in rs])
            vals = vals[np.isfinite(vals)]
            if vals.size == 0:
                med, spread, over = float("nan"), float("nan"), "-"
            elif vals.size >= 2:
                q25, med, q75 = np.percentile(vals, [25, 50, 75])
                spread, over = float(q75 - q25), "runs"
            else:
                med, spread, over = float(vals[0]), _float(rs[0].get(f"{m}_iqr")), "splits"
            out.append(
                {
                    "model": label,
                    "baseline": baseline,
                    "dataset": ds,
                    "metric": m,
                    "median": float(med),
                    "spread": spread,
                    "spread_over": over,
                    "n_runs": int(vals.size),
                }
            )
    return out


def _cell(e: dict[str, Any] | None) -> str:
    if e is None or math.isnan(e["median"]):
        return "-"
    spread = (
        ""
        if math.isnan(e["spread"])
        else f" [{e['spread']:.3f}{'*' if e['spread_over'] == 'splits' else ''}]"
    )
    return f"{e['median']:.3f}{spread} n={e['n_runs']}"


def markdown(summary: Sequence[dict[str, Any]], sources: Sequence[Path]) -> str:
    datasets = sorted({e["dataset"] for e in summary})
    models = list(dict.fromkeys(e["model"] for e in summary))  # non-baselines first (sorted in summarise)
    lines = [
        "# iqa_bench report",
        "",
        f"{len(sources)} results file(s). Cells: median over runs of each run's median over splits, "
        "[spread] = IQR over runs, or over the splits of the single run (`*`); n = runs. "
        "PLCC is on raw predictions. Rows marked (random init) are the untrained-encoder baselines.",
        "",
    ]
    index = {(e["model"], e["dataset"], e["metric"]): e for e in summary}
    for m in METRICS:
        lines += [f"## {m.upper()}", "", "| model | " + " | ".join(datasets) + " |"]
        lines.append("|---|" + "---|" * len(datasets))
        for model in models:
            cells = [_cell(index.get((model, ds, m))) for ds in datasets]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Sources", ""] + [f"- `{p}`" for p in sources] + [""]
    return "\n".join(lines)


def summary_csv(summary: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    cols = ["model", "baseline", "dataset", "metric", "median", "spread", "spread_over", "n_runs"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for e in summary:
        w.writerow(
            {
                k: (
                    f"{e[k]:.6g}"
                    if isinstance(e[k], float) and not math.isnan(e[k])
                    else ("" if isinstance(e[k], float) else e[k])
                )
                for k in cols
            }
        )
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ PIL drawing
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


class _Plot:
    """A minimal axes on a Pillow canvas: data -> pixel mapping, ticks, labels."""

    def __init__(
        self,
        w: int,
        h: int,
        xlim: tuple[float, float],
        ylim: tuple[float, float],
        title: str,
        xlabel: str = "",
        ylabel: str = "",
        margin: tuple[int, int, int, int] = (70, 40, 20, 60),
    ) -> None:
        from PIL import Image, ImageDraw, ImageFont

        self.img = Image.new("RGB", (w, h), "white")
        self.draw = ImageDraw.Draw(self.img)
        try:
            self.font = ImageFont.load_default(size=13)
            self.big = ImageFont.load_default(size=16)
        except TypeError:  # Pillow without FreeType: fixed bitmap font
            self.font = self.big = ImageFont.load_default()
        self.left, self.top, self.right, self.bottom = margin[0], margin[1], w - margin[2], h - margin[3]
        self.xlim, self.ylim = xlim, ylim
        d = self.draw
        d.rectangle([self.left, self.top, self.right, self.bottom], outline="black")
        d.text((w / 2, 8), title, fill="black", font=self.big, anchor="mt")
        if xlabel:
            d.text(((self.left + self.right) / 2, h - 8), xlabel, fill="black", font=self.font, anchor="mb")
        if ylabel:
            d.text((self.left, self.top - 4), ylabel, fill="black", font=self.font, anchor="rb")

    def px(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        return (
            self.left + (x - x0) / ((x1 - x0) or 1) * (self.right - self.left),
            self.bottom - (y - y0) / ((y1 - y0) or 1) * (self.bottom - self.top),
        )

    def yticks(self, n: int = 5, grid: bool = True, values: Sequence[float] | None = None) -> None:
        for v in np.linspace(*self.ylim, n) if values is None else values:
            _, y = self.px(self.xlim[0], v)
            if grid:
                self.draw.line([self.left, y, self.right, y], fill=(225, 225, 225))
            self.draw.text((self.left - 5, y), f"{v:.2f}", fill="black", font=self.font, anchor="rm")

    def xticks(self, n: int = 5) -> None:
        for v in np.linspace(*self.xlim, n):
            x, _ = self.px(v, self.ylim[0])
            self.draw.line([x, self.bottom, x, self.bottom + 4], fill="black")
            self.draw.text((x, self.bottom + 6), f"{v:.3g}", fill="black", font=self.font, anchor="mt")

    def save(self, path: Path) -> None:
        atomic_write_with(path, lambda tmp: self.img.save(tmp, format="PNG"))


def bar_chart(path: Path, dataset: str, entries: Sequence[dict[str, Any]]) -> None:
    """Grouped bars: one group per model, one bar per metric, whisker = spread."""
    models = list(dict.fromkeys(e["model"] for e in entries))
    idx = {(e["model"], e["metric"]): e for e in entries}
    vals = [e["median"] for e in entries if not math.isnan(e["median"])]
    lo = min(0.0, math.floor(min(vals, default=0.0) * 4) / 4)
    w = max(480, 140 * len(models) + 120)
    p = _Plot(w, 420, (0, len(models)), (lo, 1.0), f"{dataset}: median SRCC / PLCC", margin=(60, 40, 20, 90))
    p.yticks(values=np.arange(lo, 1.0001, 0.25 if lo < 0 else 0.2))
    zero = p.px(0, 0)[1]
    bw = 0.8 / len(METRICS)
    for i, model in enumerate(models):
        for j, m in enumerate(METRICS):
            e = idx.get((model, m))
            if e is None or math.isnan(e["median"]):
                continue
            x0, y = p.px(i + 0.1 + j * bw, e["median"])
            x1, _ = p.px(i + 0.1 + (j + 1) * bw, e["median"])
            p.draw.rectangle([x0 + 1, min(y, zero), x1 - 1, max(y, zero)], fill=PALETTE[j % len(PALETTE)])
            if not math.isnan(e["spread"]) and e["spread"] > 0:
                xc = (x0 + x1) / 2
                _, ya = p.px(0, max(lo, e["median"] - e["spread"] / 2))
                _, yb = p.px(0, min(1.0, e["median"] + e["spread"] / 2))
                p.draw.line([xc, ya, xc, yb], fill="black", width=2)
        xc, _ = p.px(i + 0.5, lo)
        for k, part in enumerate(_wrap(model, 20)):
            p.draw.text((xc, p.bottom + 6 + 15 * k), part, fill="black", font=p.font, anchor="mt")
    for j, m in enumerate(METRICS):  # legend
        x = p.right - 70
        y = p.top + 8 + 18 * j
        p.draw.rectangle([x, y, x + 12, y + 12], fill=PALETTE[j])
        p.draw.text((x + 18, y + 6), m.upper(), fill="black", font=p.font, anchor="lm")
    p.save(path)


def _wrap(text: str, width: int) -> list[str]:
    parts, cur = [], ""
    for tok in re.split(r"(?<=[/ ])", text):
        if cur and len(cur) + len(tok) > width:
            parts.append(cur)
            cur = ""
        cur += tok
    return [*parts, cur][:4]


def scatter_plot(path: Path, title: str, pred: np.ndarray, mos: np.ndarray) -> None:
    """Predicted score (x) vs MOS (y) of test items."""
    from iqa_bench.eval.metrics import plcc, srcc

    def lim(a: np.ndarray) -> tuple[float, float]:
        lo, hi = float(a.min()), float(a.max())
        pad = 0.05 * ((hi - lo) or 1.0)
        return lo - pad, hi + pad

    s = srcc(pred, mos) if pred.size >= 2 else float("nan")
    c = plcc(pred, mos) if pred.size >= 2 else float("nan")
    p = _Plot(520, 480, lim(pred), lim(mos), f"{title}  SRCC {s:.3f}  PLCC {c:.3f}", "predicted", "MOS")
    p.yticks(5)
    p.xticks(5)
    for x, y in zip(pred, mos):
        px, py = p.px(float(x), float(y))
        p.draw.ellipse([px - 2.5, py - 2.5, px + 2.5, py + 2.5], fill=PALETTE[0])
    p.save(path)


def _safe(name: str) -> str:
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
            name = f"scatter_{_safe(rel)}_{_safe(f.stem)}.png"
            scatter_plot(out / name, f"{rel}: {f.stem} (split {split})", xy[:, 0], xy[:, 1])
            written.append(out / name)
    return written


# ---------------------------------------------------------------------------------------------------- main
def report(
    dirs: Sequence[str | Path], out: str | Path | None = None, max_scatter: int = 12
) -> dict[str, Any]:
    """Collect, summarise and write the report; returns {"out", "summary", "files"}."""
    if not dirs:
        raise UserError("report: give at least one run or multirun directory")
    sources = find_results(dirs)
    rows = [r for p in sources for r in read_results(p)]
    summary = summarise(rows)
    if not summary:
        raise UserError(f"report: no summary ('median' or 'full') rows in {len(sources)} results file(s)")
    out = Path(out) if out is not None else Path(dirs[0]) / "report"
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.md", out / "report.csv"]
    atomic_write_text(files[0], markdown(summary, sources))
    atomic_write_text(files[1], summary_csv(summary))
    for ds in sorted({e["dataset"] for e in summary}):
        path = out / f"bars_{_safe(ds.replace('->', '_to_'))}.png"
        bar_chart(path, ds, [e for e in summary if e["dataset"] == ds])
        files.append(path)
    files += scatter_plots(out, rows, max_scatter)
    return {"out": out, "summary": summary, "files": files}


def log_report_to_wandb(res: dict[str, Any], project: str) -> None:
    """The summary table (a `wandb.Table`) and every plot (`wandb.Image`) as one W&B run of job type "report"."""
    import os

    try:
        import wandb
    except ImportError:
        raise UserError("--wandb: the wandb package is not installed (pip install -e .[wandb])") from None
    mode = os.environ.get("WANDB_MODE", "offline")
    run = wandb.init(project=project, job_type="report", dir=str(res["out"]), mode=mode)
    try:
        cols = ["model", "baseline", "dataset", "metric", "median", "spread", "spread_over", "n_runs"]
        data = [[e[c] for c in cols] for e in res["summary"]]
        images = {f"report/{p.stem}": wandb.Image(str(p)) for p in res["files"] if p.suffix == ".png"}
        run.log({"report/table": wandb.Table(columns=cols, data=data), **images})
    finally:
        run.finish()


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m iqa_bench.report",
        description="Collect results.csv files of train/evaluate runs into one table and plots.",
    )
    ap.add_argument("dirs", nargs="+", help="run or multirun directories (searched recursively)")
    ap.add_argument("--out", default=None, help="output folder (default: <first DIR>/report)")
    ap.add_argument("--max-scatter", type=int, default=12, help="at most this many scatter plots")
    ap.add_argument(
        "--wandb",
        nargs="?",
        const="iqa_bench",
        default=None,
        metavar="PROJECT",
        help="also log the table and plots to W&B (offline unless WANDB_MODE=online); default project iqa_bench",
    )
    args = ap.parse_args(argv)
    res = report(args.dirs, args.out, args.max_scatter)
    if args.wandb:
        log_report_to_wandb(res, args.wandb)
    print((res["out"] / "report.md").read_text(), flush=True)
    print(f"Report written to {res['out']} ({len(res['files'])} files)", flush=True)


if __name__ == "__main__":
    main()
