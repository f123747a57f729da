"""What `train.py` hands on: the sweep objective, the final `last.ckpt`, logged medians, closed loggers, and what
`train` and `_fit_and_evaluate` pass to the trainer and the evaluator (no training: the fit is stubbed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from _wiring import _save
from omegaconf import OmegaConf


# -- train.py: what the entry point hands on -----------------------------------------------------------------------
def test_objective_is_the_mean_median_validation_srcc_of_the_pretrained_encoder():
    from iqa_bench.train import objective

    rows = [
        {"split": "median", "ckpt": "pretrained", "val_srcc": 0.5},
        {"split": "median", "ckpt": "pretrained", "val_srcc": "0.7"},
        {"split": "median", "ckpt": "pretrained", "val_srcc": ""},
        {"split": "median", "ckpt": "pretrained", "val_srcc": None},
        {"split": "median", "ckpt": "pretrained"},
        {"split": "median", "ckpt": "init=random", "val_srcc": 0.9},
        {"split": "0", "ckpt": "pretrained", "val_srcc": 0.1},
    ]
    assert objective(rows) == pytest.approx(0.6) and isinstance(objective(rows), float)
    assert objective(rows[2:]) is None and objective([]) is None


class _Recorder:
    def __init__(self, fail_on: str = "") -> None:
        self.calls, self.fail_on = [], fail_on

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == self.fail_on:
                raise RuntimeError(f"{name} broke")

        return call


def test_save_final_checkpoint_writes_last_ckpt_of_the_checkpoint_callback(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from iqa_bench.train import save_final_checkpoint

    trainer = _Recorder()
    assert save_final_checkpoint(trainer, [object(), ModelCheckpoint(dirpath=None)]) is None
    assert trainer.calls == []
    cb = ModelCheckpoint(dirpath=tmp_path / "ckpts")
    other = ModelCheckpoint(dirpath=tmp_path / "other")
    path = save_final_checkpoint(trainer, [object(), cb, other])
    assert path == str(tmp_path / "ckpts" / "last.ckpt") and cb.last_model_path == path
    assert trainer.calls == [("save_checkpoint", (path,), {"weights_only": False})]
    assert other.last_model_path == ""


def test_log_results_sends_medians_and_survives_a_broken_logger(caplog):
    from iqa_bench.train import log_results

    rows = [
        {
            "split": "median",
            "dataset": "kadid",
            "ckpt": "pretrained",
            "srcc": 0.5,
            "plcc": "0.25",
            "krcc": None,
            "method": "arniqa",
            "backbone": "tiny",
            "alpha": 1.0,
        },
        {"split": "0", "dataset": "kadid", "ckpt": "pretrained", "srcc": 0.1, "plcc": 0.1, "krcc": 0.1},
    ]
    broken, table = _Recorder(fail_on="log_metrics"), _Recorder()
    with caplog.at_level(logging.WARNING):
        log_results([broken, table], rows, step=7)
    metrics = {"eval/kadid/pretrained/srcc": 0.5, "eval/kadid/pretrained/plcc": 0.25}
    assert broken.calls == [("log_metrics", (metrics,), {"step": 7})]  # stopped there, then the next logger
    assert [r.getMessage() for r in caplog.records] == [
        "could not log results to _Recorder: log_metrics broke"
    ]
    cols = ["method", "backbone", "ckpt", "dataset", "srcc", "plcc", "krcc", "alpha"]
    assert table.calls == [
        ("log_metrics", (metrics,), {"step": 7}),
        (
            "log_table",
            (),
            {
                "key": "eval/results",
                "columns": cols,
                "data": [["arniqa", "tiny", "pretrained", "kadid", 0.5, "0.25", None, 1.0]],
            },
        ),
        ("save", (), {}),
    ]
    quiet = _Recorder()
    log_results([quiet], [rows[1]])  # no median: nothing to log, but the logger is still flushed
    assert quiet.calls == [("save", (), {})]


def test_close_loggers_says_how_the_job_ended(caplog):
    from iqa_bench.train import close_loggers

    a, b = _Recorder(fail_on="finalize"), _Recorder()
    with caplog.at_level(logging.WARNING):
        close_loggers([a, b], failed=True)
    assert a.calls == [("finalize", ("failed",), {})] and b.calls == [("finalize", ("failed",), {})]
    assert [r.getMessage() for r in caplog.records] == ["could not close logger _Recorder: finalize broke"]
    close_loggers([b], failed=False)
    assert b.calls[-1] == ("finalize", ("success",), {})


def test_lightning_adverts_are_dropped():
    from iqa_bench.train import _DropAdverts

    f = _DropAdverts()
    rec = lambda msg: logging.LogRecord("x", logging.INFO, __file__, 1, msg, None, None)  # noqa: E731
    assert not f.filter(rec("Try LitLogger for free")) and not f.filter(rec("litlogger"))
    assert f.filter(rec("GPU available: False"))


@pytest.fixture
def stub_fit(monkeypatch):
    import iqa_bench.train as train_mod

    seen = {}

    def fake(cfg, run_dir, method, baselines, datamodule, eval_sets, loggers, ckpt_path):
        seen.update(
            ckpt_path=ckpt_path, run_dir=run_dir, metrics=sorted(p.name for p in run_dir.glob("metrics*"))
        )
        seen.update(cfg=cfg, method=method, baselines=baselines, datamodule=datamodule, eval_sets=eval_sets)
        seen.update(loggers=loggers)
        return [{"split": "median"}], "final.ckpt"

    monkeypatch.setattr(train_mod, "_fit_and_evaluate", fake)
    return seen


def test_train_resumes_from_the_run_folder_and_keeps_the_old_metrics(compose_cfg, stub_fit, capsys):
    from iqa_bench.train import train

    cfg = compose_cfg(["experiment=smoke", "logger=csv"])
    run_dir = Path(cfg.paths.output_dir)
    out = train(cfg)
    assert stub_fit["ckpt_path"] is None and stub_fit["metrics"] == []
    assert stub_fit["cfg"] is cfg and stub_fit["method"].sample_format == "arniqa_pairs"
    assert list(stub_fit["baselines"]) == ["init=random"] and stub_fit["datamodule"] is not None
    assert isinstance(stub_fit["eval_sets"], dict) and stub_fit["eval_sets"]
    assert [type(lg).__name__ for lg in stub_fit["loggers"]] == ["CSVLogger"]
    assert out == {"run_dir": run_dir, "rows": [{"split": "median"}], "checkpoint": "final.ckpt"}
    assert f"Run directory: {run_dir}" in capsys.readouterr().out
    last = _save(run_dir / "checkpoints" / "last.ckpt")
    (run_dir / "metrics.csv").write_text("step\n1\n")
    train(compose_cfg(["experiment=smoke", "logger=csv"]))
    assert stub_fit["ckpt_path"] == str(last) and stub_fit["metrics"] == ["metrics.1.csv"]
    (run_dir / "metrics.csv").write_text("step\n2\n")
    train(compose_cfg(["experiment=smoke", "logger=csv", "resume=false"]))
    assert stub_fit["ckpt_path"] is None and stub_fit["metrics"] == ["metrics.1.csv", "metrics.csv"]


class _PlainLogger:
    """A logger with exactly the methods `train` looks for (no catch-all attribute)."""

    def __init__(self) -> None:
        self.hyperparams, self.tables = [], []

    def log_hyperparams(self, params) -> None:
        self.hyperparams.append(params)

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_table(self, **kwargs) -> None:
        self.tables.append(kwargs)

    def save(self) -> None:
        pass

    def finalize(self, status) -> None:
        pass


class _FakeTrainer:
    def __init__(self, **kwargs) -> None:
        self.kwargs, self.fits, self.global_step, self.saved = kwargs, [], 5, []

    def save_checkpoint(self, path, weights_only=None) -> None:
        self.saved.append(path)

    def fit(self, method, datamodule=None, ckpt_path=None) -> None:
        self.fits.append((method, datamodule, ckpt_path))


class _FakeEvaluator:
    def __init__(self) -> None:
        self.calls = []

    def run(self, encoders, eval_sets, device=None):
        self.calls.append((dict(encoders), eval_sets, device))
        return [
            {
                "encoder": name,
                "split": "median",
                "dataset": "d",
                "srcc": 0.5,
                "plcc": 0.4,
                "krcc": 0.3,
                "alpha": 1.0,
            }
            for name in encoders
        ]


class _Encoder:
    device = "cpu"

    def __init__(self) -> None:
        self.moved_to = None

    def eval(self):
        return self

    def to(self, device):
        self.moved_to = device
        return self


def _fit_setup(monkeypatch, tmp_path, **cfg_extra):
    import iqa_bench.train as train_mod

    made = {}

    def fake_instantiate(c, **kwargs):
        if c._target_ == "trainer":
            made["trainer"] = _FakeTrainer(**kwargs)
            return made["trainer"]
        if c._target_.endswith("Evaluator"):
            made["evaluator"] = _FakeEvaluator()
            return made["evaluator"]
        if c._target_ == "ckpt":
            from lightning.pytorch.callbacks import ModelCheckpoint

            return ModelCheckpoint(dirpath=tmp_path / "checkpoints")
        return f"callback {c._target_}"

    monkeypatch.setattr(train_mod, "instantiate", fake_instantiate)
    monkeypatch.setattr(train_mod, "is_terminal", lambda: False)
    cfg = OmegaConf.create(
        {
            "method_name": "m",
            "backbone": {"name": "tiny"},
            "seed": 4,
            "callbacks": {"a": {"_target_": "cb"}, "off": None},
            "trainer": {"_target_": "trainer", "enable_progress_bar": True},
            "evaluator": {"_target_": "iqa_bench.eval.runner.RidgeEvaluator"},
            "lr": "${seed}",
            **cfg_extra,
        }
    )
    return train_mod, cfg, made


def test_fit_and_evaluate_hands_the_checkpoint_to_the_trainer(monkeypatch, tmp_path, capsys):
    from iqa_bench.utils.progress import PlainProgressBar

    train_mod, cfg, made = _fit_setup(monkeypatch, tmp_path, progress_every_s=7)
    method, base, logger, plain = _Encoder(), _Encoder(), _Recorder(), _PlainLogger()
    cfg.callbacks.ckpt = {"_target_": "ckpt"}
    rows, checkpoint = train_mod._fit_and_evaluate(
        cfg, tmp_path, method, {"init=random": base}, "dm", {"d": "set"}, [logger, plain], "/ck/last.ckpt"
    )
    trainer = made["trainer"]
    assert trainer.fits == [(method, "dm", "/ck/last.ckpt")]
    out = capsys.readouterr().out
    assert "Resuming from /ck/last.ckpt\n" in out
    assert "Evaluation (RidgeEvaluator; median over splits):" in out
    callbacks = trainer.kwargs["callbacks"]
    assert callbacks[0] == "callback cb" and len(callbacks) == 3
    assert isinstance(callbacks[2], PlainProgressBar) and callbacks[2].every_s == 7.0
    assert trainer.kwargs["logger"] == [logger, plain]
    final = str(tmp_path / "checkpoints" / "last.ckpt")  # the final weights, written after fit
    assert trainer.saved == [final] and checkpoint == final
    assert plain.hyperparams == [
        OmegaConf.to_container(cfg, resolve=True)
    ]  # a real attribute, not a stand-in
    assert plain.tables and plain.tables[0]["key"] == "eval/results"
    assert logger.calls[0] == ("log_hyperparams", (OmegaConf.to_container(cfg, resolve=True),), {})
    assert logger.calls[0][1][0]["lr"] == 4
    encoders, sets, device = made["evaluator"].calls[0]
    assert (
        encoders == {"pretrained": method, "init=random": base} and sets == {"d": "set"} and device == "cpu"
    )
    assert base.moved_to == "cpu"
    assert [(r["ckpt"], r["method"], r["backbone"], r["seed"]) for r in rows] == [
        ("pretrained", "m", "tiny", 4),
        ("init=random", "m", "tiny", 4),
    ]
    assert (
        "log_metrics",
        (
            {
                "eval/d/pretrained/srcc": 0.5,
                "eval/d/pretrained/plcc": 0.4,
                "eval/d/pretrained/krcc": 0.3,
                "eval/d/init=random/srcc": 0.5,
                "eval/d/init=random/plcc": 0.4,
                "eval/d/init=random/krcc": 0.3,
            },
        ),
        {"step": 5},
    ) in logger.calls
    import json

    meta = json.loads((tmp_path / "results.json").read_text())["meta"]
    assert meta["ckpt"] == "pretrained" and meta["run_dir"] == str(tmp_path) and meta["config"]["lr"] == 4
    assert meta["checkpoint"] == final
    assert (tmp_path / "results.csv").read_text().count("\n") == 3


def test_fit_and_evaluate_fresh_run_without_eval_sets(monkeypatch, tmp_path, capsys):
    train_mod, cfg, made = _fit_setup(monkeypatch, tmp_path)
    cfg.trainer.enable_progress_bar = False
    rows, checkpoint = train_mod._fit_and_evaluate(cfg, tmp_path, _Encoder(), {}, "dm", {}, [], None)
    assert made["trainer"].fits[0][2] is None and made["trainer"].kwargs["logger"] is False
    assert made["trainer"].kwargs["callbacks"] == ["callback cb"]  # no progress lines without a bar
    assert (
        "evaluator" not in made and rows == [] and checkpoint is None
    )  # no sets: no evaluator is even built
    out = capsys.readouterr().out
    assert "Resuming" not in out and "Evaluation" not in out
    del cfg.trainer.enable_progress_bar  # the bar is on by default; progress_every_s defaults to 30 s
    train_mod._fit_and_evaluate(cfg, tmp_path, _Encoder(), {}, "dm", {}, [], None)
    assert made["trainer"].kwargs["callbacks"][1].every_s == 30.0
