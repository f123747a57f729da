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
