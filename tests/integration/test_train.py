"""End-to-end `train`: fit ARNIQA on the built-in data, evaluate, write results (CPU, smoke settings)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import pytest
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
    assert {r["ckpt"] for r in rows} == {"pretrained", "init=random"}
    medians = [r for r in rows if r["split"] == "median"]
    assert len(medians) == 2
    for r in rows:
        assert r["method"] == "arniqa" and r["backbone"] == "tiny" and r["dataset"] == "builtin_synthetic"
        for k in ("srcc", "plcc", "krcc"):
            v = float(r[k])
            assert -1.0 <= v <= 1.0 and not math.isnan(v)
        assert float(r["alpha"]) > 0
    for enc in ("pretrained", "init=random"):
        per_split = [float(r["srcc"]) for r in rows if r["ckpt"] == enc and r["split"] != "median"]
        med = next(float(r["srcc"]) for r in medians if r["ckpt"] == enc)
        assert abs(med - sorted(per_split)[1]) < 1e-5  # median of 3 splits
    payload = json.loads((run_dir / "results.json").read_text())
    assert payload["meta"]["method"] == "arniqa" and len(payload["rows"]) == len(rows)
    assert not list(run_dir.glob(".*.tmp"))  # no temp files left behind


@pytest.mark.parametrize("override", ["~evaluator", "data/eval=[]"])
def test_a_run_without_evaluation_trains_and_writes_no_rows(compose_cfg, capsys, override):
    # the default config (experiment=smoke itself sets evaluator and data.eval keys back)
    small = ["data.pretrain.crop_size=64", "data.pretrain.batch_size=4", "trainer.enable_progress_bar=false"]
    out = train(compose_cfg([*small, "trainer.fast_dev_run=true", override]))
    assert out["rows"] == [] and out["checkpoint"]
    assert "Evaluation (" not in capsys.readouterr().out
    assert list(csv.DictReader((out["run_dir"] / "results.csv").open())) == []


def test_short_run_changes_weights_and_checkpoint_reloads(compose_cfg):
    import lightning as L

    from iqa_bench.methods.arniqa import ARNIQA
    from iqa_bench.utils.instantiate import instantiate

    cfg = compose_cfg(["experiment=smoke"])
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # what `train` does before building the method
    initial = instantiate(cfg.method).eval()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    again = instantiate(cfg.method).state_dict()  # the seeded init is reproducible, so it is the run's init
    assert all(torch.equal(v, again[k]) for k, v in initial.state_dict().items())
    out = train(cfg)
    ckpt = out["checkpoint"]
    assert ckpt and ckpt.endswith("last.ckpt")
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["global_step"] == cfg.trainer.max_steps == 3

    module = ARNIQA.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    init_sd, trained_sd = initial.state_dict(), module.state_dict()
    assert init_sd.keys() == trained_sd.keys()
    moved = {k for k, v in init_sd.items() if v.is_floating_point() and not torch.equal(v, trained_sd[k])}
    assert any(k.startswith("backbone.") for k in moved) and any(k.startswith("projector.") for k in moved)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f = module.features(x)
        assert f.shape == (2, module.feature_dim) == (2, 240)
        assert not torch.allclose(f, initial.features(x))  # the reloaded encoder is the trained one
        torch.testing.assert_close(module.features(x), f, rtol=0, atol=0)
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
    assert "| init=random | builtin_synthetic |" in res.stdout
    assert f"Run directory: {run_dir}" in res.stdout
    assert "CONFIG" in res.stdout and "temperature: 0.1" in res.stdout  # the config tree printed at start


def test_many_loggers_sample_grids_and_closed_runs(compose_cfg, monkeypatch):
    """logger=many: CSV + TensorBoard + offline W&B; a distorted-sample grid with labels every N steps; the
    evaluation metrics reach the loggers; the W&B run is closed at the end."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_cfg(["experiment=smoke", "logger=many", "callbacks.sample_grid.every_n_steps=2"])
    assert cfg.logger.wandb.offline is True and {"csv", "tensorboard", "wandb"} <= set(cfg.logger)
    out = train(cfg)
    run_dir = out["run_dir"]
    assert wandb.run is None, "the W&B run must be finished"
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), (
        "W&B must write an offline run inside the run dir"
    )
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    grids = sorted((run_dir / "samples").glob("step*.png"))
    assert [g.name for g in grids] == ["step000000.png", "step000002.png"]  # max_steps=3, every 2 steps
    captions = json.loads(grids[0].with_suffix(".json").read_text())["captions"]
    assert len(captions) == cfg.data.pretrain.batch_size
    assert all(c == "pristine" or "@" in c for c in captions)
    metrics = list(csv.DictReader((run_dir / "metrics.csv").open()))
    srcc = [
        r["eval/builtin_synthetic/pretrained/srcc"]
        for r in metrics
        if r.get("eval/builtin_synthetic/pretrained/srcc")
    ]
    results = list(csv.DictReader((run_dir / "results.csv").open()))
    (median,) = [r for r in results if r["ckpt"] == "pretrained" and r["split"] == "median"]
    assert len(srcc) == 1 and float(srcc[0]) == pytest.approx(float(median["srcc"]), abs=1e-6)


def test_a_failing_job_still_closes_its_wandb_run(compose_cfg, monkeypatch):
    import pytest
    import wandb
    from test_resume import Crash

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_cfg(
        [
            "experiment=smoke",
            "logger=wandb",
            "+callbacks.crash._target_=test_resume.CrashAt",
            "+callbacks.crash.step=1",
        ]
    )
    with pytest.raises(Crash):
        train(cfg)
    assert wandb.run is None


def test_compile_true_compiles_the_backbone_in_place(compose_cfg, monkeypatch):
    """compile=true: the backbone goes through torch.compile (in place, so checkpoints keep eager names)."""
    import torch.nn as nn

    calls = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: calls.append((type(self).__name__, kw)))
    out = train(
        compose_cfg(
            [
                "experiment=smoke",
                "trainer.fast_dev_run=true",
                "compile=true",
                "+compile_options.mode=reduce-overhead",
            ]
        )
    )
    assert calls == [("Backbone", {"mode": "reduce-overhead"})]
    assert (out["run_dir"] / "results.csv").is_file()


@pytest.mark.slow
def test_compiled_smoke_run_on_cpu(compose_cfg):
    """The real thing (inductor needs a C compiler): a compiled smoke run trains, evaluates, and its checkpoint
    loads into an eager module."""
    from iqa_bench.methods.arniqa import ARNIQA

    out = train(compose_cfg(["experiment=smoke", "compile=true"]))
    module = ARNIQA.load_from_checkpoint(out["checkpoint"], map_location="cpu", weights_only=True)
    assert module.features(torch.rand(1, 3, 64, 64)).shape == (1, 240)
