"""Batched, seeded distortion bank: the 24 ARNIQA distortions, the ARNIQA composition sampler and plan application.

Quick use::

    from iqa_bench import distortions
    y = distortions.apply("gaublur", images, level=3, generator=g)        # images (B,3,H,W) in [0,1]
    plan = distortions.ArniqaSampler().sample(images.shape[0], generator=g, device=images.device)
    views = [distortions.apply_plan(v, plan, generator=g) for v in (view_a, view_b)]
    ladder = distortions.RankIQALadder("live")              # RankIQA: pristine + 5 increasing levels
    views, type_ids = ladder(images, generator=g)           # (B, 6, 3, H, W), (B,)
    chunk, plan = distortions.ReIQASampler(n_aug=11)(images, generator=g)  # Re-IQA: (B, 12, 3, H, W)
"""

from . import reiqa_bank
from .bank import DistortionSpec, groups, level_params, names
from .ladders import RankIQALadder
from .reiqa_bank import ReIQAPlan, ReIQASampler
from .sampling import ArniqaSampler, DistortionPlan
from .transform import apply, apply_plan

__all__ = [
    "ArniqaSampler",
    "DistortionPlan",
    "DistortionSpec",
    "RankIQALadder",
    "ReIQAPlan",
    "ReIQASampler",
    "apply",
    "apply_plan",
    "groups",
    "level_params",
    "names",
    "reiqa_bank",
]
