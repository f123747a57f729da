"""Re-IQA quality-aware encoder: MoCo-v2 on overlapping crops of distorted images (Saha et al., CVPR 2023).

Per image, the workers cut a square region of the full image and one of its ×2-downscaled version (uint8). On the
batch's device each region is expanded into a chunk of `1 + n_aug` versions (pristine + `n_aug` distorted, one
plan per version, the same plan at both scales), every version is distorted ONCE, and two P×P patches whose
overlap is 10–30 % of P² are cut from it (the Re-IQA paper and code). Each (image, version, scale) is one instance:
query = one patch through the online encoder + projector, positive key = the other patch through the EMA encoder;
negatives = the queue only (keys of previous steps, gathered over ranks). InfoNCE with T = 0.2, EMA m = 0.999.

Which patch is the query is drawn per instance at random (a correct version of the official `swap_crops`, whose
in-place arithmetic swap corrupts ~33 % of the swapped queries' pixels; see docs/methods.md).

Features for evaluation: the quality encoder's pooled output; with a content encoder (frozen Backbone, e.g. an
ImageNet MoCo-v2 ResNet-50 from a local file), `content ⊕ quality` (each L2-normalised, then the whole).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqa_bench import distortions
from iqa_bench.data.pretrain import reiqa_region_size
from iqa_bench.distortions import DistortionPlan, reiqa_bank
from iqa_bench.errors import ConfigError
from iqa_bench.losses.infonce_queue import KeyQueue, infonce_queue
from iqa_bench.methods.base import PretrainMethod, to_plain, uint8_to_float
from iqa_bench.models.backbones import Backbone
from iqa_bench.models.heads import mlp_projector


def patch_size_of_region(region: int) -> int:
    """Inverse of `reiqa_region_size`."""
    p = int(region / 1.9)
    for cand in range(max(1, p - 3), p + 4):
        if reiqa_region_size(cand) == region:
            return cand
    raise ValueError(f"{region} is not a Re-IQA region size")


def overlap_offsets(
    n: int, patch: int, generator: torch.Generator, device: torch.device, transpose_prob: float = 0.0
) -> torch.Tensor:
    """Offsets `(n, 2)` (y, x) of the second patch relative to the first, as the official `choose_y/choose_x`:
    y ~ U[0.7P, 0.9P), x ~ U[P − 0.3P²/(P−y), P − 0.1P²/(P−y)) floored at 0, so the overlap (P−y)(P−x)/P² lies in
    [0.10, 0.30]. With `transpose_prob` > 0, (y, x) is swapped for that fraction (the official offset is always
    mostly vertical)."""
    p = float(patch)
    y = 0.7 * p + 0.2 * p * torch.rand(n, generator=generator, device=device)
    lo = (p - 0.3 * p * p / (p - y)).clamp_min(0)
    hi = (p - 0.1 * p * p / (p - y)).clamp_min(0)
    x = lo + (hi - lo) * torch.rand(n, generator=generator, device=device)
    yx = torch.stack([y.floor(), x.floor()], dim=1).long().clamp(0, math.ceil(0.9 * p))
    if transpose_prob > 0:
        flip = torch.rand(n, generator=generator, device=device) < transpose_prob
        yx = torch.where(flip[:, None], yx.flip(1), yx)
    return yx


def cut_patches(regions: torch.Tensor, yx: torch.Tensor, patch: int) -> torch.Tensor:
    """`regions (M, C, R, R)`, offsets `(M, 2)` -> the `patch × patch` windows at (y, x), `(M, C, patch, patch)`."""
    m = regions.shape[0]
    ar = torch.arange(patch, device=regions.device)
    rows = (yx[:, 0:1] + ar)[:, :, None]  # (M, P, 1)
    cols = (yx[:, 1:2] + ar)[:, None, :]  # (M, 1, P)
    batch = torch.arange(m, device=regions.device)[:, None, None]
    return regions.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


class ReIQA(PretrainMethod):
    """Re-IQA quality-aware pretraining.

    Args (beyond `PretrainMethod`'s):
        projector_hidden_dim: projector hidden width (None = backbone dim; paper 2048).
        projector_out_dim: embedding width (paper 128).
        temperature: InfoNCE temperature (paper 0.2).
        queue_size: number of negatives K (paper 65,536); any value works (wrap-around).
        momentum: EMA coefficient of the key encoder (paper 0.999, constant).
        n_aug: distorted versions per image (paper 11); plus the pristine one when `include_pristine`. With
            `distortion=reiqa` (a `ReIQASampler`: distinct types per image) None = the sampler's `n_aug` and an int
            keeps the first `n_aug` of its draws; with a plan sampler (`distortion=arniqa`) it is required.
        include_pristine: keep the undistorted version in each chunk (paper: yes).
        random_swap: pick query/key patch per instance at random (True; the official fixed half/half swap is
            corrupted, see the module doc); False = patch 1 is always the query.
        offset_transpose_prob: fraction of instances whose overlap offset is transposed (paper 0: always vertical).
        shuffle_bn_groups: encode the keys in this many random sub-batches (single-process ShuffleBN emulation;
            1 = one batch).
        content_encoder: None, or `Backbone` kwargs of a frozen content encoder (e.g. {name: resnet50,
            weights: /path/moco_v2_r50.safetensors}); its features are prepended at evaluation.
        intra_image_negatives: also use, for each query, the keys of the other versions of the same image at the
            same scale (same content, other distortion) as negatives. The released code does not (queue-only
            negatives, the Re-IQA paper and code); off for the paper setting.
    """

    sample_format = "reiqa_overlap"

    def __init__(
        self,
        backbone: dict,
        distortion: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        seed: int = 0,
        projector_hidden_dim: int | None = None,
        projector_out_dim: int = 128,
        temperature: float = 0.2,
        queue_size: int = 65536,
        momentum: float = 0.999,
        n_aug: int | None = None,
        include_pristine: bool = True,
        random_swap: bool = True,
        offset_transpose_prob: float = 0.0,
        shuffle_bn_groups: int = 1,
        content_encoder: dict | None = None,
        intra_image_negatives: bool = False,
    ) -> None:
        super().__init__(backbone, distortion, optimizer, scheduler, seed)
        content_encoder = to_plain(content_encoder)
        checks = (
            ("temperature", temperature, temperature > 0, "> 0"),
            ("queue_size", queue_size, int(queue_size) >= 1, ">= 1"),
            ("momentum", momentum, 0.0 <= momentum < 1.0, "in [0, 1)"),
            (
                "n_aug",
                n_aug,
                n_aug is None or (int(n_aug) >= 0 and int(n_aug) + int(include_pristine) >= 1),
                "null or >= 0 (>= 1 with include_pristine=false)",
            ),
            (
                "offset_transpose_prob",
                offset_transpose_prob,
                0.0 <= offset_transpose_prob <= 1.0,
                "in [0, 1]",
            ),
            ("shuffle_bn_groups", shuffle_bn_groups, int(shuffle_bn_groups) >= 1, ">= 1"),
        )
        for key, value, ok, want in checks:
            if not ok:
                raise ConfigError(f"method.{key} must be {want}, got {value!r}")
        self.chunk_sampler = isinstance(self.sampler, reiqa_bank.ReIQASampler)
        if not hasattr(self.sampler, "sample"):
            raise ConfigError(
                f"method ReIQA needs distortion=reiqa (ReIQASampler) or a plan sampler with .sample() "
                f"(e.g. distortion=arniqa), got {type(self.sampler).__name__}"
            )
        if n_aug is None and not self.chunk_sampler:
            raise ConfigError("method.n_aug must be set when the distortion sampler is not distortion=reiqa")
        if n_aug is not None and self.chunk_sampler and int(n_aug) > self.sampler.n_aug:
            raise ConfigError(f"method.n_aug={n_aug} exceeds distortion.n_aug={self.sampler.n_aug}")
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
                "queue_size": queue_size,
                "momentum": momentum,
                "n_aug": n_aug,
                "include_pristine": include_pristine,
                "random_swap": random_swap,
                "offset_transpose_prob": offset_transpose_prob,
                "shuffle_bn_groups": shuffle_bn_groups,
                "content_encoder": content_encoder,
                "intra_image_negatives": intra_image_negatives,
            }
        )
        d = self.backbone.feature_dim
        self.projector = mlp_projector(d, projector_hidden_dim or d, projector_out_dim)
        self.key_backbone = copy.deepcopy(self.backbone)
        self.key_projector = copy.deepcopy(self.projector)
        for p in list(self.key_backbone.parameters()) + list(self.key_projector.parameters()):
            p.requires_grad_(False)
        self.queue = KeyQueue(int(queue_size), int(projector_out_dim), seed=self.seed)
        self.content: Backbone | None = None
        if content_encoder:
            if content_encoder.get("weights") in ("???", "") and not content_encoder.get("pretrained"):
                raise ConfigError(
                    "method.content_encoder.weights: set it to the content encoder's weights file (an ImageNet "
                    "MoCo-v2 ResNet-50 checkpoint), or drop the content encoder with method.content_encoder=null"
                )
            self.content = Backbone(**content_encoder)
            for p in self.content.parameters():
                p.requires_grad_(False)
            self.content.eval()
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.n_aug = int(n_aug) if n_aug is not None else int(self.sampler.n_aug)
        self.include_pristine = bool(include_pristine)
        self.random_swap = bool(random_swap)
        self.offset_transpose_prob = float(offset_transpose_prob)
        self.shuffle_bn_groups = int(shuffle_bn_groups)
        self.intra_image_negatives = bool(intra_image_negatives)
        self._ema_step = 0

    # -- feature API ------------------------------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        content = getattr(self, "content", None)
        return self.backbone.feature_dim + (content.feature_dim if content is not None else 0)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        quality = F.normalize(self.backbone(images).float(), dim=1)
        if self.content is None:
            return quality
        content = F.normalize(self.content(images).float(), dim=1)
        return F.normalize(torch.cat([content, quality], dim=1), dim=1)

    def train(self, mode: bool = True) -> ReIQA:
        super().train(mode)
        if self.content is not None:
            self.content.eval()  # frozen: BN keeps its running statistics
        return self

    @property
    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.key_backbone), (self.projector, self.key_projector)]

    # -- data -----------------------------------------------------------------------------------------------------
    def chunk_plan(self, n_images: int, generator: torch.Generator, device: torch.device) -> DistortionPlan:
        """Plan-sampler path: one plan per (image, version), `(n_images · V)` rows, version 0 pristine when
        `include_pristine`."""
        if self.n_aug == 0:  # pristine only
            empty = torch.full((n_images, 1), -1, dtype=torch.long, device=device)
            return DistortionPlan(empty, torch.zeros_like(empty))
        plan = self.sampler.sample(n_images * self.n_aug, generator=generator, device=device)
        types = plan.type_ids.view(n_images, self.n_aug, -1)
        levels = plan.levels.view(n_images, self.n_aug, -1)
        if self.include_pristine:
            s = types.shape[-1]
            types = torch.cat(
                [torch.full((n_images, 1, s), -1, dtype=types.dtype, device=types.device), types], 1
            )
            levels = torch.cat(
                [torch.zeros((n_images, 1, s), dtype=levels.dtype, device=levels.device), levels], 1
            )
        return DistortionPlan(types.reshape(-1, types.shape[-1]), levels.reshape(-1, levels.shape[-1]))

    def distorted_chunks(
        self, full: torch.Tensor, half: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, Any]:
        """Float regions `(N, 3, R, R)` of both scales -> `(2·N·V, 3, R, R)` (rows: scale × image × version) and
        the plan. Each image's versions get the same distortions at both scales."""
        n, dev = full.shape[0], full.device
        v = self.n_aug + int(self.include_pristine)
        if self.chunk_sampler:
            plan = self.sampler.sample(n, generator=generator, device=dev)
            types, levels = plan.type_ids[:, : self.n_aug], plan.levels[:, : self.n_aug]
            plan2 = reiqa_bank.ReIQAPlan(torch.cat([types, types]), torch.cat([levels, levels]))
            chunk = reiqa_bank.apply_chunk(torch.cat([full, half]), plan2, generator=generator)
            if not self.include_pristine:
                chunk = chunk[:, 1:]
            return chunk.reshape(2 * n * v, *full.shape[1:]), plan2
        plan = self.chunk_plan(n, generator, dev)
        plan2 = DistortionPlan(torch.cat([plan.type_ids] * 2), torch.cat([plan.levels] * 2))
        regions = torch.cat([full, half]).repeat_interleave(v, dim=0)
        return distortions.apply_plan(regions, plan2, generator=generator), plan2

    def prepare_batch(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, Any]:
        """uint8 {"full": (N,3,R,R), "half": (N,3,R,R)} -> {"query", "key": float (2·N·V, 3, P, P)}.

        Row order: scale (full, half) × image × version."""
        full, half = uint8_to_float(batch["full"]), uint8_to_float(batch["half"])
        n, r = full.shape[0], full.shape[-1]
        patch = patch_size_of_region(r)
        v = self.n_aug + int(self.include_pristine)
        dev = full.device
        regions, plan = self.distorted_chunks(full, half, generator)
        # one overlap geometry per (scale, image), shared by the image's versions
        yx = overlap_offsets(2 * n, patch, generator, dev, self.offset_transpose_prob).repeat_interleave(v, 0)
        p1 = regions[:, :, :patch, :patch]
        p2 = cut_patches(regions, yx, patch)
        if self.random_swap:
            swap = (torch.rand(p1.shape[0], generator=generator, device=dev) < 0.5)[:, None, None, None]
            query, key = torch.where(swap, p2, p1), torch.where(swap, p1, p2)
        else:
            query, key = p1.contiguous(), p2
        return {"query": query, "key": key, "plan": plan, "offsets": yx}

    # -- model ----------------------------------------------------------------------------------------------------
    def embed_query(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))

    @torch.no_grad()
    def embed_key(self, x: torch.Tensor) -> torch.Tensor:
        """EMA encoder (BN in batch-statistics mode, as upstream); ShuffleBN emulated with `shuffle_bn_groups`."""
        g = min(self.shuffle_bn_groups, x.shape[0])
        if g <= 1:
            return self.key_projector(self.key_backbone(x))
        perm = torch.randperm(x.shape[0], device=x.device)
        out = torch.cat([self.key_projector(self.key_backbone(c)) for c in x[perm].chunk(g)])
        return out[torch.argsort(perm)]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        q = self.embed_query(batch["query"])
        k = self.embed_key(batch["key"])
        extra = self.intra_negatives(k) if self.intra_image_negatives else None
        loss, acc = infonce_queue(q, k, self.queue(), self.temperature, extra)  # a copy: enqueue is in place
        self.queue.enqueue(F.normalize(k.float(), dim=1))  # after the logits, as upstream
        n = q.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/acc", acc, batch_size=n)
        return loss

    def intra_negatives(self, k: torch.Tensor) -> torch.Tensor | None:
        """Keys `(M, d)`, rows = scale × image × version -> `(M, V-1, d)`: for each row, the keys of the other
        versions of its (scale, image) chunk. None when a chunk has a single version."""
        v = self.n_aug + int(self.include_pristine)
        if v < 2:
            return None
        chunks = k.view(-1, v, k.shape[-1])  # (2N, V, d)
        others = torch.stack([torch.cat([chunks[:, :j], chunks[:, j + 1 :]], dim=1) for j in range(v)], dim=1)
        return others.reshape(k.shape[0], v - 1, k.shape[-1])

    @torch.no_grad()
    def momentum_update(self) -> None:
        """θ_k ← m·θ_k + (1 − m)·θ_q over parameters (buffers: the key encoder keeps its own BN statistics)."""
        for online, target in self.momentum_pairs:
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(self.momentum).add_(po.detach(), alpha=1.0 - self.momentum)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(self.global_step)
        if step != self._ema_step:  # only after a real optimiser step (gradient-accumulation safe)
            self._ema_step = step
            self.momentum_update()
