"""`iqa-report DIR [DIR ...] [--out OUT]` (python -m iqa_bench.report): one table and plots from many runs.

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

Charts are drawn with matplotlib (`report_plots`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iqa_bench.errors import UserError, exit_on_user_error
from iqa_bench.report_plots import bar_chart, safe_name, scatter_plots
from iqa_bench.report_tables import (
    SUMMARY_COLUMNS,
    find_results,
    markdown,
    read_results,
    summarise,
    summary_csv,
)
from iqa_bench.utils.atomic import atomic_write_text


def report(
    dirs: Sequence[str | Path], out: str | Path | None = None, max_scatter: int = 12
) -> dict[str, Any]:
    """Collect, summarise and write the report; returns {"out", "summary", "files"}."""
    if not dirs:
        raise UserError("report: give at least one run or multirun directory")
    per_file = {p: read_results(p) for p in find_results(dirs)}
    sources = [p for p, rs in per_file.items() if rs]  # a skipped (truncated) file is not a source
    rows = [r for rs in per_file.values() for r in rs]
    summary = summarise(rows)
    if not summary:
        raise UserError(f"report: no summary ('median' or 'full') rows in {len(sources)} results file(s)")
    out = Path(out) if out is not None else Path(dirs[0]) / "report"
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.md", out / "report.csv"]
    atomic_write_text(files[0], markdown(summary, sources))
    atomic_write_text(files[1], summary_csv(summary))
    for ds in sorted({e["dataset"] for e in summary}):
        path = out / f"bars_{safe_name(ds.replace('->', '_to_'))}.png"
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
        cols = SUMMARY_COLUMNS
        data = [[e[c] for c in cols] for e in res["summary"]]
        images = {f"report/{p.stem}": wandb.Image(str(p)) for p in res["files"] if p.suffix == ".png"}
        run.log({"report/table": wandb.Table(columns=cols, data=data), **images})
    finally:
        run.finish()


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="iqa-report",
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
