"""Resuming a run: which checkpoint is picked (`ckpt_path`, `last.ckpt`, the newest good one, a former folder), how
a damaged or foreign file is reported, the killed run's metrics kept, a finished run found, and what `train` hands
to the trainer (no training here: `_fit_and_evaluate` is stubbed)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
import torch
from _wiring import _save
from omegaconf import OmegaConf

import iqa_bench.runs as runs
from iqa_bench.errors import ConfigError
from iqa_bench.runs import keep_previous_metrics, resume_checkpoint, stored_results
from iqa_bench.utils.checkpoint_io import ForeignCheckpointError, _reason, checkpoint_problem, resume_from


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
