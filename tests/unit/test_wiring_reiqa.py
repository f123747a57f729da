"""What a Re-IQA step computes: temperature, intra-image negatives, queue and EMA wiring, ShuffleBN order, chunk
plans and patch offsets, constructor checks (small CPU models, no trainer)."""

from __future__ import annotations

import pytest
import torch
from _wiring import ARNIQA_DIST, BACKBONE, LADDER, OPT, _capture_logs, _FakeTrainer
from omegaconf import OmegaConf

from iqa_bench.errors import ConfigError

pytestmark = pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")


# -- Re-IQA ---------------------------------------------------------------------------------------------------
def _reiqa(**kw):
    from iqa_bench.methods.reiqa import ReIQA

    args = {"queue_size": 40, "n_aug": 2, "projector_hidden_dim": 16, "projector_out_dim": 8}
    args.update(kw)
    return ReIQA(BACKBONE, ARNIQA_DIST, OPT, None, 3, **args)


def _regions(n=2, patch=16, seed=1):
    from iqa_bench.data.pretrain import reiqa_region_size

    g = torch.Generator().manual_seed(seed)
    r = reiqa_region_size(patch)
    return {k: torch.randint(0, 256, (n, 3, r, r), generator=g, dtype=torch.uint8) for k in ("full", "half")}


def test_patch_size_of_region_inverts_the_region_size():
    from iqa_bench.data.pretrain import reiqa_region_size
    from iqa_bench.methods.reiqa import patch_size_of_region

    for p in range(1, 300):
        assert patch_size_of_region(reiqa_region_size(p)) == p
    with pytest.raises(ValueError, match=r"^5 is not a Re-IQA region size$"):
        patch_size_of_region(5)


def test_overlap_offsets_transpose():
    from iqa_bench.methods.reiqa import overlap_offsets

    cpu = torch.device("cpu")
    plain = overlap_offsets(300, 40, torch.Generator().manual_seed(0), cpu)
    assert plain.dtype == torch.long and plain.shape == (300, 2)
    assert bool((plain[:, 0] >= 28).all()) and bool((plain[:, 0] < 36).all())  # y in [0.7P, 0.9P)
    assert int(plain.max()) <= 36
    flipped = overlap_offsets(300, 40, torch.Generator().manual_seed(0), cpu, transpose_prob=1.0)
    assert torch.equal(flipped, plain.flip(1))
    half = overlap_offsets(300, 40, torch.Generator().manual_seed(0), cpu, transpose_prob=0.5)
    swapped = (half != plain).any(dim=1)
    assert torch.equal(half[swapped], plain[swapped].flip(1)) and torch.equal(half[~swapped], plain[~swapped])
    assert 0.35 < swapped.float().mean() < 0.65
    # x starts at 0 (the lower bound is clamped at 0, not 1), also where the upper bound is far from 0
    assert bool(((plain[:, 1] == 0) & (plain[:, 0] <= 32)).any())
    torch.manual_seed(123)  # every draw comes from the given generator, none from the global one
    again = overlap_offsets(300, 40, torch.Generator().manual_seed(0), cpu, transpose_prob=0.5)
    assert torch.equal(again, half)


def test_reiqa_defaults_and_hyperparameters():
    from iqa_bench.losses.infonce_queue import KeyQueue
    from iqa_bench.methods.reiqa import ReIQA

    m = ReIQA(BACKBONE, ARNIQA_DIST, OPT, n_aug=1)
    assert (m.temperature, m.momentum, m.n_aug, m.include_pristine, m.random_swap) == (
        0.2,
        0.999,
        1,
        True,
        True,
    )
    assert (m.offset_transpose_prob, m.shuffle_bn_groups, m.intra_image_negatives) == (0.0, 1, False)
    assert m.queue.queue.shape == (65536, 128) and m.content is None and not m.chunk_sampler
    assert m.projector[0].out_features == 64 and m.projector[2].out_features == 128  # hidden = backbone dim
    hp = dict(m.hparams)
    assert hp["temperature"] == 0.2 and hp["queue_size"] == 65536 and hp["momentum"] == 0.999
    assert hp["n_aug"] == 1 and hp["include_pristine"] is True and hp["random_swap"] is True
    assert (
        hp["offset_transpose_prob"] == 0.0 and hp["shuffle_bn_groups"] == 1 and hp["content_encoder"] is None
    )
    assert hp["intra_image_negatives"] is False and hp["projector_hidden_dim"] is None
    assert hp["projector_out_dim"] == 128 and hp["seed"] == 0 and hp["distortion"] == ARNIQA_DIST
    assert hp["backbone"] == BACKBONE and hp["optimizer"] == OPT and hp["scheduler"] is None
    sched = {"name": "cosine", "total_steps": 3}
    with_sched = ReIQA(BACKBONE, ARNIQA_DIST, OPT, sched, n_aug=1, queue_size=4)
    assert with_sched.scheduler_cfg == sched and with_sched.hparams["scheduler"] == sched
    s = _reiqa(
        temperature=0.3,
        momentum=0.5,
        include_pristine=False,
        random_swap=False,
        shuffle_bn_groups=2,
        offset_transpose_prob=0.25,
        intra_image_negatives=True,
    )
    assert (s.temperature, s.momentum, s.include_pristine, s.random_swap) == (0.3, 0.5, False, False)
    assert (s.shuffle_bn_groups, s.offset_transpose_prob, s.intra_image_negatives) == (2, 0.25, True)
    assert s.hparams["queue_size"] == 40 and s.hparams["projector_hidden_dim"] == 16
    assert torch.equal(s.queue.queue, KeyQueue(40, 8, seed=3).queue)  # seeded by the run seed
    assert not torch.equal(s.queue.queue, KeyQueue(40, 8, seed=0).queue)
    for online, key in s.momentum_pairs:  # the key encoder starts as a frozen copy
        for po, pk in zip(online.parameters(), key.parameters()):
            assert torch.equal(po, pk) and po is not pk and not pk.requires_grad and po.requires_grad
    assert [(a is s.backbone, b is s.key_backbone) for a, b in s.momentum_pairs][0] == (True, True)
    assert s.momentum_pairs[1] == (s.projector, s.key_projector)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"temperature": 0.0}, r"method\.temperature must be > 0, got 0\.0"),
        ({"queue_size": 0}, r"method\.queue_size must be >= 1, got 0"),
        ({"momentum": 1.0}, r"method\.momentum must be in \[0, 1\), got 1\.0"),
        ({"momentum": -0.1}, r"method\.momentum must be in \[0, 1\)"),
        ({"n_aug": -1}, r"method\.n_aug must be null or >= 0 \(>= 1 with include_pristine=false\), got -1"),
        ({"n_aug": 0, "include_pristine": False}, r"method\.n_aug must be null or >= 0"),
        ({"offset_transpose_prob": 1.5}, r"method\.offset_transpose_prob must be in \[0, 1\], got 1\.5"),
        ({"offset_transpose_prob": -0.5}, r"method\.offset_transpose_prob must be in \[0, 1\]"),
        ({"shuffle_bn_groups": 0}, r"method\.shuffle_bn_groups must be >= 1, got 0"),
        ({"n_aug": None}, r"^method\.n_aug must be set when the distortion sampler is not distortion=reiqa$"),
    ],
)
def test_reiqa_checks(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        _reiqa(**kw)


def test_reiqa_check_boundaries_and_samplers():
    from iqa_bench.methods.reiqa import ReIQA

    ok = _reiqa(queue_size=1, momentum=0.0, n_aug=0, offset_transpose_prob=1.0, shuffle_bn_groups=1)
    assert ok.queue.size == 1 and ok.momentum == 0.0 and ok.n_aug == 0
    assert _reiqa(n_aug=1, include_pristine=False).n_aug == 1
    assert _reiqa(offset_transpose_prob=0.0).offset_transpose_prob == 0.0
    with pytest.raises(
        ConfigError,
        match=r"method ReIQA needs distortion=reiqa \(ReIQASampler\) or a plan sampler .*got RankIQALadder",
    ):
        ReIQA(BACKBONE, LADDER, OPT, n_aug=1)
    chunk = {
        "_target_": "iqa_bench.distortions.ReIQASampler",
        "n_aug": 3,
        "names": ["imdarken", "imbrighten", "immeanshift"],
    }
    assert ReIQA(BACKBONE, chunk, OPT, n_aug=3).n_aug == 3
    with pytest.raises(ConfigError, match=r"^method\.n_aug=4 exceeds distortion\.n_aug=3$"):
        ReIQA(BACKBONE, chunk, OPT, n_aug=4)
    msg = (
        "method.content_encoder.weights: set it to the content encoder's weights file (an ImageNet MoCo-v2 "
        "ResNet-50 checkpoint), or drop the content encoder with method.content_encoder=null"
    )
    with pytest.raises(ConfigError) as err:
        _reiqa(content_encoder={"name": "tiny", "weights": "???"})
    assert str(err.value) == msg
    with pytest.raises(ConfigError, match=r"method\.content_encoder\.weights: set it"):
        _reiqa(content_encoder={"name": "tiny", "weights": ""})
    c = _reiqa(content_encoder=OmegaConf.create({"name": "tiny", "widths": [4, 4, 4, 8]}))
    assert (
        c.content is not None
        and not c.content.training
        and c.hparams["content_encoder"]["widths"] == [4, 4, 4, 8]
    )
    assert all(not p.requires_grad for p in c.content.parameters()) and c.feature_dim == 64 + 8


def test_reiqa_chunk_plan_versions():
    from iqa_bench.methods.reiqa import ReIQA

    two_steps = dict(ARNIQA_DIST, max_distortions=2, names=["brighten", "darken", "jpeg"])
    m = ReIQA(BACKBONE, two_steps, OPT, n_aug=3, queue_size=4)
    plan = m.chunk_plan(2, torch.Generator().manual_seed(5), torch.device("cpu"))
    drawn = m.sampler.sample(6, generator=torch.Generator().manual_seed(5), device=torch.device("cpu"))
    types, levels = plan.type_ids.view(2, 4, -1), plan.levels.view(2, 4, -1)
    assert plan.type_ids.dtype == torch.long and types.shape[-1] == drawn.type_ids.shape[-1]
    assert bool((types[:, 0] == -1).all()) and bool((levels[:, 0] == 0).all())  # version 0 pristine
    assert torch.equal(types[:, 1:], drawn.type_ids.view(2, 3, -1))
    assert torch.equal(levels[:, 1:], drawn.levels.view(2, 3, -1))
    assert types.shape[-1] == 2
    np_ = ReIQA(BACKBONE, two_steps, OPT, n_aug=3, include_pristine=False, queue_size=4).chunk_plan(
        2, torch.Generator().manual_seed(5), torch.device("cpu")
    )
    assert torch.equal(np_.type_ids, drawn.type_ids) and torch.equal(np_.levels, drawn.levels)
    only = _reiqa(n_aug=0).chunk_plan(3, torch.Generator(), torch.device("cpu"))
    assert only.type_ids.tolist() == [[-1]] * 3 and only.levels.tolist() == [[0]] * 3
    assert only.type_ids.dtype == torch.long


def test_reiqa_batch_versions_scales_and_swaps():
    from iqa_bench.methods.reiqa import patch_size_of_region

    m = _reiqa(n_aug=1, random_swap=True)
    batch = _regions(n=2, patch=16)
    g = torch.Generator().manual_seed(0)
    out = m.prepare_batch(batch, g)
    n, v, p = 2, 2, 16
    assert patch_size_of_region(batch["full"].shape[-1]) == p
    assert out["query"].shape == out["key"].shape == (2 * n * v, 3, p, p)
    assert out["offsets"].shape == (2 * n * v, 2)
    assert torch.equal(out["offsets"][0::2], out["offsets"][1::2])  # one geometry per (scale, image)
    regions = torch.cat([batch["full"], batch["half"]]).float() / 255
    firsts, swaps = [], []
    for row in range(2 * n * v):
        y, x = out["offsets"][row].tolist()
        src = regions[row // v]
        p1, p2 = src[:, :p, :p], src[:, y : y + p, x : x + p]
        if row % v == 0:  # the pristine version: the region itself
            q, k = out["query"][row], out["key"][row]
            if torch.equal(q, p1):
                assert torch.equal(k, p2)
                firsts.append(row)
            else:
                assert torch.equal(q, p2) and torch.equal(k, p1)
                swaps.append(row)
    assert firsts and swaps  # both roles occur
    fixed = _reiqa(n_aug=1, random_swap=False).prepare_batch(batch, torch.Generator().manual_seed(0))
    for row in range(0, 2 * n * v, v):
        y, x = fixed["offsets"][row].tolist()
        assert torch.equal(fixed["query"][row], regions[row // v][:, :p, :p])
        assert torch.equal(fixed["key"][row], regions[row // v][:, y : y + p, x : x + p])
    assert fixed["query"].is_contiguous()
    t = _reiqa(n_aug=1, random_swap=False, offset_transpose_prob=1.0).prepare_batch(
        batch, torch.Generator().manual_seed(0)
    )
    assert torch.equal(t["offsets"], fixed["offsets"].flip(1))


def test_reiqa_chunk_sampler_without_pristine():
    from iqa_bench.methods.reiqa import ReIQA

    chunk = {
        "_target_": "iqa_bench.distortions.ReIQASampler",
        "n_aug": 3,
        "names": ["imdarken", "imbrighten", "immeanshift"],
    }
    m = ReIQA(BACKBONE, chunk, OPT, n_aug=2, include_pristine=False, random_swap=False, queue_size=8)
    batch = _regions(n=2, patch=16)
    full, half = batch["full"].float() / 255, batch["half"].float() / 255
    regions, plan = m.distorted_chunks(full, half, torch.Generator().manual_seed(0))
    assert regions.shape == (2 * 2 * 2, 3, 31, 31) and plan.type_ids.shape == (4, 2)
    torch.testing.assert_close(plan.type_ids[:2], plan.type_ids[2:])  # the same distortions at both scales
    m.include_pristine = True  # the same draws with the pristine version kept: it is dropped, nothing else
    kept, plan_kept = m.distorted_chunks(full, half, torch.Generator().manual_seed(0))
    assert torch.equal(plan_kept.type_ids, plan.type_ids)
    kept = kept.view(4, 3, 3, 31, 31)
    assert torch.equal(kept[:, 1:].reshape(8, 3, 31, 31), regions)
    assert torch.equal(kept[:, 0], torch.cat([full, half]))


def test_reiqa_key_encoder_shuffle_groups_keep_the_row_order():
    m = _reiqa(shuffle_bn_groups=3).eval()
    x = torch.rand(7, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    want = m.key_projector(m.key_backbone(x))
    torch.manual_seed(0)
    torch.testing.assert_close(m.embed_key(x), want, rtol=1e-5, atol=1e-6)
    m.shuffle_bn_groups = 50  # more groups than rows: one row per group
    torch.testing.assert_close(m.embed_key(x), want, rtol=1e-5, atol=1e-6)
    m.train()  # batch statistics: the groups change the keys
    m.shuffle_bn_groups = 1
    one = m.embed_key(x)
    torch.testing.assert_close(one, m.key_projector(m.key_backbone(x)))
    m.shuffle_bn_groups = 2
    assert not torch.allclose(m.embed_key(x), one, atol=1e-4)
    torch.testing.assert_close(m.embed_query(x), m.projector(m.backbone(x)))


def test_reiqa_step_loss_queue_and_logs():
    from iqa_bench.losses.infonce_queue import infonce_queue

    for intra in (False, True):
        m = _reiqa(temperature=0.35, intra_image_negatives=intra).eval()
        logged = _capture_logs(m)
        batch = m.prepare_batch(_regions(n=2, patch=16), torch.Generator().manual_seed(0))
        queue = m.queue.queue.clone()
        loss = m.training_step(batch, 0)
        with torch.no_grad():
            q, k = m.embed_query(batch["query"]), m.embed_key(batch["key"])
        extra = m.intra_negatives(k) if intra else None
        want, acc = infonce_queue(q, k, queue, 0.35, extra)
        torch.testing.assert_close(loss, want)
        assert abs(infonce_queue(q, k, queue, 0.2, extra)[0].item() - loss.item()) > 1e-4
        if intra:
            assert abs(infonce_queue(q, k, queue, 0.35)[0].item() - loss.item()) > 1e-5
        torch.testing.assert_close(m.queue.queue[:12], torch.nn.functional.normalize(k, dim=1))
        torch.testing.assert_close(m.queue.queue[12:], queue[12:])
        assert int(m.queue.ptr) == 12
        assert logged["train/loss"] == (loss, {"prog_bar": True, "batch_size": 12})
        assert logged["train/acc"][0].item() == acc.item() and logged["train/acc"][1] == {"batch_size": 12}


def test_reiqa_intra_negatives_per_version():
    m = _reiqa(n_aug=2, include_pristine=False)  # V = 2
    k = torch.arange(8, dtype=torch.float32)[:, None].repeat(1, 3)
    assert m.intra_negatives(k)[:, 0, 0].tolist() == [1.0, 0.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0]
    assert _reiqa(n_aug=1, include_pristine=False).intra_negatives(k) is None
    assert _reiqa(n_aug=1).intra_negatives(k).shape == (8, 1, 3)


def test_reiqa_ema_runs_once_per_optimiser_step():
    m = _reiqa(momentum=0.75)
    for p in m.backbone.parameters():
        p.data.add_(1.0)
    key0 = [p.clone() for p in m.key_backbone.parameters()]
    trainer = _FakeTrainer(training=True)
    m._trainer = trainer
    m.on_train_batch_end(None, None, 0)  # step 0: no optimiser step yet
    assert all(torch.equal(a, b) for a, b in zip(key0, m.key_backbone.parameters()))
    trainer.global_step = 1
    m.on_train_batch_end(None, None, 0)
    m.on_train_batch_end(None, None, 1)  # an accumulation micro-batch of the same step: no second update
    for a, b, o in zip(key0, m.key_backbone.parameters(), m.backbone.parameters()):
        torch.testing.assert_close(b, 0.75 * a + 0.25 * o.detach())
    head = [p.clone() for p in m.key_projector.parameters()]
    m.projector[0].weight.data.add_(2.0)
    trainer.global_step = 2
    m.on_train_batch_end(None, None, 0)
    torch.testing.assert_close(
        m.key_projector[0].weight, 0.75 * head[0] + 0.25 * m.projector[0].weight.detach()
    )


def test_reiqa_features_content_then_quality(tmp_path):
    m = _reiqa(content_encoder={"name": "tiny", "widths": [4, 4, 4, 8]}).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    norm = torch.nn.functional.normalize
    want = norm(torch.cat([norm(m.content(x), dim=1), norm(m.backbone(x), dim=1)], dim=1), dim=1)
    torch.testing.assert_close(m.features(x), want)
    m.train()
    assert m.backbone.training and not m.content.training and m.train(False) is m and not m.backbone.training
    plain = _reiqa().eval()
    torch.testing.assert_close(plain.features(x), norm(plain.backbone(x), dim=1))


def test_reiqa_batches_draw_only_from_the_step_generator():
    from iqa_bench.methods.reiqa import ReIQA

    chunk = {"_target_": "iqa_bench.distortions.ReIQASampler", "n_aug": 2}
    chunk["names"] = ["imdarken", "imbrighten", "imnoisegauss"]
    noisy = dict(ARNIQA_DIST, names=["whitenoise"])
    for m in (
        ReIQA(BACKBONE, noisy, OPT, n_aug=2, queue_size=8, offset_transpose_prob=0.5),
        ReIQA(BACKBONE, chunk, OPT, queue_size=8, offset_transpose_prob=0.5),
        _reiqa(n_aug=0),
    ):
        batch = _regions(n=3, patch=16)
        torch.manual_seed(0)
        first = m.prepare_batch(batch, torch.Generator().manual_seed(4))
        torch.manual_seed(1)
        again = m.prepare_batch(batch, torch.Generator().manual_seed(4))
        for key in ("query", "key", "offsets"):
            assert torch.equal(first[key], again[key]), key
        other = m.prepare_batch(batch, torch.Generator().manual_seed(5))
        assert not torch.equal(first["query"], other["query"])
