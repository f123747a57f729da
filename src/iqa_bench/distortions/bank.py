"""Registry of the 24 ARNIQA distortions: name -> group, batched op, 5-level parameter table, stochastic flag.

Order, groups and level tables follow the official ``utils_data.py`` (the ARNIQA paper and code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from . import functional as Fn

__all__ = ["REGISTRY", "DistortionSpec", "get_spec", "groups", "level_params", "names", "type_id"]

DistortionFn = Callable[[Tensor, Tensor, "torch.Generator | None"], Tensor]


@dataclass(frozen=True)
class DistortionSpec:
    """One distortion of the bank.

    Attributes:
        name: ARNIQA name (e.g. ``"gaublur"``).
        group: ARNIQA group (``"blur"``, ``"color_distortion"``, ...).
        fn: batched op ``fn(x (B,3,H,W) float32, param (B,), generator) -> (B,3,H,W)`` (unclipped).
        levels: parameter values of levels 1..5.
        stochastic: whether the output depends on the random generator.
    """

    name: str
    group: str
    fn: DistortionFn
    levels: tuple[float, float, float, float, float]
    stochastic: bool


def _spec(name: str, group: str, fn: DistortionFn, levels: tuple[float, ...], stochastic: bool = False):
    return DistortionSpec(name, group, fn, tuple(float(v) for v in levels), stochastic)  # type: ignore[arg-type]


_SPECS: tuple[DistortionSpec, ...] = (
    _spec("gaublur", "blur", Fn.gaussian_blur, (0.1, 0.5, 1, 2, 5)),
    _spec("lensblur", "blur", Fn.lens_blur, (1, 2, 4, 6, 8)),
    _spec("motionblur", "blur", Fn.motion_blur, (1, 2, 4, 6, 10), stochastic=True),
    _spec("colordiff", "color_distortion", Fn.color_diffusion, (1, 3, 6, 8, 12)),
    _spec("colorshift", "color_distortion", Fn.color_shift, (1, 3, 6, 8, 12), stochastic=True),
    _spec("colorsat1", "color_distortion", Fn.color_saturation1, (0.4, 0.2, 0.1, 0, -0.4)),
    _spec("colorsat2", "color_distortion", Fn.color_saturation2, (1, 2, 3, 6, 9)),
    _spec("jpeg2000", "jpeg", Fn.jpeg2000, (16, 32, 45, 120, 170)),
    _spec("jpeg", "jpeg", Fn.jpeg, (43, 36, 24, 7, 4)),
    _spec("whitenoise", "noise", Fn.white_noise, (0.001, 0.002, 0.003, 0.005, 0.01), stochastic=True),
    _spec("whitenoiseCC", "noise", Fn.white_noise_cc, (0.0001, 0.0005, 0.001, 0.002, 0.003), stochastic=True),
    _spec("impulsenoise", "noise", Fn.impulse_noise, (0.001, 0.005, 0.01, 0.02, 0.03), stochastic=True),
    _spec("multnoise", "noise", Fn.multiplicative_noise, (0.001, 0.005, 0.01, 0.02, 0.05), stochastic=True),
    _spec("brighten", "brightness_change", Fn.brighten, (0.1, 0.2, 0.4, 0.7, 1.1)),
    _spec("darken", "brightness_change", Fn.darken, (0.05, 0.1, 0.2, 0.4, 0.8)),
    _spec("meanshift", "brightness_change", Fn.mean_shift, (0, 0.08, -0.08, 0.15, -0.15)),
    _spec("jitter", "spatial_distortion", Fn.jitter, (0.05, 0.1, 0.2, 0.5, 1), stochastic=True),
    _spec(
        "noneccpatch", "spatial_distortion", Fn.non_eccentricity_patch, (20, 40, 60, 80, 100), stochastic=True
    ),
    _spec("pixelate", "spatial_distortion", Fn.pixelate, (0.01, 0.05, 0.1, 0.2, 0.5)),
    _spec("quantization", "spatial_distortion", Fn.quantization, (20, 16, 13, 10, 7)),
    _spec("colorblock", "spatial_distortion", Fn.color_block, (2, 4, 6, 8, 10), stochastic=True),
    _spec("highsharpen", "sharpness_contrast", Fn.high_sharpen, (1, 2, 3, 6, 12)),
    _spec("lincontrchange", "sharpness_contrast", Fn.linear_contrast_change, (0.0, 0.15, -0.4, 0.3, -0.6)),
    _spec(
        "nonlincontrchange", "sharpness_contrast", Fn.non_linear_contrast_change, (0.4, 0.3, 0.2, 0.1, 0.05)
    ),
)

REGISTRY: dict[str, DistortionSpec] = {s.name: s for s in _SPECS}
_INDEX: dict[str, int] = {s.name: i for i, s in enumerate(_SPECS)}


def names() -> list[str]:
    """The 24 ARNIQA distortion names in the spec's table order (type id = position in this list)."""
    return [s.name for s in _SPECS]


def groups() -> dict[str, list[str]]:
    """The 7 ARNIQA groups in spec order, each mapped to its member names."""
    out: dict[str, list[str]] = {}
    for s in _SPECS:
        out.setdefault(s.group, []).append(s.name)
    return out


def get_spec(name: str) -> DistortionSpec:
    """The :class:`DistortionSpec` of ``name``; ``ValueError`` naming ``name`` when unknown."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"name must be one of the ARNIQA distortions {names()}, got {name!r}") from None


def type_id(name: str) -> int:
    """Position of ``name`` in :func:`names` (the id used by :class:`~iqa_bench.distortions.DistortionPlan`)."""
    get_spec(name)
    return _INDEX[name]


def level_params(name: str) -> tuple[float, ...]:
    """The 5 parameter values of ``name`` for levels 1..5."""
    return get_spec(name).levels
