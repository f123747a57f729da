"""`report`: collects results.csv files of several runs into one table (median + spread over runs) and plots."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from iqa_bench.errors import UserError
from iqa_bench.eval.results import RESULT_COLUMNS, write_results
from iqa_bench.report import main, report


def _run(
    path,
    method,
    seed,
    srcc,
    ckpt="pretrained",
    dataset="kadid",
    protocol="ridge",
    train_on="",
    split="median",
):
    row = {c: "" for c in RESULT_COLUMNS}
    row.update(
        method=method,
        backbone="tiny",
        ckpt=ckpt,
        seed=seed,
        protocol=protocol,
        dataset=dataset,
        train_on=train_on,
        split=split,
        srcc=srcc,
        plcc=srcc - 0.01,
        krcc=srcc - 0.1,
        srcc_iqr=0.02,
        plcc_iqr=0.03,
    )
    per_split = {**row, "split": 0}
    write_results(path, [per_split, row], {"method": method})
    return path


def test_table_medians_spread_baseline_and_plots(tmp_path):
    multirun = tmp_path / "multirun"
    for i, s in enumerate([0.70, 0.80, 0.90]):
        _run(multirun / str(i), "arniqa", i, s)
    _run(multirun / "3", "arniqa", 0, 0.30, ckpt="init=random")
    _run(tmp_path / "other", "rankiqa", 0, 0.60, dataset="kadid")
    _run(
        tmp_path / "cross",
        "arniqa",
        0,
        0.5,
        dataset="koniq",
        train_on="kadid",
        split="full",
        protocol="ridge_cross",
    )
    pred_dir = multirun / "0" / "predictions"
    pred_dir.mkdir()
    with (pred_dir / "ckpt__kadid.csv").open("w") as fh:
        fh.write("split,item,label,pred,mos\n")
        for k in range(12):
            fh.write(f"{k % 2},{k},img{k},{k * 0.1},{k * 0.2 + (k % 3) * 0.05}\n")

    res = report([multirun, tmp_path / "other", tmp_path / "cross"], tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| arniqa/tiny | 0.800 [0.100] n=3 |" in md  # median over 3 runs, IQR over runs
    assert "| arniqa/tiny (init=random) | 0.300 [0.020*] n=1 |" in md  # single run: IQR over splits
    assert "kadid->koniq" in md and "rankiqa/tiny" in md
    lines = md.splitlines()
    assert lines.index(next(x for x in lines if x.startswith("| arniqa/tiny (init=random)"))) > lines.index(
        next(x for x in lines if x.startswith("| rankiqa/tiny"))
    )  # baselines listed after the trained models
    rows = list(csv.DictReader((tmp_path / "out" / "report.csv").open()))
    srcc = {(r["model"], r["dataset"]): r for r in rows if r["metric"] == "srcc"}
    assert float(srcc[("arniqa/tiny", "kadid")]["median"]) == pytest.approx(0.8)
    assert srcc[("arniqa/tiny (init=random)", "kadid")]["baseline"] == "True"
    names = {p.name for p in res["files"] if p.suffix == ".png"}
    assert names == {"bars_kadid.png", "bars_kadid_to_koniq.png", "scatter_0_ckpt__kadid.png"}
    for p in res["files"]:
        if p.suffix == ".png":
            assert Image.open(p).size[0] >= 400


def test_runs_are_aggregated_by_median_not_mean(tmp_path):
    """Skewed runs (one collapsed seed): the median (0.81) and the mean (0.64) differ, and so do the IQR (0.2)
    and the standard deviation; only each run's summary row counts, not its per-split rows."""
    for i, s in enumerate([0.10, 0.80, 0.82, 0.84]):
        _run(tmp_path / "runs" / str(i), "arniqa", i, s)
    report([tmp_path / "runs"], tmp_path / "out")
    rows = list(csv.DictReader((tmp_path / "out" / "report.csv").open()))
    (srcc,) = [r for r in rows if r["metric"] == "srcc"]
    assert float(srcc["median"]) == pytest.approx(0.81)
    assert float(srcc["spread"]) == pytest.approx(0.825 - 0.625)  # IQR, linear interpolation
    assert srcc["spread_over"] == "runs" and srcc["n_runs"] == "4"
    (plcc,) = [r for r in rows if r["metric"] == "plcc"]
    assert float(plcc["median"]) == pytest.approx(0.80)
    assert "| arniqa/tiny | 0.810 [0.200] n=4 |" in (tmp_path / "out" / "report.md").read_text()


def test_bad_or_empty_directories_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="no such directory"):
        report([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no results.csv under"):
        report([tmp_path / "empty"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="lacks column"):
        report([bad])
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "missing")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: report: no such directory") and "Traceback" not in err


def test_report_logged_to_wandb_offline(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    for i, s in enumerate([0.70, 0.80]):
        _run(tmp_path / "runs" / str(i), "arniqa", i, s)
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--wandb", "iqa_test"])
    assert wandb.run is None
    run_dirs = list((tmp_path / "rep" / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    media = list(run_dirs[0].rglob("*.png")) + list(run_dirs[0].rglob("*.table.json"))
    assert any(p.suffix == ".png" for p in media) and any(p.name.endswith(".table.json") for p in media)
