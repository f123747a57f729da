"""End-to-end `train`: fit ARNIQA on the built-in data, evaluate, write results (CPU, smoke settings)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import torch

from iqa_bench.eval.results import RESULT_COLUMNS
from iqa_bench.train import train
from iqa_bench.utils.resolvers import PROJECT_ROOT


def test_fast_dev_run_trains_and_writes_results(compose_cfg):
    cfg = compose_cfg(["experiment=smoke", "trainer.fast_dev_run=true"])
    out = train(cfg)
    run_dir = out["run_dir"]
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    assert list(rows[0].keys()) == list(RESULT_COLUMNS)
    # 2 encoders x 1 dataset x (3 splits + median)
    assert len(rows) == 2 * (3 + 1)
    assert {r["ckpt"] for r in rows} == {"pretrained", "random_init"}
    medians = [r for r in rows if r["split"] == "median"]
    assert len(medians) == 2
    for r in rows:
        assert r["method"] == "arniqa" and r["backbone"] == "tiny" and r["dataset"] == "builtin_synthetic"
        for k in ("srcc", "plcc", "krcc"):
            v = float(r[k])
            assert -1.0 <= v <= 1.0 and not math.isnan(v)
        assert float(r["alpha"]) > 0
    for enc in ("pretrained", "random_init"):
        per_split = [float(r["srcc"]) for r in rows if r["ckpt"] == enc and r["split"] != "median"]
        med = next(float(r["srcc"]) for r in medians if r["ckpt"] == enc)
        assert abs(med - sorted(per_split)[1]) < 1e-5  # median of 3 splits
    payload = json.loads((run_dir / "results.json").read_text())
    assert payload["meta"]["method"] == "arniqa" and len(payload["rows"]) == len(rows)
    assert not list(run_dir.glob(".*.tmp"))  # no temp files left behind


def test_short_run_changes_weights_and_checkpoint_reloads(compose_cfg):
    cfg = compose_cfg(["experiment=smoke"])
    out = train(cfg)
    ckpt = out["checkpoint"]
    assert ckpt and ckpt.endswith("last.ckpt")
    from iqa_bench.methods.arniqa import ARNIQA

    module = ARNIQA.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    f = module.features(x)
    assert f.shape == (2, module.feature_dim) == (2, 240)
    metrics = list(csv.DictReader((out["run_dir"] / "metrics.csv").open()))
    losses = [float(r["train/loss"]) for r in metrics if r.get("train/loss")]
    assert losses and all(math.isfinite(v) for v in losses)


def test_cli_run_dir_override(tmp_path):
    run_dir = tmp_path / "cli_run"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "iqa_bench.train",
            "experiment=smoke",
            "trainer.fast_dev_run=true",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (run_dir / "results.csv").is_file() and (run_dir / "results.json").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "| pretrained | builtin_synthetic |" in res.stdout
    assert "| random_init | builtin_synthetic |" in res.stdout
    assert f"Run directory: {run_dir}" in res.stdout


def test_wandb_logger_offline(compose_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_cfg(["experiment=smoke", "trainer.fast_dev_run=true", "logger=wandb"])
    assert cfg.logger.wandb.offline is True and "csv" in cfg.logger
    out = train(cfg)
    runs = list((out["run_dir"] / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "W&B must write an offline run inside the run dir"
    assert (out["run_dir"] / "results.csv").is_file()
