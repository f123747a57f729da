"""predict: checkpoint + regressor saved by evaluate -> path,score CSV; bad images skipped, named, never scored."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

from iqa_bench.data.builtin import kodak_paths
from iqa_bench.data.images import decode_image
from iqa_bench.eval.features import extract_features
from iqa_bench.eval.regressor import load_regressor
from iqa_bench.predict import predict
from iqa_bench.utils.resolvers import PROJECT_ROOT


def test_predict_scores_a_folder_and_skips_bad_files(compose_cfg, tmp_path, trained_run, evaluated_regressor):
    _, method = trained_run
    method = method.eval()
    reg_path = evaluated_regressor()
    photos = tmp_path / "photos"
    (photos / "sub dir").mkdir(parents=True)
    k = kodak_paths()
    shutil.copy(k[0], photos / "a.png")
    shutil.copy(k[1], photos / "sub dir" / "bé b.png")
    Image.open(k[2]).convert("L").save(photos / "grey.jpg")
    (photos / "broken.png").write_text("not an image")

    out = predict(
        compose_cfg(
            [f"regressor={reg_path}", f"images={photos}", f"hydra.run.dir={tmp_path / 'pred'}"],
            config_name="predict",
        )
    )  # ckpt taken from the regressor's metadata
    rows = list(csv.DictReader(out["csv"].open()))
    assert [r["path"].split("/")[-1] for r in rows] == ["a.png", "grey.jpg", "bé b.png"]
    assert len(out["skipped"]) == 1 and "broken.png" in out["skipped"][0]
    assert "broken.png" in (out["run_dir"] / "skipped.txt").read_text()

    # each score is the regressor applied to that image's features
    reg = load_regressor(reg_path)
    img = decode_image(photos / "a.png")
    feats, ids = extract_features({"m": method}, [img], reg.scales, reg.crop_size)
    expected = float(reg.predict_items(feats["m"], ids)[0])
    assert np.isclose(float(rows[0]["score"]), expected, rtol=1e-4, atol=1e-5)
    assert len({r["score"] for r in rows}) == 3  # different images, different scores


def test_cli_missing_regressor_is_one_line_error(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "iqa_bench.predict",
            f"regressor={tmp_path}/no.safetensors",
            f"images={tmp_path}",
            f"hydra.run.dir={tmp_path}/run",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: regressor: not found")
