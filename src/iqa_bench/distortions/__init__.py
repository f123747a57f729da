"""Batched, seeded distortion bank: the 24 ARNIQA distortions, the ARNIQA composition sampler and plan application.

Quick use::

    from iqa_bench import distortions
    y = distortions.apply("gaublur", images, level=3, generator=g)        # images (B,3,H,W) in [0,1]
    plan = distortions.ArniqaSampler().sample(images.shape[0], generator=g, device=images.device)
    views = [distortions.apply_plan(v, plan, generator=g) for v in (view_a, view_b)]
"""

from .bank import DistortionSpec, groups, level_params, names
from .sampling import ArniqaSampler, DistortionPlan
from .transform import apply, apply_plan

__all__ = [
    "ArniqaSampler",
    "DistortionPlan",
    "DistortionSpec",
    "apply",
    "apply_plan",
    "groups",
    "level_params",
    "names",
]
