"""ARNIQA batches: one distortion plan per sample, applied to all four of its views, fresh noise per view."""

from __future__ import annotations

import torch

from iqa_bench import distortions
from iqa_bench.utils.instantiate import instantiate


def _method(compose_cfg, names):
    cfg = compose_cfg(
        [
            "experiment=smoke",
            "distortion.max_distortions=1",
            "distortion.pristine_prob=0.0",
            f"distortion.names=[{','.join(names)}]",
        ]
    )
    return instantiate(cfg.method)


def _batch(n=5, c=32):
    g = torch.Generator().manual_seed(1)
    return {
        "a": torch.randint(0, 256, (n, 2, 3, c, c), generator=g, dtype=torch.uint8),
        "b": torch.randint(0, 256, (n, 2, 3, c, c), generator=g, dtype=torch.uint8),
        "index": torch.zeros(n, 2, dtype=torch.long),
    }


def test_every_view_gets_its_samples_plan(compose_cfg):
    method = _method(compose_cfg, ["gaublur", "jpeg"])  # deterministic ops: output = op(view) exactly
    batch = _batch()
    out = method.prepare_batch(batch, torch.Generator().manual_seed(0))
    plan = out["plan"]
    for i in range(plan.batch_size):
        ((name, level),) = plan.describe(i)
        for key, src in (
            ("a_full", batch["a"][:, 0]),
            ("a_half", batch["a"][:, 1]),
            ("b_full", batch["b"][:, 0]),
            ("b_half", batch["b"][:, 1]),
        ):
            expected = distortions.apply(name, src[i : i + 1].float() / 255, level)
            torch.testing.assert_close(out[key][i : i + 1], expected, atol=1e-5, rtol=0)


def test_noise_is_fresh_per_view_and_seeded(compose_cfg):
    method = _method(compose_cfg, ["whitenoise"])
    batch = _batch()
    batch["b"] = batch["a"].clone()  # identical pixels in A and B: only the noise can differ
    out = method.prepare_batch(batch, torch.Generator().manual_seed(0))
    assert not torch.equal(out["a_full"], out["b_full"])
    again = method.prepare_batch(batch, torch.Generator().manual_seed(0))
    assert all(torch.equal(out[k], again[k]) for k in ("a_full", "a_half", "b_full", "b_half"))


def test_training_step_pairs_same_scale_views_at_the_configured_temperature(compose_cfg):
    """The step's loss is NT-Xent over (A_full <-> B_full, A_half <-> B_half) with the config's temperature:
    a step calling the loss at its default temperature, or pairing A_full with B_half, gives another number."""
    from iqa_bench.losses.nt_xent import nt_xent

    cfg = compose_cfg(["experiment=smoke", "method.temperature=0.37"])
    torch.manual_seed(0)
    method = instantiate(cfg.method).eval()  # eval: BatchNorm uses running stats, so embeddings are per-image
    assert method.temperature == 0.37
    logged = {}
    method.log = lambda name, value, **kw: logged.__setitem__(name, value)
    g = torch.Generator().manual_seed(3)
    # same-scale views of A and B look alike (one degradation), full and half scale differ a lot
    full, half = torch.rand(2, 4, 3, 32, 32, generator=g)
    half = half.clamp(0.3, 0.7) ** 2
    noisy = lambda x: (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)  # noqa: E731
    views = {"a_full": noisy(full), "b_full": noisy(full), "a_half": noisy(half), "b_half": noisy(half)}
    with torch.no_grad():
        loss = method.training_step(views, 0)
        e = {k: method.embed(v) for k, v in views.items()}
    cat = torch.cat
    expected = nt_xent(cat([e["a_full"], e["a_half"]]), cat([e["b_full"], e["b_half"]]), 0.37)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert logged["train/loss"] is loss
    wrong = {
        "default temperature": nt_xent(cat([e["a_full"], e["a_half"]]), cat([e["b_full"], e["b_half"]])),
        "full with half": nt_xent(cat([e["a_full"], e["a_half"]]), cat([e["b_half"], e["b_full"]]), 0.37),
        "A with its own half": nt_xent(
            cat([e["a_full"], e["b_full"]]), cat([e["a_half"], e["b_half"]]), 0.37
        ),
    }
    for name, value in wrong.items():  # the check above can tell each wiring bug apart
        assert abs(value.item() - loss.item()) > 1e-3 * loss.item(), name
