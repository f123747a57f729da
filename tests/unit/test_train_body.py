"""What `train()` itself does around the fit (the fit is stubbed, nothing trains): skipping a finished sweep job,
making the run folder, silencing only Lightning's known-harmless warnings, printing the config once per sweep,
torch threads / denormals / seeding, compiling the backbone, the datamodule's sample format, and closing the
loggers with the job's outcome."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict


@pytest.fixture
def fit_probe(monkeypatch):
    """Replace `_fit_and_evaluate`; record the arguments and the torch/RNG state seen at fit time."""
    import iqa_bench.train as train_mod

    seen: dict = {"calls": 0}
    threads, flush = torch.get_num_threads(), False
    monkeypatch.setenv("PL_GLOBAL_SEED", "unset")  # restored after the test (seed_everything writes both)
    monkeypatch.setenv("PL_SEED_WORKERS", "unset")

    def fake(cfg, run_dir, method, baselines, datamodule, eval_sets, loggers, ckpt_path):
        seen["calls"] += 1
        seen.update(run_dir=run_dir, run_dir_exists=run_dir.is_dir(), method=method, datamodule=datamodule)
        seen.update(eval_sets=eval_sets, loggers=loggers, threads=torch.get_num_threads())
        seen["denormal_flushed"] = (torch.tensor([1e-38]) / 1000.0).item() == 0.0
        seen["seed_env"] = (os.environ.get("PL_GLOBAL_SEED"), os.environ.get("PL_SEED_WORKERS"))
        seen["first_draw"] = torch.rand(1).item()
        if seen.get("raise"):
            raise RuntimeError("fit broke")
        return [{"split": "median"}], "final.ckpt"

    monkeypatch.setattr(train_mod, "_fit_and_evaluate", fake)
    yield seen
    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush)


def _store_results(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.csv").write_text("method,srcc\narniqa,0.5\n")
    payload = {"meta": {"checkpoint": "old.ckpt"}, "rows": [{"srcc": 0.5}]}
    (run_dir / "results.json").write_text(json.dumps(payload))


def test_a_finished_sweep_job_is_skipped_only_in_a_multirun_with_skip_existing(
    compose_cfg, fit_probe, monkeypatch, capsys
):
    import iqa_bench.train as train_mod

    cfg = compose_cfg(["experiment=smoke"])
    run_dir = Path(cfg.paths.output_dir)
    monkeypatch.setattr(train_mod, "is_multirun", lambda: True)
    train_mod.train(cfg)  # multirun, nothing stored yet: the job runs
    assert fit_probe["calls"] == 1
    _store_results(run_dir)
    out = train_mod.train(cfg)
    assert fit_probe["calls"] == 1, "a finished multirun job must not train again"
    assert out == {"run_dir": run_dir, "rows": [{"srcc": 0.5}], "checkpoint": "old.ckpt"}
    assert f"Skipping {run_dir}: results.csv already exists" in capsys.readouterr().out
    with open_dict(cfg):
        del cfg["skip_existing"]  # a config without the key behaves as train.yaml's default (skip)
    assert train_mod.train(cfg)["checkpoint"] == "old.ckpt" and fit_probe["calls"] == 1
    train_mod.train(compose_cfg(["experiment=smoke", "skip_existing=false"]))
    assert fit_probe["calls"] == 2
    monkeypatch.setattr(train_mod, "is_multirun", lambda: False)
    assert train_mod.train(compose_cfg(["experiment=smoke"]))["checkpoint"] == "final.ckpt"
    assert fit_probe["calls"] == 3, "a single run never skips: rerunning a command resumes or retrains"


def test_the_run_folder_is_made_with_its_parents(compose_cfg, fit_probe, tmp_path):
    from iqa_bench.train import train

    run_dir = tmp_path / "deep" / "sweep" / "job"
    train(compose_cfg(["experiment=smoke", f"hydra.run.dir={run_dir}"]))
    assert fit_probe["run_dir"] == run_dir and fit_probe["run_dir_exists"]


# Messages of Lightning versions the project supports; each is harmless for this framework (train.py says why).
_HARMLESS = [
    "The 'train_dataloader' does not have many workers which may be a bottleneck. Consider increasing it.",
    "The dataloader, train_dataloader, has too few batches for the logging interval.",
    "The number of training batches (4) is smaller than the logging interval Trainer(log_every_n_steps=50).",
    "You have overridden `on_after_batch_transfer` in `LightningModule` but have passed in a `LightningDataModule`.",
    "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)` instead.",
    "Experiment logs directory /runs/x exists and is not empty. Previous log files in this directory will be deleted",
    "You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not resumable.",
]


def test_only_lightnings_harmless_warnings_are_silenced(compose_cfg, fit_probe):
    from iqa_bench.train import train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(compose_cfg(["experiment=smoke"]))
        caught.clear()
        for message in _HARMLESS:
            warnings.warn(message, UserWarning, stacklevel=1)
        warnings.warn("The loss is NaN at step 3", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["The loss is NaN at step 3"]


def test_the_config_tree_is_printed_once_per_sweep(compose_cfg, fit_probe, monkeypatch):
    import iqa_bench.train as train_mod

    printed = []
    monkeypatch.setattr(train_mod, "print_config_tree", printed.append)
    cfg = compose_cfg(["experiment=smoke"])
    train_mod.train(cfg)
    assert printed == [cfg]
    train_mod.train(compose_cfg(["experiment=smoke", "print_config=false"]))
    assert len(printed) == 1
    monkeypatch.setattr(train_mod, "job_number", lambda: 1)
    train_mod.train(compose_cfg(["experiment=smoke"]))
    assert len(printed) == 1, "only the sweep's first job prints the tree"
    monkeypatch.setattr(train_mod, "job_number", lambda: 0)
    cfg = compose_cfg(["experiment=smoke"])
    with open_dict(cfg):
        del cfg["print_config"]  # train.yaml's default: print
    train_mod.train(cfg)
    assert len(printed) == 2


def test_threads_denormals_and_seed_are_set_before_the_fit(compose_cfg, fit_probe, caplog):
    from iqa_bench.train import train

    torch.set_num_threads(2)
    torch.set_flush_denormal(False)
    with caplog.at_level("INFO"):
        train(compose_cfg(["experiment=smoke", "num_threads=1", "seed=11"]))
    assert fit_probe["threads"] == 1 and fit_probe["denormal_flushed"]
    assert fit_probe["seed_env"] == ("11", "1"), (
        "seeded with workers=True (each data worker gets its own seed)"
    )
    assert not [r for r in caplog.records if "Seed set to" in r.getMessage()], "seeding is quiet"
    first = fit_probe["first_draw"]
    torch.manual_seed(0)
    train(compose_cfg(["experiment=smoke", "seed=11"]))
    assert fit_probe["threads"] == 1, "num_threads=null keeps torch's current thread count"
    assert fit_probe["first_draw"] == first, "the run seed decides the fit's random numbers"
    train(compose_cfg(["experiment=smoke", "seed=12"]))
    assert fit_probe["first_draw"] != first


def test_compile_is_applied_to_the_backbone_in_place_with_its_options(compose_cfg, fit_probe, monkeypatch):
    from iqa_bench.train import train

    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append((self, kw)))
    train(compose_cfg(["experiment=smoke"]))
    assert compiled == []
    train(compose_cfg(["experiment=smoke", "compile=true", "+compile_options.mode=reduce-overhead"]))
    assert compiled == [(fit_probe["method"].backbone, {"mode": "reduce-overhead"})]
    train(compose_cfg(["experiment=smoke", "compile=true", "compile_options=null"]))
    assert compiled[-1] == (fit_probe["method"].backbone, {})
    cfg = compose_cfg(["experiment=smoke"])
    with open_dict(cfg):
        del cfg["compile"]  # train.yaml's default: eager
    train(cfg)
    assert len(compiled) == 2


def test_the_datamodule_serves_the_methods_sample_format(compose_cfg, fit_probe):
    from iqa_bench.train import train

    for method, fmt in (("rankiqa", "ladder"), ("arniqa", "arniqa_pairs")):
        train(compose_cfg(["experiment=smoke", f"method={method}"]))
        assert fit_probe["method"].sample_format == fmt
        assert fit_probe["datamodule"].sample_format == fmt


def test_without_an_evaluator_the_run_trains_only(compose_cfg, fit_probe, capsys):
    from iqa_bench.train import train

    train(compose_cfg(["experiment=smoke"]))
    assert fit_probe["eval_sets"], "the smoke experiment evaluates on the built-in set"
    capsys.readouterr()
    train(compose_cfg(["experiment=smoke", "~evaluator"]))
    assert fit_probe["eval_sets"] == {}
    out = capsys.readouterr().out.splitlines()
    assert "No evaluator configured (~evaluator): training without evaluation." in out


def test_loggers_are_closed_with_the_jobs_outcome(compose_cfg, fit_probe, monkeypatch, capsys):
    import iqa_bench.train as train_mod

    closed = []
    monkeypatch.setattr(train_mod, "close_loggers", lambda loggers, failed: closed.append((loggers, failed)))
    cfg = compose_cfg(["experiment=smoke", "logger=csv"])
    with open_dict(cfg):
        cfg.logger.off = None  # a logger switched off on the command line (`logger.x=null`)
    out = train_mod.train(cfg)
    assert [type(lg).__name__ for lg in fit_probe["loggers"]] == ["CSVLogger"]
    assert closed == [(fit_probe["loggers"], False)] and out["rows"] == [{"split": "median"}]
    assert "Run directory:" in capsys.readouterr().out
    fit_probe["raise"] = True
    with pytest.raises(RuntimeError, match="fit broke"):
        train_mod.train(compose_cfg(["experiment=smoke", "logger=csv"]))
    assert len(closed) == 2 and closed[-1][1] is True, "a failed job closes its loggers as failed"
    assert "Run directory:" not in capsys.readouterr().out
