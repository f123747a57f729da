"""Collecting `results.csv` files of many runs and summarising them into tables (markdown and long CSV).

A model is `method/backbone` (plus `[protocol]` when not the ridge probe); initialisation rows (ckpt
`init=random` / `init=imagenet`, older runs: `random_init`) are baselines. A summary entry is the median over runs (seeds, checkpoints) of each run's
median-over-splits value, with its spread: the IQR over runs when there are >= 2 runs, else the IQR over that
run's splits. Cross-dataset rows appear as dataset `A->B`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iqa_bench.errors import UserError

log = logging.getLogger(__name__)

REQUIRED = ("method", "backbone", "ckpt", "dataset", "split", "srcc", "plcc")
METRICS = ("srcc", "plcc")
SUMMARY_SPLITS = ("median", "full")
BASELINE_LABELS = ("init=random", "init=imagenet", "init=weights", "random_init")
"""ckpt labels of initialisation baselines (`methods/baselines.py`; `random_init` = older runs' name)."""
SUMMARY_COLUMNS = ["model", "baseline", "dataset", "metric", "median", "spread", "spread_over", "n_runs"]


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
    """Rows of one results.csv with `run_dir` added; UserError naming the file and the missing columns. A file
    cut off mid-row (no final newline, or a row with fewer or more fields than the header: a copy or a disk that
    failed) is skipped with a warning naming it: [] is returned, so the report does not list it as a source."""
    try:
        text = path.read_text(encoding="utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"report: {path} lacks column(s) {missing}")
        rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"report: cannot read {path} ({type(exc).__name__}: {exc})") from None
    bad = [i for i, r in enumerate(rows, start=2) if None in r or any(v is None for v in r.values())]
    if bad or (text and not text.endswith("\n")):
        where = f"line {bad[0]} has the wrong number of fields" if bad else "it does not end with a newline"
        log.warning("report: skipping %s: the file is truncated or damaged (%s)", path, where)
        return []
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
        "PLCC is on raw predictions. Rows marked (init=...) are the initialisation baselines (untrained or ImageNet-initialised encoders).",
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
    cols = SUMMARY_COLUMNS
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
