"""Resuming a run: which checkpoint is picked (`ckpt_path`, `last.ckpt`, the newest good one, a former folder), how
a damaged or foreign file is reported, the killed run's metrics kept, a finished run found, and what `train` hands
to the trainer (no training here: `_fit_and_evaluate` is stubbed)."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import iqa_bench.runs as runs
from iqa_bench.errors import ConfigError
from iqa_bench.runs import keep_previous_metrics, resume_checkpoint, stored_results
from iqa_bench.utils.checkpoint_io import ForeignCheckpointError, _reason, checkpoint_problem, resume_from


def _save(path: Path, step: int = 3, value: float = 1.0, mtime_s: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.full((2,), value), "b": torch.zeros(1)}, "global_step": step}, path)
    if mtime_s is not None:
        os.utime(path, ns=(mtime_s * 10**9, mtime_s * 10**9))
    return path


def _cfg(**kw):
    return OmegaConf.create(kw)


# -- checkpoint_problem / resume_from ---------------------------------------------------------------------------
def test_checkpoint_problem_verdicts(tmp_path):
    assert checkpoint_problem(_save(tmp_path / "good.ckpt")) is None
    assert checkpoint_problem(str(tmp_path / "good.ckpt")) is None  # a str path too
    assert checkpoint_problem(tmp_path / "missing.ckpt") == "not a regular file"
    (tmp_path / "dir.ckpt").mkdir()
    assert checkpoint_problem(tmp_path / "dir.ckpt") == "not a regular file"
    (tmp_path / "garbage.ckpt").write_bytes(b"hello, not a checkpoint")
    assert checkpoint_problem(tmp_path / "garbage.ckpt").startswith("damaged or truncated (")
    cut = _save(tmp_path / "cut.ckpt")
    cut.write_bytes(cut.read_bytes()[:200])
    assert checkpoint_problem(cut).startswith("damaged or truncated (")
    assert "Error: " in checkpoint_problem(cut)  # names the exception and its message
    _save(tmp_path / "nan.ckpt", value=float("nan"))
    assert checkpoint_problem(tmp_path / "nan.ckpt") == "non-finite weights (w)"
    torch.save(
        {
            "state_dict": {"a": torch.tensor([float("inf")]), "b": torch.tensor([float("nan")])},
            "global_step": 1,
        },
        tmp_path / "two.ckpt",
    )
    assert checkpoint_problem(tmp_path / "two.ckpt") == "non-finite weights (a, b)"


def test_checkpoint_problem_refuses_foreign_files(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "no_step.ckpt")
    torch.save({"global_step": 1}, tmp_path / "no_state.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    for name in ("no_step", "no_state", "list"):
        with pytest.raises(
            ForeignCheckpointError,
            match=r"is not a Lightning checkpoint \(no 'state_dict' / 'global_step'\); move it away, or pass resume=false to start afresh$",
        ):
            checkpoint_problem(tmp_path / f"{name}.ckpt")
    with (tmp_path / "obj.ckpt").open("wb") as fh:
        pickle.dump(Path("x"), fh)
    with pytest.raises(
        ForeignCheckpointError,
        match=r"obj\.ckpt is not a checkpoint written by iqa_bench \(it holds arbitrary Python objects, which are not loaded\); move it away, or pass resume=false to start afresh$",
    ):
        checkpoint_problem(tmp_path / "obj.ckpt")


def test_reason_is_the_type_and_first_sentence():
    assert _reason(ValueError("bad zip. more detail\nsecond line")) == "ValueError: bad zip"
    assert _reason(EOFError()) == "EOFError"
    assert _reason(ValueError("MAX")) == "ValueError: MAX"  # only the empty message's ": " is dropped
    assert _reason(OSError("x" * 300)) == "OSError: " + "x" * 160
    assert _reason(RuntimeError("\n  first line  \nnext")) == "RuntimeError: first line"


def test_resume_from_prefers_last_then_the_newest_good_one(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    assert resume_from(folder) is None  # no folder
    folder.mkdir()
    assert resume_from(folder) is None
    (folder / "notes.txt").write_text("x")
    (folder / "sub.ckpt").mkdir()  # a folder named like a checkpoint is not one
    assert resume_from(folder) is None
    # names sort the other way round from their ages: the newest file wins, not the last name
    _save(folder / "a-newest.ckpt", mtime_s=300)
    _save(folder / "z-older.ckpt", mtime_s=200)
    _save(folder / "m-oldest.ckpt", mtime_s=100)
    with caplog.at_level(logging.WARNING):
        assert resume_from(folder) == str(folder / "a-newest.ckpt")
    assert caplog.records == []  # nothing passed over: nothing said
    _save(folder / "last.ckpt", mtime_s=50)  # last.ckpt first, whatever its age
    assert resume_from(str(folder)) == str(folder / "last.ckpt")
    (folder / "last.ckpt").write_bytes(b"truncated")
    (folder / "a-newest.ckpt").write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert resume_from(folder) == str(folder / "z-older.ckpt")
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0].startswith(f"skipping checkpoint {folder / 'last.ckpt'}: damaged or truncated")
    assert msgs[1].startswith(f"skipping checkpoint {folder / 'a-newest.ckpt'}: damaged or truncated")
    assert msgs[2] == f"resuming from the newest good checkpoint {folder / 'z-older.ckpt'} instead"
    assert len(msgs) == 3
    for name in ("z-older", "m-oldest"):
        (folder / f"{name}.ckpt").write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert resume_from(folder) is None
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 5 and msgs[-1] == (
        f"no usable checkpoint in {folder}: starting from step 0 (the broken file(s) will be replaced)"
    )


# -- resume_checkpoint ----------------------------------------------------------------------------------------
def test_explicit_ckpt_path_must_exist_and_load(tmp_path):
    good = _save(tmp_path / "elsewhere" / "good.ckpt")
    assert resume_checkpoint(_cfg(ckpt_path=str(good), resume=False), tmp_path / "run") == str(good)
    _save(tmp_path / "run" / "checkpoints" / "last.ckpt")  # an explicit path wins over the run's own
    assert resume_checkpoint(_cfg(ckpt_path=str(good)), tmp_path / "run") == str(good)
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(ConfigError, match=f"^ckpt_path: no checkpoint file at {missing}$"):
        resume_checkpoint(_cfg(ckpt_path=str(missing)), tmp_path / "run")
    with pytest.raises(ConfigError, match="^ckpt_path: no checkpoint file at"):
        resume_checkpoint(_cfg(ckpt_path=str(tmp_path)), tmp_path / "run")  # a folder
    bad = _save(tmp_path / "nan.ckpt", value=float("inf"))
    with pytest.raises(
        ConfigError, match=f"^ckpt_path: {bad} cannot be resumed from: non-finite weights \\(w\\)$"
    ):
        resume_checkpoint(_cfg(ckpt_path=str(bad)), tmp_path / "run")


def test_resume_follows_the_resume_flag(tmp_path):
    run = tmp_path / "run"
    assert resume_checkpoint(_cfg(), run) is None  # nothing there yet
    last = _save(run / "checkpoints" / "last.ckpt")
    assert resume_checkpoint(_cfg(), run) == str(last)  # resume defaults to true
    assert resume_checkpoint(_cfg(resume=True, ckpt_path=None), run) == str(last)
    assert resume_checkpoint(_cfg(resume=True, ckpt_path=""), run) == str(last)
    assert resume_checkpoint(_cfg(resume=False), run) is None
    last.write_bytes(b"")
    step = _save(run / "checkpoints" / "step4.ckpt")
    assert resume_checkpoint(_cfg(resume=True), run) == str(step)


def test_resume_looks_in_the_former_folder_only_when_needed(tmp_path, monkeypatch, capsys):
    run, old = tmp_path / "new-name", tmp_path / "old=name"
    monkeypatch.setattr(runs, "legacy_run_dir", lambda d: old if d == run else pytest.fail(str(d)))
    assert resume_checkpoint(_cfg(), run) is None  # the former folder does not exist
    old.mkdir()
    assert resume_checkpoint(_cfg(), run) is None  # it has no checkpoints folder
    (old / "checkpoints").mkdir()
    assert resume_checkpoint(_cfg(), run) is None and capsys.readouterr().out == ""
    (old / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert resume_checkpoint(_cfg(), run) is None and capsys.readouterr().out == ""
    found = _save(old / "checkpoints" / "step8.ckpt")
    assert resume_checkpoint(_cfg(), run) == str(found)
    assert capsys.readouterr().out == f"Found this run under its former folder name {old}\n"
    mine = _save(run / "checkpoints" / "last.ckpt")  # the run's own folder first
    assert resume_checkpoint(_cfg(), run) == str(mine) and capsys.readouterr().out == ""
    assert resume_checkpoint(_cfg(resume=False), run) is None


# -- finished runs and metrics of a killed run --------------------------------------------------------------------
def test_stored_results(tmp_path, monkeypatch):
    run, old = tmp_path / "run", tmp_path / "old"
    run.mkdir()
    monkeypatch.setattr(runs, "legacy_run_dir", lambda d: None)
    assert stored_results(run) is None
    (run / "results.json").write_text('{"rows": [{"srcc": 0.5}], "meta": {"checkpoint": "c.ckpt"}}')
    assert stored_results(run) is None  # results.csv is written last: without it the run did not finish
    (run / "results.csv").write_text("srcc\n0.5\n")
    assert stored_results(run) == {"run_dir": run, "rows": [{"srcc": 0.5}], "checkpoint": "c.ckpt"}
    (run / "results.json").write_text('{"meta": {}}')
    assert stored_results(run) == {"run_dir": run, "rows": [], "checkpoint": None}
    (run / "results.json").write_text('{"rows": [')
    assert stored_results(run) is None
    (run / "results.json").unlink()
    assert stored_results(run) is None
    # a run finished under its former folder name is found there, and only when this folder has no results
    old.mkdir()
    (old / "results.csv").write_text("srcc\n")
    (old / "results.json").write_text('{"rows": [1], "meta": {"checkpoint": "old.ckpt"}}')
    monkeypatch.setattr(runs, "legacy_run_dir", lambda d: old)
    assert stored_results(run) is None  # run/results.csv exists (without its json): not looked up elsewhere
    (run / "results.csv").unlink()
    assert stored_results(run) == {"run_dir": old, "rows": [1], "checkpoint": "old.ckpt"}


def test_keep_previous_metrics_numbers_the_old_files(tmp_path):
    keep_previous_metrics(tmp_path)
    assert list(tmp_path.iterdir()) == []
    for text in ("first", "second", "third"):
        (tmp_path / "metrics.csv").write_text(text)
        keep_previous_metrics(tmp_path)
    assert not (tmp_path / "metrics.csv").exists()
    assert [(tmp_path / f"metrics.{n}.csv").read_text() for n in (1, 2, 3)] == ["first", "second", "third"]
    (tmp_path / "metrics.2.csv").unlink()  # a gap is filled
    (tmp_path / "metrics.csv").write_text("fourth")
    keep_previous_metrics(tmp_path)
    assert (tmp_path / "metrics.2.csv").read_text() == "fourth"
    (tmp_path / "metrics.csv").mkdir()  # not a file: left alone
    keep_previous_metrics(tmp_path)
    assert (tmp_path / "metrics.csv").is_dir() and not (tmp_path / "metrics.4.csv").exists()


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
    assert made["evaluator"].calls == [] and rows == [] and checkpoint is None
    out = capsys.readouterr().out
    assert "Resuming" not in out and "Evaluation" not in out
    del cfg.trainer.enable_progress_bar  # the bar is on by default; progress_every_s defaults to 30 s
    train_mod._fit_and_evaluate(cfg, tmp_path, _Encoder(), {}, "dm", {}, [], None)
    assert made["trainer"].kwargs["callbacks"][1].every_s == 30.0
