"""Result files of a run: `results.csv` (one row per encoder x dataset x split, plus median rows) and
`results.json` (the same rows plus run metadata), both written atomically; and the printed summary table.

Columns: method, backbone, ckpt (checkpoint path, or 'pretrained' / 'random_init' labels), seed, protocol ('ridge',
'ridge_cross', 'finetune'), dataset (the test set), train_on (cross-dataset only: the set the regressor was fitted
on), split (0.. or 'median', or 'full' for cross-dataset), the metrics, alpha (ridge only), their IQRs (median
rows), part sizes, the validation SRCC of the selected model and `splits` ('random' or 'official': which split
protocol produced the row) and `n_excluded` (images of the set that failed to decode and were left out)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iqa_bench.utils.atomic import atomic_write_json, atomic_write_text

RESULT_COLUMNS = (
    "method",
    "backbone",
    "ckpt",
    "seed",
    "protocol",
    "dataset",
    "train_on",
    "split",
    "srcc",
    "plcc",
    "plcc_logistic",
    "krcc",
    "alpha",
    "srcc_iqr",
    "plcc_iqr",
    "krcc_iqr",
    "n_train",
    "n_val",
    "n_test",
    "val_srcc",
    "splits",
    "n_excluded",
)


def result_rows(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Evaluator rows (with an 'encoder' key: 'pretrained' | 'random_init' | ...) -> rows with RESULT_COLUMNS.
    `meta` gives method, backbone, seed and the checkpoint label of the pretrained encoder."""
    out = []
    for r in rows:
        ckpt = meta.get("ckpt", "pretrained") if r["encoder"] == "pretrained" else r["encoder"]
        row = {c: r.get(c, "") for c in RESULT_COLUMNS}
        row["protocol"] = r.get("protocol") or "ridge"
        row.update(method=meta["method"], backbone=meta["backbone"], seed=meta["seed"], ckpt=ckpt)
        out.append(row)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def write_results(run_dir: str | Path, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> Path:
    """Write `results.csv` and `results.json` into `run_dir` atomically; returns the CSV path."""
    run_dir = Path(run_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RESULT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _fmt(r.get(k, "")) for k in RESULT_COLUMNS})
    atomic_write_text(run_dir / "results.csv", buf.getvalue())
    atomic_write_json(run_dir / "results.json", {"meta": dict(meta), "rows": [dict(r) for r in rows]})
    return run_dir / "results.csv"


def summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the median rows: ckpt x dataset -> SRCC / PLCC / KRCC (IQR of SRCC in brackets)."""
    lines = ["| encoder | dataset | SRCC (IQR) | PLCC | KRCC | alpha |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("split") not in ("median", "full"):
            continue
        ds = f"{r['train_on']} -> {r['dataset']}" if r.get("train_on") else r["dataset"]
        iqr = r.get("srcc_iqr", "")
        iqr_s = f" ({iqr:.3f})" if isinstance(iqr, float) else ""
        alpha = r.get("alpha", "")
        alpha_s = f"{alpha:.3g}" if isinstance(alpha, float) and not math.isnan(alpha) else "-"
        lines.append(
            f"| {r['ckpt']} | {ds} | {r['srcc']:.3f}{iqr_s} | {r['plcc']:.3f} | {r['krcc']:.3f} | {alpha_s} |"
        )
    return "\n".join(lines)
