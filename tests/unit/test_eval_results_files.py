"""eval/results.py: the rows, the two result files and the printed summary table, field by field."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from iqa_bench.eval.results import RESULT_COLUMNS, result_rows, summary_table, write_results

META = {"method": "arniqa", "backbone": "resnet50", "seed": 7, "ckpt": "runs/x/last.ckpt"}


def _raw(encoder: str, **kw: Any) -> dict[str, Any]:
    """An evaluator row as the runners produce it."""
    return {"encoder": encoder, "dataset": "kadid", "split": "median", "srcc": 0.9, **kw}


def test_result_rows_fill_every_column_and_label_the_checkpoint() -> None:
    rows = result_rows(
        [
            _raw("pretrained", protocol="finetune", extra="dropped"),
            _raw("random_init"),
            _raw("pretrained", protocol=""),
            _raw("pretrained", protocol=None),
        ],
        META,
    )
    assert [list(r) for r in rows] == [list(RESULT_COLUMNS)] * 4  # every column, in order, nothing else
    assert [r["ckpt"] for r in rows] == [
        "runs/x/last.ckpt",
        "random_init",
        "runs/x/last.ckpt",
        "runs/x/last.ckpt",
    ]
    assert [r["protocol"] for r in rows] == ["finetune", "ridge", "ridge", "ridge"]
    for r in rows:
        assert (r["method"], r["backbone"], r["seed"]) == ("arniqa", "resnet50", 7)
        assert r["dataset"] == "kadid" and r["srcc"] == 0.9
        assert r["train_on"] == "" and r["alpha"] == ""  # columns the row lacks are empty strings


def test_result_rows_without_a_checkpoint_label_say_pretrained() -> None:
    meta = {k: v for k, v in META.items() if k != "ckpt"}
    rows = result_rows([_raw("pretrained"), _raw("imagenet")], meta)
    assert [r["ckpt"] for r in rows] == ["pretrained", "imagenet"]


def test_write_results_csv_formats_and_json_keeps_the_values(tmp_path: Path) -> None:
    rows = result_rows(
        [
            _raw("pretrained", srcc=0.123456789, plcc=float("nan"), alpha=1e-7, n_test=120, split=0),
            _raw("random_init", srcc=-0.5, krcc=12345678.9),
        ],
        META,
    )
    out = write_results(tmp_path / "new" / "run", rows, {"method": "arniqa", "note": "x"})
    assert out == tmp_path / "new" / "run" / "results.csv"
    text = out.read_text()
    assert text.endswith("\n") and b"\r" not in out.read_bytes()  # one "\n" per row, no CRLF
    lines = text.splitlines()
    assert lines[0] == ",".join(RESULT_COLUMNS) and len(lines) == 3
    got = list(csv.DictReader(text.splitlines()))
    assert got[0]["srcc"] == "0.123457"  # 6 significant digits
    assert got[0]["plcc"] == ""  # nan is an empty cell
    assert got[0]["alpha"] == "1e-07" and got[0]["n_test"] == "120" and got[0]["split"] == "0"
    assert got[1]["srcc"] == "-0.5" and got[1]["krcc"] == "1.23457e+07"
    assert got[1]["ckpt"] == "random_init" and got[1]["seed"] == "7"
    data = json.loads((tmp_path / "new" / "run" / "results.json").read_text())
    assert data["meta"] == {"method": "arniqa", "note": "x"}
    assert data["rows"][0]["srcc"] == 0.123456789 and data["rows"][0]["n_test"] == 120
    assert data["rows"][0]["plcc"] is None  # nan is written as null
    assert [list(r) for r in data["rows"]] == [list(RESULT_COLUMNS)] * 2


def test_write_results_ignores_keys_outside_the_columns(tmp_path: Path) -> None:
    row = {"dataset": "koniq", "srcc": 0.5, "not_a_column": 3}
    write_results(tmp_path, [row], {})
    got = list(csv.DictReader((tmp_path / "results.csv").read_text().splitlines()))
    assert got == [{c: {"dataset": "koniq", "srcc": "0.5"}.get(c, "") for c in RESULT_COLUMNS}]


def _row(**kw: Any) -> dict[str, Any]:
    base = {
        "ckpt": "pretrained",
        "dataset": "kadid",
        "train_on": "",
        "split": "median",
        "srcc": 0.91234,
        "plcc": 0.85,
        "krcc": 0.7349,
        "srcc_iqr": 0.0123,
        "alpha": 0.5,
    }
    return {**base, **kw}


def test_summary_table_lists_median_and_cross_rows_only() -> None:
    table = summary_table(
        [
            _row(),
            _row(split=0, ckpt="per-split"),
            _row(split="full", train_on="koniq", dataset="live", srcc_iqr="", alpha=float("nan")),
            _row(ckpt="random_init", alpha=""),
            _row(ckpt="tiny", alpha=123456.0, srcc_iqr=0.5),
        ]
    )
    assert table.splitlines() == [
        "| encoder | dataset | SRCC (IQR) | PLCC | KRCC | alpha |",
        "|---|---|---|---|---|---|",
        "| pretrained | kadid | 0.912 (0.012) | 0.850 | 0.735 | 0.5 |",
        "| pretrained | koniq -> live | 0.912 | 0.850 | 0.735 | - |",
        "| random_init | kadid | 0.912 (0.012) | 0.850 | 0.735 | - |",
        "| tiny | kadid | 0.912 (0.500) | 0.850 | 0.735 | 1.23e+05 |",
    ]


def test_summary_table_without_rows_is_the_header() -> None:
    assert (
        summary_table([])
        == "| encoder | dataset | SRCC (IQR) | PLCC | KRCC | alpha |\n|---|---|---|---|---|---|"
    )
    # a row without a 'split' key is not a summary row
    assert summary_table([{k: v for k, v in _row().items() if k != "split"}]).count("\n") == 1
