"""predict under bad input: a checkpoint the regressor was not fitted on, nonsense options, FIFOs, link loops and
file names that are not UTF-8. Refusals are one line; skips are warned and predictions.csv is still written."""

from __future__ import annotations

import csv
import logging
import os
import shutil

import numpy as np
import pytest
import torch

from iqa_bench.data.builtin import kodak_paths
from iqa_bench.data.images import decode_image
from iqa_bench.errors import ConfigError, UserError
from iqa_bench.eval.features import extract_features
from iqa_bench.eval.regressor import save_regressor
from iqa_bench.eval.ridge import RidgeModel
from iqa_bench.predict import predict
from iqa_bench.utils.checkpoint_io import weights_fingerprint

NON_UTF8 = b"caf\xe9.png"


@pytest.fixture
def fitted(trained_run, tmp_path):
    """(ckpt, method, regressor path): a regressor as evaluate saves it for `trained_run`'s checkpoint."""
    ckpt, method = trained_run
    method = method.eval()
    feats, _ = extract_features({"m": method}, [decode_image(kodak_paths()[0])], [1.0], None)
    dim = feats["m"].shape[1]
    rng = np.random.default_rng(0)
    model = RidgeModel(
        coef_=rng.normal(size=dim), intercept_=50.0, mean_=np.zeros(dim), scale_=np.ones(dim), alpha=1.0
    )
    meta = {
        "method": "arniqa",
        "backbone": "tiny",
        "ckpt": str(ckpt.resolve()),
        "dataset": "toy",
        "scales": [1.0],
        "crop_size": None,
        "method_target": f"{type(method).__module__}.{type(method).__qualname__}",
        "weights_sha256": weights_fingerprint(method),
    }
    reg = save_regressor(tmp_path / "eval" / "regressors" / "ckpt__toy.safetensors", model, meta)
    return ckpt, method, reg


def _photos(folder, n=2):
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(kodak_paths()[:n]):
        shutil.copy(p, folder / f"img{i}.png")
    return folder


def _predict(compose_cfg, tmp_path, *overrides):
    return predict(
        compose_cfg(
            [*overrides, f"hydra.run.dir={tmp_path / 'pred'}", "progress=false"], config_name="predict"
        )
    )


def _other_run_checkpoint(ckpt, tmp_path):
    """The same method after more training: same architecture and file layout, other weights."""
    state = torch.load(ckpt, weights_only=True)
    key = next(k for k, v in state["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    state["state_dict"][key] = state["state_dict"][key] + 0.01
    other = ckpt.parent / "step000100.ckpt"
    torch.save(state, other)
    return other


def test_a_checkpoint_of_another_run_is_refused_unless_allowed(compose_cfg, tmp_path, fitted, caplog):
    ckpt, _, reg = fitted
    photos = _photos(tmp_path / "photos")
    ok = _predict(compose_cfg, tmp_path, f"regressor={reg}", f"images={photos}")
    assert len(ok["scores"]) == 2

    other = _other_run_checkpoint(ckpt, tmp_path)
    with pytest.raises(
        UserError, match=r"is not the checkpoint regressor .* was fitted on .*allow_mismatch=true"
    ) as e:
        _predict(compose_cfg, tmp_path, f"regressor={reg}", f"images={photos}", f"ckpt={other}")
    assert "\n" not in str(e.value)

    with caplog.at_level(logging.WARNING):
        loud = _predict(
            compose_cfg,
            tmp_path,
            f"regressor={reg}",
            f"images={photos}",
            f"ckpt={other}",
            "allow_mismatch=true",
        )
    assert any("NOT CALIBRATED" in r.getMessage() for r in caplog.records)
    assert loud["scores"] != ok["scores"]  # other weights, other (meaningless) numbers

    import iqa_bench  # the Python API applies the same check

    with pytest.raises(UserError, match=r"is not the checkpoint regressor .* was fitted on"):
        iqa_bench.load(other, regressor=reg, device="cpu")
    assert iqa_bench.load(other, regressor=reg, device="cpu", allow_mismatch=True) is not None


def test_a_moved_copy_of_the_same_checkpoint_is_accepted(compose_cfg, tmp_path, fitted):
    ckpt, _, reg = fitted
    moved = tmp_path / "elsewhere" / "last.ckpt"
    moved.parent.mkdir()
    shutil.copytree(ckpt.parent.parent / ".hydra", moved.parent / ".hydra")
    shutil.copy(ckpt, moved)
    out = _predict(
        compose_cfg, tmp_path, f"regressor={reg}", f"images={_photos(tmp_path / 'p')}", f"ckpt={moved}"
    )
    assert len(out["scores"]) == 2


@pytest.mark.parametrize(
    "override, key",
    [("short_side=3", "short_side"), ("batch_size=0", "batch_size"), ("num_workers=-1", "num_workers")],
)
def test_nonsense_options_are_one_line_errors(compose_cfg, tmp_path, fitted, override, key):
    _, _, reg = fitted
    with pytest.raises(ConfigError, match=rf"^{key}: must be") as e:
        _predict(compose_cfg, tmp_path, f"regressor={reg}", f"images={_photos(tmp_path / 'p')}", override)
    assert "\n" not in str(e.value)


def test_a_fifo_is_refused_alone_and_skipped_in_a_folder_or_list(compose_cfg, tmp_path, fitted):
    _, _, reg = fitted
    photos = _photos(tmp_path / "photos")
    os.mkfifo(photos / "pipe.jpg")
    with pytest.raises(UserError, match="pipe.jpg is not a regular file"):
        _predict(compose_cfg, tmp_path, f"regressor={reg}", f"images={photos / 'pipe.jpg'}")
    out = _predict(compose_cfg, tmp_path, f"regressor={reg}", f"images={photos}")
    assert sorted(os.path.basename(p) for p in out["scores"]) == ["img0.png", "img1.png"]
    listing = tmp_path / "list.txt"
    listing.write_text("photos/img0.png\nphotos/pipe.jpg\n")
    out = _predict(compose_cfg, tmp_path, f"regressor={reg}", f"images={listing}")
    assert len(out["scores"]) == 1 and "pipe.jpg: not a regular file" in out["skipped"][0]


def test_link_loops_and_non_utf8_names_still_give_predictions(compose_cfg, tmp_path, fitted, caplog):
    _, _, reg = fitted
    photos = _photos(tmp_path / "photos")
    (photos / "loop").symlink_to(photos, target_is_directory=True)
    (photos / "self.jpg").symlink_to(photos / "self.jpg")
    odd = os.path.join(os.fsencode(photos), NON_UTF8)
    shutil.copy(kodak_paths()[2], odd)
    with caplog.at_level(logging.WARNING):
        out = _predict(compose_cfg, tmp_path, f"regressor={reg}", f"images={photos}")
    rows = list(csv.DictReader(out["csv"].open(encoding="utf-8")))
    assert sorted(os.path.basename(r["path"]) for r in rows) == ["img0.png", "img1.png"]
    assert any("not valid UTF-8" in r.getMessage() for r in caplog.records)

    # named explicitly (argv decodes it with surrogate escapes): scored, written with a \xNN escape
    out = _predict(
        compose_cfg, tmp_path, f"regressor={reg}", f"images=[{photos / 'img0.png'},'{os.fsdecode(odd)}']"
    )
    text = out["csv"].read_text(encoding="utf-8")
    assert "caf\\xe9.png" in text and len(text.splitlines()) == 3
