"""Faults around checkpoints: a write cut off by a full disk, a truncated or foreign `last.ckpt`, a diverging loss.

Each case must end in a rerun that works (or a one-line refusal), never in a checkpoint that blocks the rerun.
"""

from __future__ import annotations

import errno
import logging
import os
import stat

import pytest
import torch

from iqa_bench.errors import UserError
from iqa_bench.methods.arniqa import ARNIQA
from iqa_bench.train import train
from iqa_bench.utils.atomic import WriteError, atomic_write_text
from iqa_bench.utils.checkpoint_io import (
    AtomicCheckpointIO,
    DivergedError,
    ForeignCheckpointError,
    checkpoint_problem,
    resume_from,
)

SHORT = [
    "experiment=smoke",
    "trainer.max_steps=8",
    "callbacks.model_checkpoint.every_n_train_steps=4",
    "data.eval.builtin_synthetic.levels=[1,5]",
    "evaluator.baseline_random_init=false",
    "evaluator.n_splits=2",
]


def _ckpt(step: int, value: float = 1.0) -> dict:
    return {
        "state_dict": {"w": torch.full((4,), value)},
        "global_step": step,
        "pytorch-lightning_version": "2",
    }


def _truncate(path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_checkpoint_is_staged_in_its_own_folder_and_respects_the_umask(tmp_path, monkeypatch):
    dest = tmp_path / "run" / "checkpoints" / "last.ckpt"
    staged: list[str] = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: (staged.append(str(f)), real_save(obj, f))[1])
    old = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint(_ckpt(3), str(dest))
    finally:
        os.umask(old)
    assert len(staged) == 1 and os.path.dirname(staged[0]) == str(dest.parent) and staged[0] != str(dest)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert torch.load(dest, weights_only=True)["global_step"] == 3
    assert sorted(p.name for p in dest.parent.iterdir()) == ["last.ckpt"]  # no temp file left


def test_a_write_that_fails_midway_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    dest = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_ckpt(4), str(dest))
    before = dest.read_bytes()

    def full_disk(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(WriteError, match=r"cannot write .*last\.ckpt: No space left on device") as info:
        io.save_checkpoint(_ckpt(8), str(dest))
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert "\n" not in str(info.value)
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_non_finite_weights_are_never_saved(tmp_path):
    dest = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(_ckpt(4), str(dest))
    with pytest.raises(DivergedError, match="non-finite weights .*w.* at step 9"):
        io.save_checkpoint(_ckpt(9, float("inf")), str(dest))
    assert torch.load(dest, weights_only=True)["global_step"] == 4


def test_resume_passes_over_a_truncated_last_ckpt_to_the_newest_good_one(tmp_path, caplog):
    io = AtomicCheckpointIO()
    for step in (4, 8):
        io.save_checkpoint(_ckpt(step), str(tmp_path / f"step{step:06d}.ckpt"))
        os.utime(tmp_path / f"step{step:06d}.ckpt", ns=(step * 10**9, step * 10**9))
    io.save_checkpoint(_ckpt(12), str(tmp_path / "last.ckpt"))
    assert resume_from(tmp_path) == str(tmp_path / "last.ckpt")
    _truncate(tmp_path / "last.ckpt")
    assert "truncated" in checkpoint_problem(tmp_path / "last.ckpt")
    with caplog.at_level(logging.WARNING):
        assert resume_from(tmp_path) == str(tmp_path / "step000008.ckpt")
    msgs = [r.getMessage() for r in caplog.records]
    assert any("last.ckpt" in m and "truncated" in m for m in msgs)
    assert any("newest good checkpoint" in m and "step000008" in m for m in msgs)
    assert all("\n" not in m for m in msgs)
    (tmp_path / "step000008.ckpt").write_bytes(b"")  # empty too: the next one back
    assert resume_from(tmp_path) == str(tmp_path / "step000004.ckpt")


def test_a_foreign_pickle_as_last_ckpt_is_refused_in_one_line(tmp_path):
    import collections
    import pickle

    with (tmp_path / "last.ckpt").open("wb") as fh:
        pickle.dump(collections.OrderedDict(a=1), fh)
    with pytest.raises(
        ForeignCheckpointError, match="last.ckpt is not a checkpoint written by iqa_bench"
    ) as e:
        resume_from(tmp_path)
    assert "\n" not in str(e.value)
    torch.save(
        {"w": torch.ones(2)}, tmp_path / "last.ckpt"
    )  # a bare state dict: not a run's checkpoint either
    with pytest.raises(ForeignCheckpointError, match="not a Lightning checkpoint"):
        resume_from(tmp_path)


def test_a_foreign_pickle_blocks_train_with_one_line_before_training(compose_cfg, tmp_path, monkeypatch):
    import pickle

    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "last.ckpt").write_bytes(pickle.dumps({"x": {1, 2}}))
    monkeypatch.setattr(ARNIQA, "training_step", lambda *a: pytest.fail("must refuse before training"))
    with pytest.raises(UserError, match="last.ckpt is not a checkpoint"):
        train(compose_cfg(SHORT))
    with pytest.raises(UserError, match="ckpt_path: .* cannot be resumed from: damaged"):
        (tmp_path / "half.ckpt").write_bytes(b"PK\x03\x04garbage")
        train(compose_cfg([*SHORT, f"ckpt_path={tmp_path / 'half.ckpt'}"]))


@pytest.mark.slow
def test_truncated_last_ckpt_no_longer_blocks_the_rerun(compose_cfg, tmp_path, caplog):
    """The full-disk scenario: a previous run left a cut-off last.ckpt; rerunning the same command works."""
    first = train(compose_cfg([*SHORT, "trainer.max_steps=4", "~data.eval"]))
    last = first["run_dir"] / "checkpoints" / "last.ckpt"
    _truncate(last, 0.3)
    (first["run_dir"] / "results.csv").unlink()
    with caplog.at_level(logging.WARNING):
        again = train(compose_cfg([*SHORT, "~data.eval"]))
    assert any(
        "skipping checkpoint" in r.getMessage() and "last.ckpt" in r.getMessage() for r in caplog.records
    )
    assert (again["run_dir"] / "results.csv").is_file()
    assert torch.load(last, weights_only=True)["global_step"] == 8  # rewritten whole


@pytest.mark.slow
def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(compose_cfg, tmp_path, monkeypatch):
    real_step = ARNIQA.training_step

    def poisoned(self, batch, batch_idx):
        loss = real_step(self, batch, batch_idx)
        return loss * float("nan") if self.trainer.global_step == 6 else loss

    monkeypatch.setattr(ARNIQA, "training_step", poisoned)
    with pytest.raises(
        DivergedError, match=r"not finite \(NaN/inf\) at step 6.*last good checkpoint is kept"
    ) as e:
        train(compose_cfg(SHORT))
    assert "\n" not in str(e.value)
    run = tmp_path / "run"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values() if t.is_floating_point())
    assert not (run / "results.csv").exists()


def test_a_huge_learning_rate_is_stopped_not_saved(compose_cfg, tmp_path):
    with pytest.raises(DivergedError, match="training diverged"):
        train(compose_cfg([*SHORT, "method.optimizer.lr=1e30", "method.scheduler.name=none"]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if last.exists():  # whatever was saved before the divergence is finite
        assert checkpoint_problem(last) is None


def test_result_files_respect_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        atomic_write_text(tmp_path / "results.csv", "a,b\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.csv").stat().st_mode) == 0o664


def test_a_read_only_run_folder_is_a_one_line_error(tmp_path, monkeypatch):
    import tempfile

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # as root, chmod would not stop the write
    with pytest.raises(UserError, match=r"cannot write .*results.csv: Read-only file system") as e:
        atomic_write_text(tmp_path / "results.csv", "x")
    assert isinstance(e.value, OSError) and "\n" not in str(e.value)


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp", "ddp_cpu"])
def test_every_trainer_config_saves_through_the_atomic_plugin(compose_cfg, trainer):
    from iqa_bench.utils.instantiate import instantiate

    cfg = compose_cfg(["experiment=smoke", f"trainer={trainer}"])
    assert [p._target_ for p in cfg.trainer.plugins] == ["iqa_bench.utils.checkpoint_io.AtomicCheckpointIO"]
    assert {"finite_loss", "termination"} <= set(cfg.callbacks)
    if trainer in ("cpu", "ddp_cpu"):  # the GPU ones cannot be built without a GPU
        built = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert isinstance(built.strategy.checkpoint_io, AtomicCheckpointIO)
