"""RankIQA, MLF and Re-IQA end to end on CPU (smoke settings): `train(cfg)` runs and writes results, and a
checkpoint saved after a few steps reloads to a module with identical features (and Re-IQA queue state)."""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch
from conftest import bare_cpu_trainer

from iqa_bench.methods import METHODS
from iqa_bench.train import train
from iqa_bench.utils.instantiate import instantiate

NEW_METHODS = ["rankiqa", "mlf", "reiqa"]


class StepProbe(L.Callback):
    """Records each training step's loss and the backbone weights before the first and after the last step
    (class-level: Hydra builds the instance)."""

    record: dict = {}

    def __init__(self) -> None:
        StepProbe.record = {"losses": []}

    def on_train_start(self, trainer, pl_module) -> None:
        StepProbe.record["before"] = {
            k: v.detach().clone() for k, v in pl_module.backbone.state_dict().items()
        }

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        StepProbe.record["losses"].append(float(loss))  # Lightning hands the step's loss over detached

    def on_train_end(self, trainer, pl_module) -> None:
        StepProbe.record["after"] = {
            k: v.detach().clone() for k, v in pl_module.backbone.state_dict().items()
        }
        StepProbe.record["steps"] = trainer.global_step


@pytest.mark.parametrize("method", NEW_METHODS)
def test_fast_dev_run(compose_cfg, method):
    """One real optimiser step: a finite loss whose gradient moves the backbone; Re-IQA also probes."""
    overrides = [
        "experiment=smoke",
        f"method={method}",
        "trainer.fast_dev_run=true",
        "+callbacks.probe._target_=test_methods_train.StepProbe",
    ]
    if method != "reiqa":
        overrides.append(
            "~data.eval"
        )  # the evaluator is shared; probe it once (Re-IQA) to keep the suite fast
    out = train(compose_cfg(overrides))
    rec = StepProbe.record
    assert rec["steps"] == 1 and len(rec["losses"]) == 1
    (loss,) = rec["losses"]
    assert math.isfinite(loss) and loss > 0
    moved = [
        k for k, v in rec["before"].items() if v.is_floating_point() and not torch.equal(v, rec["after"][k])
    ]
    assert any(k.endswith("weight") for k in moved), "the step did not update the backbone"
    if method == "reiqa":
        rows = list(csv.DictReader((out["run_dir"] / "results.csv").open()))
        assert {r["ckpt"] for r in rows} == {"pretrained", "init=random"}
        assert all(r["method"] == "reiqa" and math.isfinite(float(r["srcc"])) for r in rows)
    else:
        assert out["rows"] == []  # no evaluation sets: nothing evaluated


@pytest.mark.parametrize("method", NEW_METHODS)
def test_checkpoint_roundtrip_gives_identical_features(compose_cfg, tmp_path, method):
    cfg = compose_cfg(["experiment=smoke", f"method={method}"])
    L.seed_everything(0, verbose=False)
    module = instantiate(cfg.method)
    init = {k: v.clone() for k, v in module.state_dict().items()}
    dm = instantiate(cfg.data.pretrain, sample_format=module.sample_format)
    trainer = bare_cpu_trainer(tmp_path, max_steps=2)
    trainer.fit(module, datamodule=dm)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = METHODS[method].load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    module.eval()
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(x), module.features(x), rtol=0, atol=0)
    assert loaded.feature_dim == module.feature_dim
    changed = [
        k for k, v in module.state_dict().items() if v.is_floating_point() and not torch.equal(v, init[k])
    ]
    assert any(k.startswith("backbone.") for k in changed)  # the encoder trained
    if method == "reiqa":
        assert int(loaded.queue.ptr) == int(module.queue.ptr) > 0
        torch.testing.assert_close(loaded.queue.queue, module.queue.queue)
        for a, b in zip(loaded.key_backbone.parameters(), module.key_backbone.parameters()):
            torch.testing.assert_close(a, b)
        # the EMA moved the key encoder towards the online one
        assert any(k.startswith("key_backbone.") for k in changed)
