"""Gradient accumulation: every micro-batch of an accumulated step draws its own distortions, the sample order
follows the batches consumed (not the optimiser steps), and a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import lightning as L
import torch
from conftest import bare_cpu_trainer

from iqa_bench.data.datamodules import batches_done
from iqa_bench.utils.instantiate import instantiate


def test_batches_done_counts_micro_batches_and_the_epoch_end_step():
    assert [batches_done(s, 1, 10) for s in (0, 3, 10, 13)] == [0, 3, 10, 13]
    # 10 batches per epoch, 4 per step: steps end after batches 4, 8 and 10 (Lightning steps on the last batch)
    assert [batches_done(s, 4, 10) for s in range(7)] == [0, 4, 8, 10, 14, 18, 20]


def _fit(
    compose_cfg, tmp_path, max_steps: int, ckpt: str | None = None, save: str | None = None
) -> list[dict]:
    cfg = compose_cfg(["experiment=smoke", "data.pretrain.crop_size=32"])
    L.seed_everything(0, verbose=False)
    method = instantiate(cfg.method)
    dm = instantiate(cfg.data.pretrain, sample_format=method.sample_format)
    seen: list[dict] = []
    prepare = method.prepare_batch

    def recording(batch, generator):
        out = prepare(batch, generator)
        seen.append(
            {
                "step": int(method.global_step),
                "index": batch["index"].clone(),
                "types": out["plan"].type_ids.clone(),
                "levels": out["plan"].levels.clone(),
                "pixels": out["a_full"].clone(),
            }
        )
        return out

    method.prepare_batch = recording
    trainer = bare_cpu_trainer(tmp_path, max_steps, accumulate_grad_batches=2)
    trainer.fit(method, datamodule=dm, ckpt_path=ckpt)
    if save:
        trainer.save_checkpoint(save)
    return seen


def test_micro_batches_differ_and_resume_reproduces(compose_cfg, tmp_path):
    full = _fit(compose_cfg, tmp_path, max_steps=2)
    assert [r["step"] for r in full] == [0, 0, 1, 1]  # 2 micro-batches per optimiser step
    a, b = full[0], full[1]
    assert not torch.equal(a["index"], b["index"])  # different images
    assert not (
        torch.equal(a["types"], b["types"]) and torch.equal(a["levels"], b["levels"])
    )  # different plans
    assert not torch.equal(full[0]["types"], full[2]["types"])  # and different steps too

    ckpt = str(tmp_path / "step1.ckpt")
    _fit(compose_cfg, tmp_path, max_steps=1, save=ckpt)
    resumed = _fit(compose_cfg, tmp_path, max_steps=2, ckpt=ckpt)
    assert [r["step"] for r in resumed] == [1, 1]
    for got, want in zip(resumed, full[2:]):
        assert torch.equal(got["index"], want["index"])  # the sampler resumes at batch 2, not batch 1
        assert torch.equal(got["types"], want["types"]) and torch.equal(got["levels"], want["levels"])
        torch.testing.assert_close(got["pixels"], want["pixels"])
