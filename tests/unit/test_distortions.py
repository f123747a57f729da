"""Behaviour of the distortion bank's public API: registry, ``apply`` contracts, seeding, batching, severity."""

from __future__ import annotations

import math

import pytest
import torch

from iqa_bench import distortions
from iqa_bench.distortions.bank import get_spec

NAMES = distortions.names()
STOCHASTIC = {
    "motionblur",
    "colorshift",
    "whitenoise",
    "whitenoiseCC",
    "impulsenoise",
    "multnoise",
    "jitter",
    "noneccpatch",
    "colorblock",
}
DETERMINISTIC = [n for n in NAMES if n not in STOCHASTIC]
# ops whose severity is not monotone in level by design (sign-alternating level tables)
NON_MONOTONE = {"meanshift", "lincontrchange"}


def _images(b: int = 5, h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    """Smooth random images with edges: a coarse noise field upsampled, plus a bright square."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 6, 6, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x[:, :, h // 4 : h // 2, w // 4 : w // 2] = 0.9
    return x.clamp(0, 1)


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    """The 224x224 centre crop of scikit-image's astronaut (one of the oracle images), (1,3,224,224)."""
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255.0
    h, w = img.shape[1:]
    return img[:, h // 2 - 112 : h // 2 + 112, w // 2 - 112 : w // 2 + 112].unsqueeze(0).contiguous()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


# ----------------------------------------------------------------------------------------------- registry
# The level table of the ARNIQA paper's code as documented (`distortion_range` in utils_data.py): group, the
# five parameters L1..L5. Written out from the documentation, not from the bank, so a typo in either shows.
DOCUMENTED_LEVELS = {
    "gaublur": ("blur", (0.1, 0.5, 1, 2, 5)),
    "lensblur": ("blur", (1, 2, 4, 6, 8)),
    "motionblur": ("blur", (1, 2, 4, 6, 10)),
    "colordiff": ("color_distortion", (1, 3, 6, 8, 12)),
    "colorshift": ("color_distortion", (1, 3, 6, 8, 12)),
    "colorsat1": ("color_distortion", (0.4, 0.2, 0.1, 0, -0.4)),
    "colorsat2": ("color_distortion", (1, 2, 3, 6, 9)),
    "jpeg2000": ("jpeg", (16, 32, 45, 120, 170)),
    "jpeg": ("jpeg", (43, 36, 24, 7, 4)),
    "whitenoise": ("noise", (0.001, 0.002, 0.003, 0.005, 0.01)),
    "whitenoiseCC": ("noise", (0.0001, 0.0005, 0.001, 0.002, 0.003)),
    "impulsenoise": ("noise", (0.001, 0.005, 0.01, 0.02, 0.03)),
    "multnoise": ("noise", (0.001, 0.005, 0.01, 0.02, 0.05)),
    "brighten": ("brightness_change", (0.1, 0.2, 0.4, 0.7, 1.1)),
    "darken": ("brightness_change", (0.05, 0.1, 0.2, 0.4, 0.8)),
    "meanshift": ("brightness_change", (0, 0.08, -0.08, 0.15, -0.15)),
    "jitter": ("spatial_distortion", (0.05, 0.1, 0.2, 0.5, 1)),
    "noneccpatch": ("spatial_distortion", (20, 40, 60, 80, 100)),
    "pixelate": ("spatial_distortion", (0.01, 0.05, 0.1, 0.2, 0.5)),
    "quantization": ("spatial_distortion", (20, 16, 13, 10, 7)),
    "colorblock": ("spatial_distortion", (2, 4, 6, 8, 10)),
    "highsharpen": ("sharpness_contrast", (1, 2, 3, 6, 12)),
    "lincontrchange": ("sharpness_contrast", (0.0, 0.15, -0.4, 0.3, -0.6)),
    "nonlincontrchange": ("sharpness_contrast", (0.4, 0.3, 0.2, 0.1, 0.05)),
}
# tables that are not monotone in their parameter by design (sign-alternating)
NON_MONOTONE_TABLE = {"colorsat1", "meanshift", "lincontrchange"}


def test_names_groups_and_levels_follow_the_spec():
    assert NAMES == list(DOCUMENTED_LEVELS) and len(set(NAMES)) == 24  # order = type ids
    groups = distortions.groups()
    assert list(groups) == [
        "blur",
        "color_distortion",
        "jpeg",
        "noise",
        "brightness_change",
        "spatial_distortion",
        "sharpness_contrast",
    ]
    assert [len(v) for v in groups.values()] == [3, 4, 2, 4, 3, 5, 3]
    assert sum(groups.values(), []) == NAMES
    for name, (group, levels) in DOCUMENTED_LEVELS.items():
        assert get_spec(name).group == group, name
        assert distortions.level_params(name) == tuple(float(v) for v in levels), name
    assert {n for n in NAMES if get_spec(n).stochastic} == STOCHASTIC


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NON_MONOTONE_TABLE])
def test_level_tables_are_strictly_monotone(name):
    """Besides the documented values: every other table runs strictly one way (a typo often breaks that)."""
    p = distortions.level_params(name)
    steps = [b - a for a, b in zip(p, p[1:])]
    assert len(p) == 5 and (all(d > 0 for d in steps) or all(d < 0 for d in steps)), p


def test_level_params_unknown_name_raises():
    with pytest.raises(ValueError, match="name"):
        distortions.level_params("gaussian_blur")


# ------------------------------------------------------------------------------------------ apply contract
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_device_and_range_preserved(name):
    x = _images()
    y = distortions.apply(name, x, torch.arange(1, 6), generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_input_not_modified(name):
    x = _images(b=2).contiguous(memory_format=torch.channels_last)
    before = x.clone()
    for level in (1, 5):  # level 1 covers the identity shortcuts
        distortions.apply(name, x, level, generator=torch.Generator().manual_seed(0))
        assert torch.equal(x, before)
    plan = distortions.DistortionPlan.from_sequences([[(name, 1)], [(name, 5)]])
    distortions.apply_plan(x, plan, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name):
    x = _images()
    a = distortions.apply(name, x, torch.arange(1, 6), generator=torch.Generator().manual_seed(7))
    b = distortions.apply(name, x, torch.arange(1, 6), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_different_seed_different_output(name):
    x = _images(b=4, h=96, w=96)
    a = distortions.apply(name, x, 5, generator=torch.Generator().manual_seed(1))
    b = distortions.apply(name, x, 5, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_ops_ignore_the_seed(name):
    x = _images()
    a = distortions.apply(name, x, 4, generator=torch.Generator().manual_seed(1))
    b = distortions.apply(name, x, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_mixed_level_batch_equals_per_sample(name):
    x = _images(b=10)
    levels = torch.tensor([3, 1, 5, 2, 4, 4, 2, 5, 1, 3])
    batched = distortions.apply(name, x, levels)
    single = torch.cat([distortions.apply(name, x[i : i + 1], int(levels[i])) for i in range(10)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)  # << 1/255


@pytest.mark.parametrize("name", sorted(STOCHASTIC - {"motionblur"}))
def test_mixed_level_batch_stochastic_statistics(name):
    """In one mixed batch, every level's mean change matches a single-level batch and grows with level."""
    x = _images(b=1, h=96, w=96).expand(20, -1, -1, -1).contiguous()
    levels = torch.arange(20) % 5 + 1
    y = distortions.apply(name, x, levels, generator=torch.Generator().manual_seed(3))
    change = (y - x).abs().mean(dim=(1, 2, 3))
    mixed = [float(change[levels == lv].mean()) for lv in range(1, 6)]
    alone = []
    for lv in range(1, 6):
        ys = distortions.apply(name, x[:4], lv, generator=torch.Generator().manual_seed(10 + lv))
        alone.append(float((ys - x[:4]).abs().mean()))
    assert mixed[-1] > mixed[0]
    for m, a in zip(mixed, alone):
        assert abs(m - a) <= 0.35 * a + 2e-3, (mixed, alone)


# ------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "images",
    [torch.rand(3, 8, 8), torch.rand(2, 1, 8, 8), torch.rand(2, 4, 8, 8), torch.rand(1, 2, 3, 8, 8)],
)
def test_bad_image_shape_names_images(images):
    with pytest.raises(ValueError, match=r"images must be \(B,3,H,W\)"):
        distortions.apply("gaublur", images, 1)


def test_out_of_range_and_integer_images_rejected():
    with pytest.raises(ValueError, match=r"images must be in \[0,1\]"):
        distortions.apply("gaublur", torch.rand(1, 3, 8, 8) * 255, 1)
    with pytest.raises(ValueError, match=r"images must be in \[0,1\]"):
        distortions.apply("gaublur", torch.rand(1, 3, 8, 8) - 0.5, 1)
    with pytest.raises(ValueError, match="images"):
        distortions.apply("gaublur", torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), 1)
    distortions.apply("gaublur", torch.full((1, 3, 8, 8), 1.0 + 1e-5), 1)  # tiny overshoot tolerated


def test_unknown_name_and_bad_levels_rejected():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="name"):
        distortions.apply("GaussianBlur", x, 1)
    for bad in (0, 6, -1):
        with pytest.raises(ValueError, match="level"):
            distortions.apply("gaublur", x, bad)
    with pytest.raises(ValueError, match="level"):
        distortions.apply("gaublur", x, torch.tensor([1, 6]))
    with pytest.raises(ValueError, match="level"):
        distortions.apply("gaublur", x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="level"):
        distortions.apply("gaublur", x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="level"):
        distortions.apply("gaublur", x, 2.0)


# ------------------------------------------------------------------------------------------- robustness
@pytest.mark.parametrize("name", NAMES)
def test_tiny_images_every_level(name):
    g = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 8, 8), (1, 3, 5, 9), (1, 3, 1, 1)):
        x = torch.rand(*shape, generator=g)
        for level in range(1, 6):
            y = distortions.apply(name, x, level, generator=g)
            assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


def test_empty_batch():
    x = torch.rand(0, 3, 16, 16)
    for name in NAMES:
        assert distortions.apply(name, x, 3).shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_on_cpu(name):
    x = _images(b=3)
    ref = distortions.apply(name, x, 3, generator=torch.Generator().manual_seed(5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = distortions.apply(name, x, 3, generator=torch.Generator().manual_seed(5))
        yb = distortions.apply(name, x.bfloat16(), 3, generator=torch.Generator().manual_seed(5))
    assert y.dtype == torch.float32 and yb.dtype == torch.bfloat16
    # autocast is disabled inside: the fp32 result is unaffected by the surrounding bf16 region
    torch.testing.assert_close(y, ref, atol=0, rtol=0)
    assert float(yb.float().min()) >= 0 and float(yb.float().max()) <= 1


# ----------------------------------------------------------------------------------------------- severity
@pytest.mark.parametrize("name", [n for n in NAMES if n not in NON_MONOTONE])
def test_severity_grows_with_level(name, astronaut):
    """PSNR to the pristine image falls with level (averaged over seeds), as in the official outputs."""
    seeds = {"colorblock": 8, "jitter": 5}.get(name, 2) if name in STOCHASTIC else 1
    psnrs = []
    for level in range(1, 6):
        vals = [
            _psnr(
                distortions.apply(name, astronaut, level, generator=torch.Generator().manual_seed(s)),
                astronaut,
            )
            for s in range(seeds)
        ]
        psnrs.append(sum(min(v, 99.0) for v in vals) / seeds)
    assert all(b < a for a, b in zip(psnrs, psnrs[1:])), psnrs


def test_identity_levels(astronaut):
    """gaublur, motionblur and meanshift are exactly the identity at level 1 (official quirk, kept)."""
    for name in ("gaublur", "motionblur", "meanshift"):
        assert torch.equal(distortions.apply(name, astronaut, 1, torch.Generator().manual_seed(0)), astronaut)
    assert not torch.equal(distortions.apply("lincontrchange", astronaut, 1), astronaut)  # mild S-curve


def test_non_monotone_level_tables_are_kept(astronaut):
    lifted = distortions.apply("meanshift", astronaut, 2)
    lowered = distortions.apply("meanshift", astronaut, 3)
    assert float(lifted.mean()) > float(astronaut.mean()) > float(lowered.mean())


def test_colorshift_touches_green_only(astronaut):
    y = distortions.apply("colorshift", astronaut, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y[:, 0], astronaut[:, 0]) and torch.equal(y[:, 2], astronaut[:, 2])
    assert not torch.equal(y[:, 1], astronaut[:, 1])


def test_quantization_distinct_values(astronaut):
    for level, buckets in zip(range(1, 6), (20, 16, 13, 10, 7)):
        y = distortions.apply("quantization", astronaut, level)
        assert 2 <= torch.unique(y).numel() <= buckets + 1


def test_colorsat1_zero_is_grayscale(astronaut):
    y = distortions.apply("colorsat1", astronaut, 4)  # factor 0
    assert float((y - y.mean(dim=1, keepdim=True)).abs().max()) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generator_on_other_device_is_accepted():
    """Draws happen on the generator's device and land on the images' device: a CPU generator on CUDA images
    gives the CPU result (same noise), a CUDA generator on CPU images gives the CUDA result."""
    x = _images(b=2)
    on_cpu = distortions.apply("whitenoise", x, 3, generator=torch.Generator().manual_seed(0))
    mixed = distortions.apply("whitenoise", x.cuda(), 3, generator=torch.Generator().manual_seed(0))
    assert mixed.device.type == "cuda"
    torch.testing.assert_close(mixed.cpu(), on_cpu, atol=1e-6, rtol=0)
    on_cuda = distortions.apply(
        "whitenoise", x.cuda(), 3, generator=torch.Generator(device="cuda").manual_seed(0)
    )
    mixed = distortions.apply("whitenoise", x, 3, generator=torch.Generator(device="cuda").manual_seed(0))
    assert mixed.device.type == "cpu"
    torch.testing.assert_close(mixed, on_cuda.cpu(), atol=1e-6, rtol=0)
    assert not torch.allclose(on_cuda.cpu(), on_cpu)  # the two devices' streams differ: the device mattered
