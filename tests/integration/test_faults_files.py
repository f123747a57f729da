"""Faults in the files a user points at: FIFOs, symbolic-link loops, names that are not UTF-8, a stale cached file
list, unwritable caches, GIFs, truncated result files. Nothing may hang, crash or silently change a number."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
import threading

import numpy as np
import pytest
from PIL import Image

from iqa_bench.data import folders
from iqa_bench.data.builtin import kodak_paths
from iqa_bench.data.folders import folder_images, scan_images
from iqa_bench.data.images import BadImageError, decode_image, display_path
from iqa_bench.report import report

NON_UTF8 = b"caf\xe9.png"  # Latin-1 bytes: not valid UTF-8


def _photos(folder, n: int = 3) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, p in enumerate(kodak_paths()[:n]):
        out.append(shutil.copy(p, folder / f"img{i}.png"))
    return out


def _finishes(fn, timeout: float = 20.0):
    """Run `fn` in a thread; fail (instead of hanging the suite) if it does not return within `timeout` s."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn} blocked for more than {timeout} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_a_fifo_named_jpg_is_never_opened(tmp_path, caplog):
    _photos(tmp_path / "imgs", 2)
    os.mkfifo(tmp_path / "imgs" / "pipe.jpg")
    with caplog.at_level(logging.WARNING):
        listed = _finishes(lambda: scan_images(tmp_path / "imgs", folders.DEFAULT_EXTENSIONS))
    assert listed == ["img0.png", "img1.png"]
    assert any(
        "pipe.jpg" in r.getMessage() and "not a regular file" in r.getMessage() for r in caplog.records
    )
    with pytest.raises(BadImageError, match="pipe.jpg: not a regular file"):
        _finishes(lambda: decode_image(tmp_path / "imgs" / "pipe.jpg"))


def test_symlink_loops_end_the_walk_and_list_each_image_once(tmp_path, caplog):
    root = tmp_path / "imgs"
    _photos(root / "sub", 2)
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)  # a folder loop
    (root / "self.jpg").symlink_to(root / "self.jpg")  # a file link pointing at itself
    (root / "gone.png").symlink_to(root / "nowhere.png")  # a broken link
    with caplog.at_level(logging.WARNING):
        listed = _finishes(lambda: scan_images(root, folders.DEFAULT_EXTENSIONS))
    assert listed == ["sub/img0.png", "sub/img1.png"]
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "sub/up" in text and "folder already listed" in text
    assert "self.jpg" in text and "gone.png" in text and "looping symbolic link" in text


def test_names_that_are_not_utf8_are_skipped_with_a_printable_warning(tmp_path, caplog):
    root = tmp_path / "imgs"
    _photos(root, 1)
    bad = os.path.join(os.fsencode(root), NON_UTF8)
    shutil.copy(kodak_paths()[1], bad)
    # not an image: not worth a warning
    with open(os.path.join(os.fsencode(root), b"notes\xe9.txt"), "w") as fh:
        fh.write("x")
    with caplog.at_level(logging.WARNING):
        listed = scan_images(root, folders.DEFAULT_EXTENSIONS)
        got = folder_images(root, tmp_path / "cache")  # the cached list stays valid UTF-8
    assert listed == ["img0.png"] and [p.name for p in got] == ["img0.png"]
    msg = next(r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage())
    assert "caf\\xe9.png" in msg and "skipped 1 entry" in msg
    msg.encode("utf-8")  # printable in a UTF-8 log: no lone surrogates
    assert display_path(os.fsdecode(bad)).endswith("caf\\xe9.png")


def test_a_stale_cached_file_list_is_rescanned(tmp_path, caplog):
    root = tmp_path / "imgs"
    _photos(root, 3)
    cache = tmp_path / "cache"
    assert [p.name for p in folder_images(root, cache)] == ["img0.png", "img1.png", "img2.png"]
    for p in list(root.iterdir()):  # the images are replaced by others with other names
        p.rename(root / f"new_{p.name}")
    with caplog.at_level(logging.WARNING):
        got = folder_images(root, cache)
    assert [p.name for p in got] == ["new_img0.png", "new_img1.png", "new_img2.png"]
    assert any("rescanning" in r.getMessage() for r in caplog.records)
    # without the folder's metadata (a list cached by an older version), missing files still trigger it
    for meta in (cache / "filelists").glob("*.json"):
        meta.unlink()
    for p in list(root.iterdir()):
        p.rename(root / p.name.replace("new_", "newer_"))
    assert [p.name for p in folder_images(root, cache)][0] == "newer_img0.png"


def test_a_read_only_cache_folder_only_costs_a_rescan(tmp_path, monkeypatch, caplog):
    root = tmp_path / "imgs"
    _photos(root, 2)

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with caplog.at_level(logging.WARNING):
        got = folder_images(root, tmp_path / "cache")
    assert len(got) == 2
    assert any("cannot cache the file list" in r.getMessage() for r in caplog.records)


def test_a_read_only_feature_cache_only_warns(tmp_path, monkeypatch, caplog):
    import torch

    from iqa_bench.eval.cache import FeatureCache, extract_cached

    class Mean(torch.nn.Module):
        def features(self, x):  # the encoder interface of the feature extractor: (B, 3, H, W) -> (B, D)
            return x.float().mean(dim=(2, 3))

    imgs = [torch.full((3, 32, 32), v, dtype=torch.uint8) for v in (10, 200)]

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with caplog.at_level(logging.WARNING):
        feats, ids, *_ = extract_cached(
            {"m": Mean()},
            imgs,
            scales=[1.0],
            crop_size=None,
            cache=FeatureCache(tmp_path / "c"),
            encoder_keys={"m": "k"},
            dataset_key="d",
        )
    assert feats["m"].shape[0] == len(ids) >= 2
    assert any("features not cached" in r.getMessage() for r in caplog.records)


def test_gif_images_are_listed_and_decoded_first_frame(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    frames = [Image.new("RGB", (40, 30), c) for c in ((200, 10, 10), (10, 200, 10))]
    frames[0].save(root / "anim.GIF", save_all=True, append_images=frames[1:], duration=100)
    pal = Image.new("P", (24, 20), 1)
    pal.putpalette([0, 0, 0, 30, 60, 90] + [0] * 762)
    pal.save(root / "still.gif", transparency=0)
    assert [p.name for p in folder_images(root, tmp_path / "cache")] == ["anim.GIF", "still.gif"]
    first = decode_image(root / "anim.GIF")
    assert first.shape == (3, 30, 40)
    assert np.allclose(first.float().mean(dim=(1, 2)).numpy(), [200, 10, 10], atol=3)
    still = decode_image(root / "still.gif")
    assert still[:, 0, 0].tolist() == [30, 60, 90]  # palette index 1, not the transparent index 0


def test_a_results_csv_cut_mid_row_is_not_a_source(tmp_path, caplog):
    from iqa_bench.eval.results import write_results

    rows = [
        {
            "method": "arniqa",
            "backbone": "tiny",
            "ckpt": "x",
            "seed": 0,
            "dataset": "d",
            "split": s,
            "srcc": v,
            "plcc": v,
        }
        for s, v in (("0", 0.5), ("1", 0.7), ("median", 0.6))
    ]
    for name in ("good", "cut"):
        write_results(tmp_path / name, rows, {})
    data = (tmp_path / "cut" / "results.csv").read_text()
    (tmp_path / "cut" / "results.csv").write_text(data[: data.rindex("median") + 9])  # mid-row
    with caplog.at_level(logging.WARNING):
        res = report([tmp_path], out=tmp_path / "report")
    md = (res["out"] / "report.md").read_text()
    assert "good/results.csv" in md and "cut/results.csv" not in md
    assert any("cut/results.csv" in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)
    assert [e["n_runs"] for e in res["summary"] if e["metric"] == "srcc"] == [1]


def test_regressors_respect_the_umask_like_every_result_file(tmp_path):
    from iqa_bench.eval.regressor import save_regressor
    from iqa_bench.eval.ridge import RidgeModel

    model = RidgeModel(coef_=np.ones(3), intercept_=0.5, mean_=np.zeros(3), scale_=np.ones(3), alpha=1.0)
    old = os.umask(0o027)
    try:
        path = save_regressor(tmp_path / "r.safetensors", model, {"scales": [1.0]})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.with_suffix(".json").stat().st_mode) == 0o640


def test_an_unwritable_run_folder_is_one_line_before_hydra_writes(tmp_path):
    import subprocess
    import sys

    from iqa_bench.utils.resolvers import PROJECT_ROOT
    from iqa_bench.utils.run_dir import write_problem

    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    assert write_problem(tmp_path / "ok" / "run") is None and (tmp_path / "ok" / "run").is_dir()
    assert write_problem(blocker / "run") == "Not a directory"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "iqa_bench.predict",
            "regressor=x.safetensors",
            f"images={tmp_path}",
            f"hydra.run.dir={blocker / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: hydra.run.dir: cannot write the run folder {blocker / 'run'}: Not a directory"
    ]
