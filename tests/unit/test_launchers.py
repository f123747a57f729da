"""Cluster launcher and sweeper configs compose with the train config and instantiate (without submitting)."""

from __future__ import annotations

import importlib

import pytest
from conftest import in_ci
from hydra.utils import instantiate


def _extra_or_skip(module: str, extra: str) -> None:
    """Skip when the optional extra providing `module` is not installed, except in CI (CI=true), which installs
    every extra: there a missing plugin fails instead of silently turning the test off."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if in_ci():
            pytest.fail(f"CI=true but the {extra} extra is not installed: {exc}", pytrace=False)
        pytest.skip(f"needs the {extra} extra (pip install 'iqa_bench[{extra}]')")


def test_slurm_launcher_config(compose_cfg):
    _extra_or_skip("hydra_plugins.hydra_submitit_launcher", "slurm")
    cfg = compose_cfg(
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4"]
    )
    node = cfg.hydra.launcher
    assert node._target_.endswith("SlurmLauncher")
    assert (node.partition, node.gpus_per_node, node.timeout_min) == ("gpu", 4, 1440)
    launcher = instantiate(node)
    assert type(launcher).__name__ == "SlurmLauncher"
    assert launcher.params["partition"] == "gpu" and launcher.params["gpus_per_node"] == 4


def test_optuna_sweeper_config(compose_cfg):
    _extra_or_skip("hydra_plugins.hydra_optuna_sweeper", "optuna")
    cfg = compose_cfg(["hydra/sweeper=optuna_temperature"])
    node = cfg.hydra.sweeper
    assert node.direction == "maximize" and node.n_trials == 20
    assert set(node.params) == {"method.temperature", "method.optimizer.lr"}
    sweeper = instantiate(node)
    assert type(sweeper).__name__ == "OptunaSweeper"


def test_train_returns_the_sweep_objective():
    from iqa_bench.train import objective

    rows = [
        {"split": "0", "ckpt": "pretrained", "srcc": 0.1, "val_srcc": 0.15},
        {"split": "median", "ckpt": "init=random", "srcc": 0.2, "val_srcc": 0.25},
        {"split": "median", "ckpt": "pretrained", "srcc": 0.3, "val_srcc": 0.4, "dataset": "a"},
        {"split": "median", "ckpt": "pretrained", "srcc": 0.9, "val_srcc": 0.6, "dataset": "b"},
    ]
    # validation SRCC of the pretrained encoder's median rows, averaged over datasets; never the test SRCC
    assert objective(rows) == pytest.approx(0.5) and objective([]) is None


def test_optuna_sqlite_storage_round_trip(compose_cfg, tmp_path):
    """The documented `hydra.sweeper.storage=sqlite:///...` works with the released plugin's optuna (needs
    SQLAlchemy < 2, pinned by the `optuna` extra): a study is created, a trial stored, and the study resumes."""
    _extra_or_skip("hydra_plugins.hydra_optuna_sweeper", "optuna")
    import optuna

    db = tmp_path / "optuna.db"
    cfg = compose_cfg(["hydra/sweeper=optuna_temperature", f"hydra.sweeper.storage=sqlite:///{db}"])
    node = cfg.hydra.sweeper
    assert type(instantiate(node)).__name__ == "OptunaSweeper"
    study = optuna.create_study(storage=node.storage, study_name=node.study_name, direction=node.direction)
    trial = study.ask()
    trial.suggest_float("method.temperature", 0.03, 0.5)
    study.tell(trial, 0.42)
    again = optuna.load_study(study_name=node.study_name, storage=node.storage)
    assert db.is_file() and [t.value for t in again.trials] == [0.42]


def test_missing_extra_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the nope extra"):
        _extra_or_skip("hydra_plugins.no_such_plugin", "nope")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but the nope extra is not installed"):
        _extra_or_skip("hydra_plugins.no_such_plugin", "nope")
    _extra_or_skip("hydra.utils", "core")  # installed: no skip, no failure
