"""RankIQA ladders: interface, shapes, ordering of severity, seeding, batching by type, validation, tiny images."""

from __future__ import annotations

import pytest
import torch

from iqa_bench.distortions import RankIQALadder
from iqa_bench.distortions.ladders import SETTINGS

LIVE = RankIQALadder("live")
TID = RankIQALadder("tid2013")
ALL = [("live", n) for n in LIVE.types] + [("tid2013", n) for n in TID.types]
# types whose output depends on the generator (positions, noise)
STOCHASTIC = {(s, t.name) for s in SETTINGS for t in SETTINGS[s] if t.stochastic}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors on a shared 2-core machine: one intra-op thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ladder(setting: str) -> RankIQALadder:
    return LIVE if setting == "live" else TID


def _images(b: int = 3, h: int = 48, w: int = 56, seed: int = 0) -> torch.Tensor:
    """Smooth random images with an edge: a coarse noise field upsampled, plus a bright square."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 6, 6, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x[:, :, h // 4 : h // 2, w // 4 : w // 2] = 0.9
    return x.clamp(0, 1)


def _photos(size: int) -> torch.Tensor:
    """Centre crops of three scikit-image photographs (natural content, where the ordering matters)."""
    from skimage import data

    out = []
    for k in ("astronaut", "chelsea", "coffee"):
        img = torch.from_numpy(getattr(data, k)()).permute(2, 0, 1).float() / 255.0
        top, left = img.shape[1] // 2 - size // 2, img.shape[2] // 2 - size // 2
        out.append(img[:, top : top + size, left : left + size])
    return torch.stack(out).contiguous()


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return _photos(96)


@pytest.fixture(scope="module")
def photos224() -> torch.Tensor:
    # JPEG 2000 at ratios 600/1200 hits OpenJPEG's minimum codestream below ~200 px (levels 4-5 coincide)
    return _photos(224)


# ------------------------------------------------------------------------------------------------ interface
def test_settings_types_and_levels():
    assert LIVE.types == ["gblur", "wn", "jpeg", "jp2k"] and LIVE.num_levels == 5 and LIVE.num_views == 6
    assert len(TID.types) == 17 and TID.num_levels == 4 and len(set(TID.types)) == 17
    assert LIVE.level_params("gblur") == (7.0, 15.0, 39.0, 91.0, 199.0)
    assert TID.level_params("jpeg") == (43.0, 12.0, 7.0, 4.0)
    assert RankIQALadder("tid2013", types=["jpeg", "agn"]).types == ["jpeg", "agn"]


# The RankIQA generators' level tables as documented (LIVE: distortion_generator.m; TID2013: tid2013_generator.m),
# in the documentation's own units. Mapped to the ops' parameters below, where the units differ.
DOC_LIVE = {
    "gblur": (7, 15, 39, 91, 199),  # hsize
    "wn": (-10, -7.5, -5.5, -3.5, 0),  # variance 2^e
    "jpeg": (43, 12, 7, 4, 0),  # MATLAB quality (0 does not exist in libjpeg: clamped to 1)
    "jp2k": (52, 150, 343, 600, 1200),  # compression ratio
}
DOC_TID = {
    "agn": (0.001, 0.005, 0.01, 0.05),
    "anc": (0.0140, 0.0198, 0.0343, 0.0524),
    "hfn": (0.001, 0.005, 0.01, 0.05),
    "in": (0.005, 0.01, 0.05, 0.1),
    "qn": (9, 7, 5, 3),
    "gb": (7, 15, 39, 91),
    "den": (0.001, 0.005, 0.01, 0.05),
    "jpeg": (43, 12, 7, 4),
    "jp2k": (0.46, 0.16, 0.07, 0.04),  # bpp; ratio = 24 / bpp
    "nepn": (30, 70, 150, 300),
    "block": (2, 4, 8, 16),  # number of blocks = 2^level
    "ms": (15, 30, 45, 60),
    "ctc": (0.85, 0.70, 0.55, 0.40),
    "ccs": (0.4, 0.0, -0.4, -0.8),
    "mgn": (0.05, 0.09, 0.13, 0.2),
    "icqd": (64, 32, 16, 8),
    "cha": (2, 6, 10, 14),
}


def test_level_tables_match_the_documented_generators():
    assert LIVE.types == list(DOC_LIVE) and TID.types == list(DOC_TID)
    live = {n: LIVE.level_params(n) for n in LIVE.types}
    assert live["gblur"] == DOC_LIVE["gblur"] and live["jp2k"] == DOC_LIVE["jp2k"]
    assert live["wn"] == tuple(2.0**e for e in DOC_LIVE["wn"])
    assert live["jpeg"] == tuple(max(q, 1) for q in DOC_LIVE["jpeg"])
    for name, doc in DOC_TID.items():
        got = TID.level_params(name)
        if name == "jp2k":
            assert [round(24 / b) for b in doc] == [52, 150, 343, 600] and got == (52, 150, 343, 600)
        elif name == "block":
            assert tuple(2**lv for lv in got) == doc  # the op's parameter is the level
        else:
            assert got == pytest.approx(doc, rel=0, abs=0), name


def test_call_shapes_pristine_first_and_dtype():
    x = _images(5)
    ladder = RankIQALadder("live", types=["gblur", "wn"])
    views, ids = ladder(x, generator=torch.Generator().manual_seed(0))
    assert views.shape == (5, 6, 3, 48, 56) and views.dtype == x.dtype
    assert ids.shape == (5,) and ids.dtype == torch.long and int(ids.min()) >= 0 and int(ids.max()) <= 1
    assert torch.equal(views[:, 0], x)
    assert float(views.min()) >= 0 and float(views.max()) <= 1
    half = ladder.apply(x.half(), ids, torch.Generator().manual_seed(0))
    assert half.dtype == torch.float16 and half.shape == views.shape


def test_sample_types_is_uniform_and_seeded():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = TID.sample_types(4000, g1), TID.sample_types(4000, g2)
    assert torch.equal(a, b)
    counts = torch.bincount(a, minlength=17).float()
    assert float(counts.min()) > 150 and float(counts.max()) < 320  # expected 235 each


def test_call_is_deterministic_for_a_seeded_generator():
    x = _images(6)
    va, ia = TID(x, torch.Generator().manual_seed(7))
    vb, ib = TID(x, torch.Generator().manual_seed(7))
    assert torch.equal(ia, ib) and torch.equal(va, vb)


# ------------------------------------------------------------------------------------------------ severity
@pytest.mark.parametrize("setting,name", ALL)
def test_severity_increases_along_the_ladder(request, setting, name):
    """PSNR to the pristine image falls strictly from level to level (averaged over images and seeds)."""
    photos = request.getfixturevalue("photos224" if name == "jp2k" else "photos")
    ladder = _ladder(setting)
    ids = torch.full((photos.shape[0],), ladder.types.index(name))
    seeds = 3 if (setting, name) in STOCHASTIC else 1
    psnr = torch.zeros(ladder.num_levels)
    for s in range(seeds):
        v = ladder.apply(photos, ids, torch.Generator().manual_seed(s))
        mse = ((v[:, 1:] - v[:, :1]) ** 2).mean(dim=(2, 3, 4)).clamp_min(1e-10)  # (B, L)
        psnr += (10 * torch.log10(1 / mse)).mean(0) / seeds
    assert bool((psnr[1:] < psnr[:-1]).all()), f"{setting}/{name}: PSNR by level {psnr.tolist()}"
    assert float(psnr[0]) < 60, f"{setting}/{name}: level 1 is (almost) the identity"


# ------------------------------------------------------------------------------------------------ batching
def test_grouping_equals_per_sample_application():
    """Deterministic types: the batched, grouped result equals applying each sample alone."""
    x = _images(6, seed=2)
    det = [i for i, t in enumerate(TID.types) if ("tid2013", t) not in STOCHASTIC]
    ids = torch.tensor([det[i % len(det)] for i in (0, 3, 0, 5, 3, 1)])
    batched = TID.apply(x, ids)
    for i in range(6):
        alone = TID.apply(x[i : i + 1], ids[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=0)


def test_stochastic_types_vary_with_the_seed_and_apply_level_matches():
    x = _images(2)
    ids = torch.full((2,), LIVE.types.index("wn"))
    a = LIVE.apply(x, ids, torch.Generator().manual_seed(0))
    b = LIVE.apply(x, ids, torch.Generator().manual_seed(1))
    assert not torch.equal(a[:, 1:], b[:, 1:])
    y = LIVE.apply_level("gblur", x, 3)
    ref = LIVE.apply(x, torch.zeros(2, dtype=torch.long))[:, 3]
    torch.testing.assert_close(y, ref)


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "kwargs,word",
    [
        ({"setting": "kadid"}, "setting"),
        ({"setting": "live", "types": ["nope"]}, "types"),
        ({"setting": "live", "types": "gblur"}, "types"),
        ({"setting": "tid2013", "types": []}, "types"),
    ],
)
def test_bad_constructor_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        RankIQALadder(**kwargs)


def test_bad_call_arguments_name_the_argument():
    x = _images(2)
    with pytest.raises(ValueError, match="images"):
        LIVE(x[:, :2])
    with pytest.raises(ValueError, match="images"):
        LIVE(x * 3)
    with pytest.raises(ValueError, match="type_ids"):
        LIVE.apply(x, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="type_ids"):
        LIVE.apply(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="type_ids"):
        LIVE.apply(x, torch.tensor([0]))
    with pytest.raises(ValueError, match="batch_size"):
        LIVE.sample_types(-1)
    with pytest.raises(ValueError, match="level"):
        LIVE.apply_level("gblur", x, 6)
    with pytest.raises(ValueError, match="name"):
        LIVE.apply_level("agn", x, 1)


@pytest.mark.parametrize("setting", ["live", "tid2013"])
def test_tiny_images_and_empty_batches(setting):
    ladder = _ladder(setting)
    x = _images(len(ladder.types), h=8, w=8)
    ids = torch.arange(len(ladder.types))
    views = ladder.apply(x, ids, torch.Generator().manual_seed(0))
    assert views.shape == (len(ladder.types), ladder.num_views, 3, 8, 8)
    assert bool(torch.isfinite(views).all())
    empty = ladder(x[:0], torch.Generator().manual_seed(0))[0]
    assert empty.shape == (0, ladder.num_views, 3, 8, 8)
