"""ARNIQA composition sampler statistics and per-sample plan application."""

from __future__ import annotations

import pytest
import torch

from iqa_bench import distortions
from iqa_bench.distortions import ArniqaSampler, DistortionPlan

NAMES = distortions.names()
GROUP_OF = {n: g for g, members in distortions.groups().items() for n in members}
LEVEL_P = [0.292907, 0.270387, 0.212694, 0.142573, 0.081439]
N = 20_000


@pytest.fixture  # per test (a few ms): mutation testing maps a module-scoped fixture's work to one test only
def plan() -> DistortionPlan:
    return ArniqaSampler().sample(N, generator=torch.Generator().manual_seed(2024))


def test_plan_layout(plan):
    assert plan.batch_size == N and plan.num_steps == 4
    assert plan.type_ids.dtype == torch.long and plan.levels.dtype == torch.long
    real = plan.type_ids >= 0
    assert bool(((plan.levels >= 1) & (plan.levels <= 5))[real].all())
    assert bool((plan.levels[~real] == 0).all())
    # steps are packed at the front: once a step is empty, all later ones are
    assert bool((real[:, 1:] <= real[:, :-1]).all())


def test_level_frequencies(plan):
    lv = plan.levels[plan.type_ids >= 0]
    freq = torch.bincount(lv, minlength=6)[1:].double() / lv.numel()
    assert freq.tolist() == pytest.approx(LEVEL_P, abs=0.01)


def test_pristine_fraction_and_uniform_count(plan):
    n = plan.num_distortions()
    assert float((n == 0).double().mean()) == pytest.approx(0.05, abs=0.007)
    counts = torch.bincount(n[n > 0], minlength=5)[1:].double() / int((n > 0).sum())
    assert counts.tolist() == pytest.approx([0.25] * 4, abs=0.015)


def test_no_repeated_group_within_a_sample(plan):
    group_index = {g: i for i, g in enumerate(distortions.groups())}
    lut = torch.tensor([group_index[GROUP_OF[n]] for n in NAMES] + [-1])  # index -1 -> last entry (-1)
    g = lut[plan.type_ids]
    for a in range(4):
        for b in range(a + 1, 4):
            clash = (g[:, a] == g[:, b]) & (g[:, a] >= 0)
            assert not bool(clash.any())


def test_groups_and_members_uniform(plan):
    first = plan.type_ids[:, 0][plan.type_ids[:, 0] >= 0]
    group_index = {g: i for i, g in enumerate(distortions.groups())}
    lut = torch.tensor([group_index[GROUP_OF[n]] for n in NAMES])
    freq = torch.bincount(lut[first], minlength=7).double() / first.numel()
    assert freq.tolist() == pytest.approx([1 / 7] * 7, abs=0.012)  # random order: any group can come first
    t = plan.type_ids[plan.type_ids >= 0]
    for members in distortions.groups().values():
        ids = torch.tensor([NAMES.index(m) for m in members])
        c = torch.stack([(t == i).sum() for i in ids]).double()
        assert (c / c.sum()).tolist() == pytest.approx([1 / len(members)] * len(members), abs=0.02)


def test_sampler_is_seeded_and_device_aware():
    s = ArniqaSampler()
    a = s.sample(64, generator=torch.Generator().manual_seed(3))
    b = s.sample(64, generator=torch.Generator().manual_seed(3))
    c = s.sample(64, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.type_ids, b.type_ids) and torch.equal(a.levels, b.levels)
    assert not torch.equal(a.type_ids, c.type_ids)
    assert s.sample(8, device="cpu").type_ids.device.type == "cpu"


def test_sampler_options():
    s = ArniqaSampler(max_distortions=7, num_levels=3, pristine_prob=0.0, names=["gaublur", "jpeg", "darken"])
    assert list(s.groups) == ["blur", "jpeg", "brightness_change"] and s.max_steps == 3
    p = s.sample(2000, generator=torch.Generator().manual_seed(0))
    assert set(torch.unique(p.type_ids).tolist()) <= {
        NAMES.index(n) for n in ("gaublur", "jpeg", "darken")
    } | {-1}
    assert int(p.levels.max()) == 3 and int(p.num_distortions().min()) >= 1
    assert s.level_probabilities.tolist() == pytest.approx([0.3775, 0.3484, 0.2741], abs=1e-3)
    with pytest.raises(ValueError, match="names"):
        ArniqaSampler(names=["nope"])
    with pytest.raises(ValueError, match="max_distortions"):
        ArniqaSampler(max_distortions=0)
    with pytest.raises(ValueError, match="num_levels"):
        ArniqaSampler(num_levels=6)


# ------------------------------------------------------------------------------------------- apply_plan
def _images(b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 5, 5, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(36, 44), mode="bilinear", align_corners=False).clamp(
        0, 1
    )


def test_apply_plan_equals_sequential_apply_for_deterministic_steps():
    seqs = [
        [("gaublur", 3), ("jpeg", 2), ("darken", 5)],
        [],
        [("pixelate", 4)],
        [("jpeg", 5), ("gaublur", 1), ("quantization", 2), ("lincontrchange", 3)],
        [("colordiff", 2), ("highsharpen", 4)],
        [("gaublur", 5), ("colorsat1", 5)],
    ]
    x = _images(len(seqs))
    out = distortions.apply_plan(x, DistortionPlan.from_sequences(seqs))
    for i, seq in enumerate(seqs):
        ref = x[i : i + 1]
        for name, level in seq:
            ref = distortions.apply(name, ref, level)
        torch.testing.assert_close(out[i : i + 1], ref, atol=1e-5, rtol=0)
    assert torch.equal(out[1], x[1])  # an empty sequence is untouched


def test_apply_plan_views_share_types_but_not_noise():
    plan = DistortionPlan.from_sequences([[("whitenoise", 4), ("gaublur", 2)]] * 3)
    x = _images(3)
    g = torch.Generator().manual_seed(0)
    v1 = distortions.apply_plan(x, plan, generator=g)
    v2 = distortions.apply_plan(x, plan, generator=g)
    assert not torch.equal(v1, v2)
    assert float((v1 - x).abs().mean()) == pytest.approx(float((v2 - x).abs().mean()), rel=0.1)
    again = distortions.apply_plan(x, plan, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, v1)


def test_apply_plan_with_sampler_large_batch_and_dtype():
    x = _images(40).to(torch.bfloat16)
    plan = ArniqaSampler().sample(40, generator=torch.Generator().manual_seed(1))
    y = distortions.apply_plan(x, plan, generator=torch.Generator().manual_seed(2))
    assert y.shape == x.shape and y.dtype == torch.bfloat16
    untouched = plan.num_distortions() == 0
    assert torch.equal(y[untouched], x[untouched])


def test_apply_plan_validation():
    x = _images(2)
    with pytest.raises(ValueError, match="batch_size"):
        distortions.apply_plan(x, DistortionPlan.from_sequences([[("gaublur", 1)]]))
    with pytest.raises(ValueError, match="levels"):
        distortions.apply_plan(x, DistortionPlan(torch.tensor([[0], [1]]), torch.tensor([[0], [2]])))
    with pytest.raises(ValueError, match="type_ids"):
        distortions.apply_plan(x, DistortionPlan(torch.tensor([[24], [1]]), torch.tensor([[1], [2]])))
    with pytest.raises(ValueError, match="images"):
        distortions.apply_plan(x[:, :1], DistortionPlan.from_sequences([[], []]))
    with pytest.raises(ValueError, match="type_ids and levels"):
        DistortionPlan(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))


def test_plan_helpers():
    p = DistortionPlan.from_sequences([[("jpeg", 2), ("darken", 1)], []])
    assert p.describe(0) == [("jpeg", 2), ("darken", 1)] and p.describe(1) == []
    assert p.num_distortions().tolist() == [2, 0]
    assert p.to("cpu") is p


def test_default_level_probabilities_are_the_documented_ones():
    """ARNIQA's level distribution: L1..L5 = 0.2929, 0.2704, 0.2127, 0.1426, 0.0814 (σ = 2.5, 5 levels)."""
    from iqa_bench.distortions.sampling import arniqa_level_probabilities

    p = arniqa_level_probabilities()
    assert p.dtype == torch.float64
    assert p.tolist() == pytest.approx([0.2929, 0.2704, 0.2127, 0.1426, 0.0814], abs=1e-4)


def test_describe_names_type_id_zero():
    """Type id 0 (gaublur) is a real step; only -1 marks an empty one."""
    plan = DistortionPlan(torch.tensor([[0, 7, -1]]), torch.tensor([[2, 5, 0]]))
    assert plan.describe(0) == [("gaublur", 2), ("jpeg2000", 5)]


def test_sampler_accepts_its_smallest_settings():
    """Boundaries accepted: one distortion, one level, no pristine sample, a narrow level sigma; and a batch
    of 1 with 1 step (`b * s > 0`, not `> 1`) draws a real level."""
    s = ArniqaSampler(max_distortions=1, num_levels=1, pristine_prob=0.0, level_sigma=0.5)
    assert s.max_steps == 1 and s.level_probabilities.tolist() == [1.0]
    p = s.sample(200, generator=torch.Generator().manual_seed(0))
    assert p.num_steps == 1 and p.num_distortions().tolist() == [1] * 200
    assert p.levels.unique().tolist() == [1]
    (one,) = s.sample(1, generator=torch.Generator().manual_seed(0)).levels.tolist()
    assert one == [1]
    always = ArniqaSampler(pristine_prob=1.0).sample(50, generator=torch.Generator().manual_seed(0))
    assert always.num_distortions().tolist() == [0] * 50


def test_sampler_passes_level_sigma_on():
    from iqa_bench.distortions.sampling import arniqa_level_probabilities

    s = ArniqaSampler(level_sigma=1.0)
    assert torch.equal(s.level_probabilities, arniqa_level_probabilities(5, 1.0))
    assert s.level_probabilities[0] / s.level_probabilities[1] == pytest.approx(2.718281828**0.5)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"max_distortions": 0}, r"max_distortions must be >= 1, got 0"),
        ({"num_levels": 0}, r"num_levels must be in 1\.\.5, got 0"),
        ({"num_levels": 6}, r"num_levels must be in 1\.\.5, got 6"),
        ({"pristine_prob": 1.5}, r"pristine_prob must be in \[0,1\], got 1\.5"),
        ({"pristine_prob": -0.1}, r"pristine_prob must be in \[0,1\], got -0\.1"),
        ({"level_sigma": 0.0}, r"level_sigma must be > 0, got 0\.0"),
        ({"names": ["jpeg", "nope"]}, r"names contains unknown distortions \['nope'\]"),
        ({"names": []}, r"^names must contain at least one distortion$"),
    ],
)
def test_sampler_refuses_bad_settings_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArniqaSampler(**kwargs)


def test_sampler_empty_batch_and_negative_batch():
    p = ArniqaSampler().sample(0, generator=torch.Generator().manual_seed(0))
    assert tuple(p.type_ids.shape) == tuple(p.levels.shape) == (0, 4)
    with pytest.raises(ValueError, match=r"batch_size must be >= 0, got -1"):
        ArniqaSampler().sample(-1)


def test_sampler_repr_lists_settings_and_groups():
    s = ArniqaSampler(max_distortions=2, names=["jpeg", "gaublur"])
    assert repr(s) == (
        "ArniqaSampler(max_distortions=2, num_levels=5, pristine_prob=0.05, level_sigma=2.5, "
        "groups=['blur', 'jpeg'])"
    )


def test_plan_and_sample_move_to_another_device():
    """`to` and `sample(device=...)` move both tensors (the meta device stands in for an accelerator)."""
    p = DistortionPlan.from_sequences([[("jpeg", 2)], []]).to("meta")
    assert p.type_ids.device.type == p.levels.device.type == "meta"
    assert tuple(p.levels.shape) == (2, 1) and p.levels.dtype == torch.long
    s = ArniqaSampler().sample(3, generator=torch.Generator().manual_seed(0), device="meta")
    assert s.type_ids.device.type == s.levels.device.type == "meta"


def test_plan_from_no_sequences_is_empty():
    p = DistortionPlan.from_sequences([])
    assert p.batch_size == 0 and p.num_steps == 0
