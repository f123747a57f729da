"""Image decoding (bad input), built-in data determinism, pretraining samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from iqa_bench.data.builtin import kodak_paths, photo_paths, pretrain_images
from iqa_bench.data.images import BadImageError, decode_image, half_scale, list_images
from iqa_bench.data.pretrain import ArniqaPairs
from iqa_bench.data.procedural import procedural_image
from iqa_bench.errors import UserError


def _save(path, arr, mode=None, **kw):
    Image.fromarray(arr, mode=mode).save(path, **kw) if mode else Image.fromarray(arr).save(path, **kw)
    return path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = {"rgb": _save(tmp_path / "rgb.png", rgb)}
    out["gray"] = _save(tmp_path / "gray.png", rgb[..., 0])
    rgba = np.concatenate([rgb, np.full((40, 50, 1), 0, np.uint8)], axis=2)
    out["rgba"] = _save(tmp_path / "rgba.png", rgba)
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "g16.png")
    out["g16"] = tmp_path / "g16.png"
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    out["cmyk"] = tmp_path / "cmyk.jpg"
    out["tiny"] = _save(tmp_path / "tiny.png", rgb[:8, :8])
    (tmp_path / "empty.png").write_bytes(b"")
    out["empty"] = tmp_path / "empty.png"
    (tmp_path / "text.png").write_text("not an image")
    out["text"] = tmp_path / "text.png"
    _save(tmp_path / "trunc.jpg", rgb)
    data = (tmp_path / "trunc.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 3])
    out["trunc"] = tmp_path / "trunc.jpg"
    return out, rgb


def test_decode_converts_modes_to_rgb8(images):
    paths, rgb = images
    x = decode_image(paths["rgb"])
    assert x.dtype == torch.uint8 and x.shape == (3, 40, 50)
    assert torch.equal(x.permute(1, 2, 0), torch.from_numpy(rgb))
    g = decode_image(paths["gray"])
    assert g.shape == (3, 40, 50) and torch.equal(g[0], g[1])
    assert torch.equal(g[0], torch.from_numpy(rgb[..., 0]))
    a = decode_image(paths["rgba"])  # fully transparent -> composited on white
    assert int(a.min()) == 255
    g16 = decode_image(paths["g16"])
    assert g16.dtype == torch.uint8 and torch.equal(g16[0], torch.from_numpy(rgb[..., 0]))
    c = decode_image(paths["cmyk"])
    assert c.shape == (3, 40, 50)
    assert (c.float() - torch.from_numpy(rgb).permute(2, 0, 1).float()).abs().mean() < 25


@pytest.mark.parametrize("key", ["tiny", "empty", "text", "trunc"])
def test_bad_images_raise_naming_the_file(images, key):
    paths, _ = images
    with pytest.raises(BadImageError, match=paths[key].name):
        decode_image(paths[key])


def test_list_images_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        list_images(tmp_path / "nope")
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path)


def test_procedural_images_are_deterministic_and_distinct():
    a, b = procedural_image(0, 5, 64, 64), procedural_image(0, 5, 64, 64)
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
    assert np.array_equal(a, b)
    c = procedural_image(1, 5, 64, 64)
    assert not np.array_equal(a, c)
    # natural-like: not flat, spans a good part of the range
    assert a.std() > 10


def test_builtin_pretrain_set_is_the_photos_plus_cached_procedural_images(tmp_path):
    photos = photo_paths()
    assert pretrain_images(tmp_path) == photos  # default: the 400 vendored photographs, read in place
    assert not any(tmp_path.iterdir())  # nothing generated for them
    paths = pretrain_images(tmp_path, num_procedural=60, seed=3, size=64)
    assert paths[:400] == photos and len(paths) == 460 and len({p.name for p in paths}) == 460
    mtimes = [p.stat().st_mtime_ns for p in paths[400:]]
    again = pretrain_images(tmp_path, num_procedural=60, seed=3, size=64)
    assert again == paths and [p.stat().st_mtime_ns for p in again[400:]] == mtimes  # reused, not rewritten
    (paths[-1].parent / "manifest.json").unlink()  # an incomplete folder is rebuilt
    assert pretrain_images(tmp_path, num_procedural=60, seed=3, size=64) == paths
    only_proc = pretrain_images(tmp_path, num_procedural=60, seed=3, size=64, include_photos=False)
    assert only_proc == paths[400:]
    with pytest.raises(ValueError, match="no image"):
        pretrain_images(tmp_path, num_procedural=0, include_photos=False)


def test_vendored_photos_are_small_real_and_disjoint_from_evaluation():
    photos = photo_paths()
    assert len(photos) == 400
    assert {p.name for p in photos}.isdisjoint({p.name for p in kodak_paths()})
    for p in photos[::40]:
        x = decode_image(p)
        assert x.shape == (3, 320, 320) and x.dtype == torch.uint8
        assert x.float().std() > 10  # a photograph, not a flat image
    assets = photos[0].parent.parent
    total = sum(f.stat().st_size for f in assets.rglob("*") if f.is_file())
    assert total <= 20 * 2**20, f"package assets are {total / 2**20:.1f} MiB"
    assert (photos[0].parent / "PROVENANCE.md").is_file()


def test_vendored_photos_are_not_in_the_biq2021_subset():
    """Never pretrain on evaluated images: unsplash_<n>.jpg is BIQ2021's "ss03 (<n>).jpg"."""
    import csv

    from iqa_bench.utils.resolvers import PROJECT_ROOT

    subset = PROJECT_ROOT.parent / "shared" / "data" / "biq2021_subset"
    if not subset.is_dir():
        pytest.skip(f"BIQ2021 development subset not found at {subset}")
    evaluated = set()
    for name in ("Train (Images and MOS).csv", "Test (Images and MOS).csv"):
        with open(subset / name, newline="") as f:
            evaluated |= {row[0] for row in csv.reader(f) if row}
    assert len(evaluated) > 2000
    ours = {f"ss03 ({p.stem.split('_')[1]}).jpg" for p in photo_paths()}
    assert ours.isdisjoint(evaluated)


def test_kodak_is_vendored():
    paths = kodak_paths()
    assert len(paths) == 24
    x = decode_image(paths[0])
    assert max(x.shape[1:]) == 384


def test_arniqa_pairs_views_and_bad_file_skip(tmp_path, images, caplog):
    paths, _ = images
    good = pretrain_images(tmp_path / "b", num_procedural=3, seed=0, size=96, include_photos=False)
    ds = ArniqaPairs([*good, paths["text"]], crop_size=32)
    torch.manual_seed(0)
    for i in range(len(ds)):
        s = ds[i]
        assert s["a"].shape == (2, 3, 32, 32) and s["a"].dtype == torch.uint8
        assert s["b"].shape == (2, 3, 32, 32)
    assert 3 in ds.bad
    assert "text.png" in caplog.text
    with pytest.raises(UserError, match="no readable"):
        ArniqaPairs([paths["text"], paths["empty"]], crop_size=32)[0]


def test_half_scale_halves():
    x = torch.randint(0, 256, (3, 100, 60), dtype=torch.uint8)
    assert half_scale(x).shape == (3, 50, 30)
