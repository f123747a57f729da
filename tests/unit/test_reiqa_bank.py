"""Re-IQA bank: registry, ``apply`` contracts, the chunk sampler and plan, grouping, validation, tiny images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqa_bench.distortions import reiqa_bank as rb
from iqa_bench.distortions.functional import _pil

NAMES = rb.names()
STOCHASTIC = [n for n in NAMES if rb.get_spec(n).stochastic]
DETERMINISTIC = [n for n in NAMES if n not in STOCHASTIC]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors on a shared 2-core machine: one intra-op thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(b: int = 3, h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 6, 6, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x[:, :, h // 4 : h // 2, w // 4 : w // 2] = 0.9
    return (x.clamp(0, 1) * 255).round() / 255  # on the uint8 grid, like a decoded image


# ------------------------------------------------------------------------------------------------ registry
def test_registry_follows_the_dispatcher():
    assert len(NAMES) == 26 == len(set(NAMES))
    assert NAMES[0] == "imblurgauss" and NAMES[-1] == "imblurmotion" and NAMES[16] == "imsharpenHi"
    assert [rb.get_spec(n).choice for n in NAMES] == list(range(1, 27))
    assert rb.level_params("imcompressjpeg") == (70.0, 43.0, 36.0, 24.0, 7.0)
    assert rb.type_id("imsharpenHi_official") == 26 and "imsharpenHi_official" not in NAMES
    assert set(STOCHASTIC) == {
        "imcolorshift",
        "imnoisegauss",
        "imnoisecolormap",
        "imnoiseimpulse",
        "imnoisemultiplicative",
        "imdenoise",
        "imcolorblock",
        "imnoneccentricity",
        "imjitter",
        "imblurmotion",
    }


def test_apply_keeps_shape_dtype_range_and_uint8_grid():
    x = _images(2)
    for name in ("imblurgauss", "imnoisegauss", "imresizedist_lanczos", "imcolordiffuse"):
        y = rb.apply(name, x, 4, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        torch.testing.assert_close(y * 255, (y * 255).round(), atol=1e-3, rtol=0)
    assert rb.apply("imblurgauss", x.double(), 2).dtype == torch.float64


def test_identity_and_seeding():
    x = _images(2)
    assert torch.equal(rb.apply("immeanshift", x, 3), x)  # official L3 is a shift by 0
    a = rb.apply("imjitter", x, 3, torch.Generator().manual_seed(4))
    b = rb.apply("imjitter", x, 3, torch.Generator().manual_seed(4))
    c = rb.apply("imjitter", x, 3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pillow_emulation_is_bit_exact():
    from PIL import Image, ImageFilter

    img = (torch.rand(37, 45, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    t = torch.from_numpy(img).permute(2, 0, 1)[None].long()
    for radius in (0.5, 2.0, 5.0):
        ref = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=radius)))
        ours = _pil.box_blur_u8(t, _pil.gaussian_blur_radius(radius, 3), 3)[0].permute(1, 2, 0).numpy()
        assert np.array_equal(ours, ref), radius
    for mode, pil_mode in (
        ("bicubic", Image.BICUBIC),
        ("lanczos", Image.LANCZOS),
        ("bilinear", Image.BILINEAR),
    ):
        ref = np.asarray(Image.fromarray(img).resize((15, 12), pil_mode))
        ours = _pil.resize_u8(t.double(), (12, 15), mode)[0].permute(1, 2, 0).numpy()
        assert np.array_equal(ours, ref), mode
    ref = np.asarray(Image.fromarray(img).resize((29, 31), Image.NEAREST))
    cols, rows = _pil.resize_nearest_index(45, 29, "cpu"), _pil.resize_nearest_index(37, 31, "cpu")
    assert np.array_equal(img[rows.numpy()][:, cols.numpy()], ref)


@pytest.mark.parametrize("name", ["imblurgauss", "imblurlens", "imresizedist", "imnoisegauss", "imjitter"])
def test_severity_grows_with_level(name):
    x = _images(3, 64, 64)
    mads = [
        float((rb.apply(name, x, lv, torch.Generator().manual_seed(0)) - x).abs().mean())
        for lv in range(1, 6)
    ]
    assert all(b > a for a, b in zip(mads, mads[1:])), mads


# ------------------------------------------------------------------------------------------------ sampler
def test_sampler_draws_distinct_types_and_uniform_levels():
    s = rb.ReIQASampler(n_aug=11)
    plan = s.sample(600, torch.Generator().manual_seed(0))
    assert plan.type_ids.shape == (600, 11) == plan.levels.shape
    assert all(len(set(row)) == 11 for row in plan.type_ids.tolist())
    assert int(plan.type_ids.min()) >= 0 and int(plan.type_ids.max()) <= 25
    counts = torch.bincount(plan.levels.flatten(), minlength=6)[1:].float()
    assert float(counts.min()) > 1150 and float(counts.max()) < 1500  # 1320 expected per level
    again = s.sample(600, torch.Generator().manual_seed(0))
    assert torch.equal(plan.type_ids, again.type_ids) and torch.equal(plan.levels, again.levels)
    assert plan.describe(0)[0][0] in NAMES


def test_sampler_options():
    s = rb.ReIQASampler(
        n_aug=3, num_levels=2, names=["imsharpenHi", "imdarken", "imblurgauss"], sharpen_official=True
    )
    plan = s.sample(50, torch.Generator().manual_seed(1))
    assert set(plan.type_ids.flatten().tolist()) == {26, rb.type_id("imdarken"), rb.type_id("imblurgauss")}
    assert int(plan.levels.max()) <= 2


def test_chunk_layout_and_grouping_equals_per_sample():
    x = _images(4, seed=3)
    plan = rb.ReIQAPlan.from_sequences(
        [
            [("imblurgauss", 2), ("imdarken", 5), ("imresizedist", 1)],
            [("imdarken", 1), ("imblurgauss", 4), ("imcolorsaturate", 3)],
            [("imresizedist", 3), ("imsharpenHi", 2), ("imdarken", 2)],
            [("imcontrastc", 4), ("imblurgauss", 2), ("impixelate", 5)],
        ]
    )
    chunk = rb.apply_chunk(x, plan)
    assert chunk.shape == (4, 4, 3, 40, 48)
    assert torch.equal(chunk[:, 0], x)
    for i in range(4):
        for j, (name, level) in enumerate(plan.describe(i)):
            torch.testing.assert_close(
                chunk[i, j + 1], rb.apply(name, x[i : i + 1], level)[0], atol=1e-6, rtol=0
            )


def test_apply_plan_per_version_matches_the_chunk():
    x = _images(2)
    plan = rb.ReIQASampler(n_aug=3, names=["imdarken", "imblurlens", "imresizedist", "imcontrastc"]).sample(
        2, torch.Generator().manual_seed(0)
    )
    chunk = rb.apply_chunk(x, plan)
    versions = rb.apply_plan(x.repeat_interleave(3, 0), plan.as_steps())
    torch.testing.assert_close(versions.view(2, 3, 3, 40, 48), chunk[:, 1:], atol=1e-6, rtol=0)
    composed = rb.apply_plan(
        x, rb.ReIQAPlan(torch.tensor([[13, -1], [1, 13]]), torch.tensor([[2, 0], [1, 2]]))
    )
    torch.testing.assert_close(composed[0], rb.apply("imdarken", x[:1], 2)[0])
    twice = rb.apply("imdarken", rb.apply("imblurlens", x[1:], 1), 2)
    torch.testing.assert_close(composed[1:], twice)


def test_sampler_call_returns_chunk_and_plan():
    x = _images(2)
    chunk, plan = rb.ReIQASampler(n_aug=2, names=["imnoisegauss", "imdarken", "imblurlens"])(
        x, torch.Generator().manual_seed(0)
    )
    assert chunk.shape == (2, 3, 3, 40, 48) and plan.batch_size == 2 and plan.num_distortions == 2


# ------------------------------------------------------------------------------------------------ validation
def test_bad_arguments_name_the_argument():
    x = _images(2)
    with pytest.raises(ValueError, match="name"):
        rb.apply("gaublur", x, 1)
    with pytest.raises(ValueError, match="images"):
        rb.apply("imdarken", x[:, :1], 1)
    with pytest.raises(ValueError, match="level"):
        rb.apply("imdarken", x, 6)
    with pytest.raises(ValueError, match="n_aug"):
        rb.ReIQASampler(n_aug=27)
    with pytest.raises(ValueError, match="names"):
        rb.ReIQASampler(names=["nope"])
    with pytest.raises(ValueError, match="num_levels"):
        rb.ReIQASampler(num_levels=0)
    with pytest.raises(ValueError, match="batch_size"):
        rb.ReIQASampler().sample(-2)
    with pytest.raises(ValueError, match="plan"):
        rb.apply_chunk(x, "plan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        rb.apply_chunk(x, rb.ReIQAPlan.from_sequences([[("imdarken", 1)]]))
    with pytest.raises(ValueError, match="levels"):
        rb.apply_chunk(x[:1], rb.ReIQAPlan(torch.tensor([[0]]), torch.tensor([[9]])))


@pytest.mark.parametrize("size", [(8, 8), (1, 5)])
def test_tiny_images_do_not_crash(size):
    x = _images(2, *size)
    for name in [*NAMES, "imsharpenHi_official"]:
        for level in (1, 5):
            y = rb.apply(name, x, level, torch.Generator().manual_seed(0))
            assert y.shape == x.shape and bool(torch.isfinite(y).all()), (name, level)
