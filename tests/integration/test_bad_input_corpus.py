"""The bad-input corpus: a pretraining folder full of broken files still trains (each bad file skipped with a
warning naming it); a folder of only bad files stops with one clear error before training."""

from __future__ import annotations

import logging
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from iqa_bench.data.builtin import kodak_paths
from iqa_bench.data.images import BadImageError, decode_image
from iqa_bench.errors import UserError
from iqa_bench.train import train


def _png_with_header(path, width: int, height: int) -> None:
    """A PNG whose IHDR claims `width x height` (a decompression-bomb header) with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def bad_corpus(folder):
    """Every kind of bad file the issue lists; returns {kind: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "full.jpg", quality=90)
    data = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "full.jpg").unlink()
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image")
    Image.fromarray(rgb[:1, :1]).save(folder / "one.png")
    Image.fromarray(rgb[:8, :8]).save(folder / "eight.png")
    _png_with_header(folder / "bomb.png", 100_000, 100_000)
    return {p.stem: p for p in folder.iterdir()}


def test_every_bad_file_is_a_named_bad_image_error(tmp_path):
    for path in bad_corpus(tmp_path / "bad").values():
        with pytest.raises(BadImageError, match=path.name):
            decode_image(path)
    with pytest.raises(BadImageError, match="decompression bomb|safety limit"):
        decode_image(tmp_path / "bad" / "bomb.png")


def test_training_goes_on_past_bad_files_and_names_them(compose_cfg, tmp_path, caplog):
    root = tmp_path / "my photos ü"
    bad = bad_corpus(root / "bad files")
    good = root / "good ones"
    good.mkdir()
    for p in kodak_paths()[:12]:
        shutil.copy(p, good / p.name)
    # the odd modes are converted, not skipped
    Image.open(kodak_paths()[12]).convert("L").save(good / "grey.png")
    Image.open(kodak_paths()[13]).convert("CMYK").save(good / "cmyk.jpg")
    Image.open(kodak_paths()[14]).convert("RGBA").save(good / "rgba.png")
    Image.fromarray(np.asarray(Image.open(kodak_paths()[15]).convert("L")).astype(np.uint16) * 257).save(
        good / "sixteen.png"
    )
    cfg = compose_cfg(
        [
            "experiment=smoke",
            "data/pretrain=folder",
            f"data.pretrain.path='{root}'",  # Hydra needs quotes around a path with spaces
            "data.pretrain.crop_size=64",
            "data.pretrain.batch_size=4",
            "data.pretrain.num_workers=0",
            "data.pretrain.persistent_workers=false",
            "trainer.max_steps=8",
            "evaluator.baseline_random_init=false",
        ]
    )
    with caplog.at_level(logging.WARNING):
        out = train(cfg)
    assert (out["run_dir"] / "results.csv").is_file()
    warned = " ".join(r.getMessage() for r in caplog.records)
    skipped = [name for name, p in bad.items() if p.name in warned]
    assert skipped, "bad files drawn during training must be named in a warning"
    assert "skipped so far" in warned


def test_a_folder_of_only_bad_files_stops_before_training(compose_cfg, tmp_path):
    bad_corpus(tmp_path / "bad")
    cfg = compose_cfg(["experiment=smoke", "data/pretrain=folder", f"data.pretrain.path={tmp_path / 'bad'}"])
    with pytest.raises(UserError, match="no readable pretraining image"):
        train(cfg)
