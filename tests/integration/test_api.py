"""`iqa_bench.load(ckpt, regressor=...)`: the same scores as `predict` (same preprocessing), for paths and
tensors, and one-line errors for missing files."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch

import iqa_bench
from iqa_bench.data.builtin import kodak_paths
from iqa_bench.data.images import decode_image
from iqa_bench.errors import UserError
from iqa_bench.predict import predict


def test_load_scores_like_predict(compose_cfg, tmp_path, trained_run, evaluated_regressor):
    ckpt, _ = trained_run
    # 5 crops per image: the API must average them as predict does
    reg_path = evaluated_regressor("evaluator.crop_size=48")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, p in enumerate(kodak_paths()[:3]):
        shutil.copy(p, photos / f"{i}.png")
    out = predict(
        compose_cfg(
            [f"regressor={reg_path}", f"images={photos}", f"hydra.run.dir={tmp_path / 'pred'}"],
            config_name="predict",
        )
    )
    expected = {r["path"]: float(r["score"]) for r in csv.DictReader(out["csv"].open())}

    model = iqa_bench.load(regressor=reg_path, device="cpu")  # checkpoint from the regressor's metadata
    assert model.info["method"] == "arniqa"
    paths = sorted(expected)
    from_paths = model(paths)
    assert from_paths.shape == (3,) and from_paths.dtype == torch.float32
    np.testing.assert_allclose(from_paths.numpy(), [expected[p] for p in paths], rtol=1e-4, atol=1e-5)

    # a batch tensor: uint8 and float in [0, 1] give the same scores as the files
    batch = torch.stack([decode_image(p) for p in paths])
    np.testing.assert_allclose(model(batch).numpy(), from_paths.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(batch.float() / 255).numpy(), from_paths.numpy(), rtol=1e-5, atol=1e-6)

    # an explicit checkpoint is the same model
    again = iqa_bench.load(ckpt, regressor=reg_path, device="cpu")
    np.testing.assert_allclose(again(paths[:1]).numpy(), from_paths[:1].numpy(), rtol=1e-6)


def test_load_missing_files_are_user_errors(tmp_path, trained_run):
    ckpt, _ = trained_run
    with pytest.raises(UserError, match="regressor"):
        iqa_bench.load(ckpt, regressor=tmp_path / "none.safetensors")
    with pytest.raises(UserError, match="regressor: required"):
        iqa_bench.load(ckpt)
