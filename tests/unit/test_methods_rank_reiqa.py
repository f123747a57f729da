"""RankIQA / MLF / Re-IQA building blocks: batches, losses wired to the model, stage taps, overlap geometry, EMA,
queue, content encoder, sample formats."""

from __future__ import annotations

import pytest
import torch

from iqa_bench.data.pretrain import SAMPLE_FORMATS, reiqa_region_size
from iqa_bench.errors import ConfigError
from iqa_bench.methods import METHODS
from iqa_bench.methods.mlf import MLF
from iqa_bench.methods.rankiqa import RankIQA
from iqa_bench.methods.reiqa import ReIQA, cut_patches, overlap_offsets, patch_size_of_region
from iqa_bench.models.backbones import Backbone
from iqa_bench.utils.instantiate import instantiate

pytestmark = pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")

OPT = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}
BACKBONE = {"name": "tiny", "widths": [8, 16, 32, 64]}


class StandInLadder:
    """Minimal ladder with the RankIQALadder interface: level k = image darkened by k/(L+1)."""

    def __init__(self, num_levels: int = 3) -> None:
        self.num_levels = num_levels
        self.types = ["dark"]

    def __call__(self, images, generator=None):
        k = torch.arange(self.num_levels + 1, dtype=images.dtype) / (self.num_levels + 1)
        views = images[:, None] * (1 - k)[None, :, None, None, None]
        return views, torch.zeros(images.shape[0], dtype=torch.long)


def make_rank(cls=RankIQA, **kw):
    m = cls(
        BACKBONE, {"_target_": "iqa_bench.distortions.RankIQALadder", "setting": "live"}, OPT, None, 0, **kw
    )
    m.sampler = StandInLadder()  # fast and deterministic
    return m


def test_registry():
    assert set(METHODS) >= {"arniqa", "rankiqa", "mlf", "reiqa"}
    assert METHODS["rankiqa"].sample_format == "ladder" and METHODS["reiqa"].sample_format == "reiqa_overlap"


@pytest.mark.parametrize("cls", [RankIQA, MLF])
def test_rank_methods_train_step_orders_ladders(cls):
    torch.manual_seed(0)
    m = make_rank(cls, margin=1.0)
    batch = {"image": (torch.rand(4, 3, 32, 32) * 255).to(torch.uint8)}
    views = m.prepare_batch(batch, torch.Generator().manual_seed(0))
    assert views["views"].shape == (4, 4, 3, 32, 32)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = m.training_step(views, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    with torch.no_grad():
        m.eval()
        s = m.score(views["views"].flatten(0, 1)).view(4, 4)
    assert (s[:, :-1] > s[:, 1:]).float().mean() > 0.7  # pristine scores higher than its distorted versions
    f = m.features(torch.rand(2, 3, 32, 32))
    torch.testing.assert_close(f.norm(dim=1), torch.ones(2))


def test_independent_level_crops():
    from iqa_bench.methods.rankiqa import independent_crops

    g = torch.Generator().manual_seed(0)
    views = torch.rand(2, 4, 3, 20, 20, generator=g)
    out = independent_crops(views, 12, torch.Generator().manual_seed(1))
    assert out.shape == (2, 4, 3, 12, 12)
    offsets = set()
    for i in range(2):
        for k in range(4):
            hits = [
                (t, lft)
                for t in range(9)
                for lft in range(9)
                if torch.equal(out[i, k], views[i, k, :, t : t + 12, lft : lft + 12])
            ]
            assert hits
            offsets.add(hits[0])
    assert len(offsets) > 1  # independent positions
    m = make_rank(level_crop=16)
    batch = m.prepare_batch({"image": (torch.rand(2, 3, 24, 24) * 255).to(torch.uint8)}, g)
    assert batch["views"].shape == (2, 4, 3, 16, 16)
    with pytest.raises(ConfigError, match="level_crop"):
        independent_crops(views, 32, g)


def test_rank_head_gets_lr_multiplier():
    m = make_rank(head_lr_mult=10.0)
    opt = m.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([1e-3, 1e-2])
    n_head = sum(p.numel() for p in m.head.parameters())
    assert sum(p.numel() for g in opt.param_groups if g["lr"] > 5e-3 for p in g["params"]) == n_head


def test_rankiqa_needs_a_ladder():
    with pytest.raises(ConfigError, match="ladder"):
        RankIQA(BACKBONE, {"_target_": "iqa_bench.distortions.ArniqaSampler"}, OPT)


def test_mlf_stage_switch_and_taps():
    full = make_rank(MLF, stages=[-3, -2, -1], proj_dim=16, head_hidden_dim=8)
    last = make_rank(MLF, stages=[-1], proj_dim=16, head_hidden_dim=8)
    assert len(full.head.projections) == 3 and len(last.head.projections) == 1
    assert full.stages == [1, 2, 3]
    x = torch.rand(3, 3, 32, 32)
    assert full.score(x).shape == (3,)
    # gradients reach every tapped stage
    full.score(x).sum().backward()
    for i in (1, 2, 3):
        assert full.backbone.body.stages[i][0][0].weight.grad.abs().sum() > 0
    std = make_rank(MLF, stages=[-2, -1], proj_dim=4, level_pool="avg_std")
    assert std.head.projections[0][0].in_features == 2 * 32 and std.score(x).shape == (3,)
    with pytest.raises(ConfigError, match="level_pool"):
        make_rank(MLF, level_pool="max")
    taps = make_rank(MLF, stages=[0, 3], eval_features="taps")
    assert taps.feature_dim == 8 + 64 and taps.features(x).shape == (3, 72)
    assert full.feature_dim == full.backbone.feature_dim
    assert full.unreached == []
    shallow = make_rank(MLF, stages=[0, 1])  # deeper stages cannot learn: frozen (DDP-safe)
    assert shallow.unreached and all(
        n.startswith("body.stages.2") or n.startswith("body.stages.3") for n in shallow.unreached
    )
    assert not shallow.backbone.body.stages[3][0][0].weight.requires_grad
    with pytest.raises(ConfigError, match="method.stages"):
        make_rank(MLF, stages=[7])
    with pytest.raises(ConfigError, match="method.stages"):
        make_rank(MLF, stages=[1, -3])  # the same level twice


def test_backbone_level_taps_timm_and_tiny_unchanged_forward():
    tiny = Backbone("tiny")
    x = torch.rand(2, 3, 32, 32)
    maps = tiny.forward_levels(x, [-1])
    torch.testing.assert_close(
        maps[0].mean(dim=(2, 3)), tiny.body.forward_stages(tiny._prepare(x))[-1].mean((2, 3))
    )
    r18 = Backbone("resnet18").eval()
    maps = r18.forward_levels(x, [-3, -2, -1])
    assert [m.shape[1] for m in maps] == r18.level_channels([-3, -2, -1]) == [128, 256, 512]
    hooks = r18._forward_levels_hooks(r18._prepare(x), r18.resolve_levels([-3, -1]))
    torch.testing.assert_close(hooks[0], maps[0])
    torch.testing.assert_close(hooks[1], maps[2])
    torch.testing.assert_close(r18(x), maps[2].mean(dim=(2, 3)))


# -- Re-IQA ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("patch", [16, 64, 160])
def test_overlap_geometry(patch):
    g = torch.Generator().manual_seed(patch)
    yx = overlap_offsets(5000, patch, g, torch.device("cpu"))
    y, x = yx[:, 0].double(), yx[:, 1].double()
    overlap = (patch - y) * (patch - x) / patch**2
    r = reiqa_region_size(patch)
    assert bool((yx >= 0).all()) and bool((yx.max(dim=1).values + patch <= r).all())
    slack = 2 * patch / patch**2 + 1e-9  # integer flooring of y and x
    assert overlap.min() >= 0.10 - 1e-9 and overlap.max() <= 0.30 + slack
    if patch >= 64:
        assert 0.13 < overlap.mean() < 0.18  # official: mean 0.152
    assert patch_size_of_region(r) == patch


def test_cut_patches_equals_slicing():
    g = torch.Generator().manual_seed(0)
    regions = torch.rand(4, 3, 20, 20, generator=g)
    yx = torch.tensor([[0, 0], [3, 5], [9, 1], [10, 10]])
    out = cut_patches(regions, yx, 10)
    for i, (y, x) in enumerate(yx.tolist()):
        torch.testing.assert_close(out[i], regions[i, :, y : y + 10, x : x + 10])


def make_reiqa(**kw):
    args = dict(queue_size=50, n_aug=2, projector_hidden_dim=16, projector_out_dim=8, momentum=0.9)
    args.update(kw)
    dist = {"_target_": "iqa_bench.distortions.ArniqaSampler", "max_distortions": 1, "pristine_prob": 0.0}
    dist["names"] = ["brighten", "darken"]
    return ReIQA(BACKBONE, dist, OPT, None, 0, **args)


def reiqa_batch(n=3, patch=24):
    ds = SAMPLE_FORMATS["reiqa_overlap"]
    r = reiqa_region_size(patch)
    g = torch.Generator().manual_seed(1)
    full = (torch.rand(n, 3, r, r, generator=g) * 255).to(torch.uint8)
    half = (torch.rand(n, 3, r, r, generator=g) * 255).to(torch.uint8)
    assert ds.__name__ == "ReiqaOverlap"
    return {"full": full, "half": half}


def test_reiqa_batch_shares_distorted_pixels_in_the_overlap():
    m = make_reiqa(random_swap=False)
    out = m.prepare_batch(reiqa_batch(), torch.Generator().manual_seed(0))
    n, v, p = 3, 3, 24
    assert out["query"].shape == out["key"].shape == (2 * n * v, 3, p, p)
    for i, (y, x) in enumerate(out["offsets"].tolist()):
        torch.testing.assert_close(out["query"][i, :, y:, x:], out["key"][i, :, : p - y, : p - x])
    types = out["plan"].type_ids.view(2, n, v, -1)
    assert bool((types[:, :, 0] == -1).all())  # version 0 is pristine
    assert bool((types[:, :, 1:, 0] >= 0).all())
    torch.testing.assert_close(types[0], types[1])  # same distortion at both scales
    # with random_swap some instances exchange the roles
    m2 = make_reiqa(random_swap=True)
    out2 = m2.prepare_batch(reiqa_batch(), torch.Generator().manual_seed(0))
    assert out2["query"].shape == (18, 3, 24, 24)


def test_reiqa_with_its_chunk_sampler():
    dist = {"_target_": "iqa_bench.distortions.ReIQASampler", "n_aug": 3}
    dist["names"] = ["immeanshift", "imdarken", "imbrighten", "imnoisegauss"]
    m = ReIQA(BACKBONE, dist, OPT, None, 0, queue_size=50, n_aug=2, random_swap=False)
    assert m.chunk_sampler and m.n_aug == 2
    out = m.prepare_batch(reiqa_batch(), torch.Generator().manual_seed(0))
    n, v, p = 3, 3, 24
    assert out["query"].shape == (2 * n * v, 3, p, p)
    for i, (y, x) in enumerate(out["offsets"].tolist()):
        torch.testing.assert_close(out["query"][i, :, y:, x:], out["key"][i, :, : p - y, : p - x])
    types = out["plan"].type_ids.view(2, n, 2)
    torch.testing.assert_close(types[0], types[1])  # same distortions at both scales
    assert bool((types[0, :, 0] != types[0, :, 1]).all())  # distinct types within an image
    assert ReIQA(BACKBONE, dist, OPT, None, 0, queue_size=50).n_aug == 3  # None = the sampler's n_aug
    with pytest.raises(ConfigError, match="n_aug"):
        ReIQA(BACKBONE, dist, OPT, None, 0, n_aug=5)
    with pytest.raises(ConfigError, match="n_aug"):
        ReIQA(BACKBONE, {"_target_": "iqa_bench.distortions.ArniqaSampler"}, OPT, None, 0)


def test_reiqa_step_ema_queue_and_checkpoint_state():
    torch.manual_seed(0)
    m = make_reiqa()
    batch = m.prepare_batch(reiqa_batch(), torch.Generator().manual_seed(0))
    key_before = [p.clone() for p in m.key_backbone.parameters()]
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    loss = m.training_step(batch, 0)
    assert torch.isfinite(loss)
    assert int(m.queue.ptr) == 18  # 2 scales x 3 images x 3 versions
    loss.backward()
    assert all(p.grad is None for p in m.key_backbone.parameters())
    opt.step()
    m.momentum_update()
    for b, p, o in zip(key_before, m.key_backbone.parameters(), m.backbone.parameters()):
        torch.testing.assert_close(p, 0.9 * b + 0.1 * o.detach())
    state = m.state_dict()
    assert (
        "queue.queue" in state and "queue.ptr" in state and any(k.startswith("key_backbone.") for k in state)
    )
    loss2 = m.training_step(batch, 1)  # 36 keys written into a queue of 50: wrapped around
    assert torch.isfinite(loss2) and int(m.queue.ptr) == 36 and m.feature_dim == m.backbone.feature_dim


def test_reiqa_intra_image_negatives():
    m = make_reiqa(intra_image_negatives=True)  # V = 3 versions per (scale, image)
    k = torch.arange(18, dtype=torch.float32)[:, None].repeat(1, 8)
    extra = m.intra_negatives(k)
    assert extra.shape == (18, 2, 8)
    assert extra[0, :, 0].tolist() == [1.0, 2.0] and extra[4, :, 0].tolist() == [3.0, 5.0]
    batch = m.prepare_batch(reiqa_batch(), torch.Generator().manual_seed(0))
    assert torch.isfinite(m.training_step(batch, 0))
    single = make_reiqa(n_aug=0, intra_image_negatives=True)
    assert single.intra_negatives(k) is None
    assert single.prepare_batch(reiqa_batch(), torch.Generator().manual_seed(0))["query"].shape == (
        6,
        3,
        24,
        24,
    )


def test_reiqa_content_encoder_is_frozen_and_concatenated(tmp_path):
    content = Backbone("tiny", widths=[4, 8, 8, 16])
    path = tmp_path / "content.pt"
    torch.save(content.body.state_dict(), path)
    m = make_reiqa(content_encoder={"name": "tiny", "widths": [4, 8, 8, 16], "weights": str(path)})
    assert m.feature_dim == m.backbone.feature_dim + content.feature_dim
    m.train()
    assert not m.content.training and m.backbone.training
    x = torch.rand(2, 3, 32, 32)
    f = m.features(x)
    assert f.shape == (2, m.feature_dim)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(2))
    opt = m.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in trained for p in m.content.parameters())
    assert not any(id(p) in trained for p in m.key_backbone.parameters())


def test_new_sample_formats(tmp_path):
    from PIL import Image

    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.fromarray((torch.rand(40, 50, 3) * 255).to(torch.uint8).numpy()).save(p)
        paths.append(p)
    lad = SAMPLE_FORMATS["ladder"](paths, 32)[0]
    assert lad["image"].shape == (3, 32, 32) and lad["image"].dtype == torch.uint8
    s = SAMPLE_FORMATS["reiqa_overlap"](paths, 20)[1]
    r = reiqa_region_size(20)
    assert s["full"].shape == s["half"].shape == (3, r, r) and s["full"].dtype == torch.uint8
    arn = SAMPLE_FORMATS["arniqa_pairs"](paths, 16)[0]  # unchanged
    assert arn["a"].shape == (2, 3, 16, 16)


@pytest.mark.parametrize("method", ["rankiqa", "mlf", "reiqa"])
def test_method_configs_instantiate(compose_cfg, method):
    cfg = compose_cfg([f"method={method}"])
    m = instantiate(cfg.method)
    assert m.sample_format in SAMPLE_FORMATS
    if method in ("rankiqa", "mlf"):
        assert cfg.distortion._target_.endswith("RankIQALadder")
    else:
        assert cfg.distortion._target_.endswith("ReIQASampler")
