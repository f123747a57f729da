"""ARNIQA: SimCLR / NT-Xent on the distortion manifold (Agnolucci et al., WACV 2024).

Batch of N samples -> 4N crops: A (full scale), A (half scale), B (full), B (half), all four under ONE composed
distortion per sample (same types and levels, fresh noise per crop). Positives: A_full[i] <-> B_full[i] and
A_half[i] <-> B_half[i] (same degradation, different content). Hard negatives: A_half[i] for A_full[i] (same
content, different scale) and every other sample's crops.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from iqa_bench import distortions
from iqa_bench.losses.nt_xent import nt_xent
from iqa_bench.methods.base import PretrainMethod, uint8_to_float
from iqa_bench.models.heads import mlp_projector


class ARNIQA(PretrainMethod):
    """ARNIQA pretraining.

    Args (beyond `PretrainMethod`'s):
        projector_hidden_dim: hidden width of the projector (None = backbone feature dim; paper 2048).
        projector_out_dim: output width of the projector (paper 128).
        temperature: NT-Xent temperature (paper 0.1).
    """

    sample_format = "arniqa_pairs"

    def __init__(
        self,
        backbone: dict,
        distortion: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        seed: int = 0,
        projector_hidden_dim: int | None = None,
        projector_out_dim: int = 128,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(backbone, distortion, optimizer, scheduler, seed)
        self.save_hyperparameters(
            {
                "backbone": self.backbone_cfg,
                "distortion": self.distortion_cfg,
                "optimizer": self.optimizer_cfg,
                "scheduler": self.scheduler_cfg,
                "seed": self.seed,
                "projector_hidden_dim": projector_hidden_dim,
                "projector_out_dim": projector_out_dim,
                "temperature": temperature,
            }
        )
        d = self.feature_dim
        self.projector = mlp_projector(d, projector_hidden_dim or d, projector_out_dim)
        self.temperature = float(temperature)

    def prepare_batch(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, Any]:
        """uint8 {"a": (N,2,3,c,c), "b": (N,2,3,c,c)} -> float views in [0,1] under one plan per sample."""
        a, b = uint8_to_float(batch["a"]), uint8_to_float(batch["b"])
        n = a.shape[0]
        plan = self.sampler.sample(n, generator=generator, device=a.device)
        # the 4 views are all c x c: one bank call over the (4N, 3, c, c) stack with the plan tiled 4x, instead of
        # one call per view (4x fewer, 4x larger op batches). Every view still draws its own noise.
        stacked = torch.cat([a[:, 0], a[:, 1], b[:, 0], b[:, 1]])
        tiled = distortions.DistortionPlan(plan.type_ids.repeat(4, 1), plan.levels.repeat(4, 1))
        out = distortions.apply_plan(stacked, tiled, generator=generator).split(n)
        views: dict[str, Any] = dict(zip(("a_full", "a_half", "b_full", "b_half"), out))
        views["plan"] = plan
        return views

    def sample_grid(self, batch: dict[str, Any]) -> tuple[torch.Tensor, list[str]]:
        """The full-scale A views with their composed distortions as captions."""
        plan = batch["plan"]
        captions = [
            " + ".join(f"{name}@{level}" for name, level in plan.describe(i)) or "pristine"
            for i in range(plan.batch_size)
        ]
        return batch["a_full"], captions

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images `(M,3,c,c)` -> projector output `(M, projector_out_dim)` (normalised inside the loss)."""
        return self.projector(F.normalize(self.backbone(x), dim=1))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        n = batch["a_full"].shape[0]
        z = self.embed(torch.cat([batch["a_full"], batch["a_half"], batch["b_full"], batch["b_half"]]))
        z_a, z_b = z[: 2 * n], z[2 * n :]
        loss = nt_xent(z_a, z_b, self.temperature)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss
