"""RankIQA ranked ladders (the RankIQA/MLF papers and code): each image becomes the pristine image
followed by the same distortion type at increasing levels.

Quick use::

    ladder = RankIQALadder("live")                       # 4 types x 5 levels (+ pristine) -> K = 6 views
    views, type_ids = ladder(images, generator=g)        # (B, 6, 3, H, W), (B,)
    # views[:, 0] is the pristine image, views[:, k] level k; ladder.types[type_ids[i]] names sample i's type

Settings: ``"live"`` (Waterloo/gMAD protocol: gblur, wn, jpeg, jp2k x 5 levels) and ``"tid2013"`` (the 17 types
of ``tid2013_generator.m`` x 4 levels). Levels run from weakest to strongest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from . import functional as Fn
from .functional import rankiqa as R
from .transform import CPU_CHUNK, _check_images

__all__ = ["LadderType", "RankIQALadder", "SETTINGS"]

LadderFn = Callable[[Tensor, Tensor, "torch.Generator | None"], Tensor]


@dataclass(frozen=True)
class LadderType:
    """One distortion type of a ladder.

    Attributes:
        name: short name (LIVE folder names; TID2013 abbreviations, lower case).
        fn: batched op ``fn(x, param (B,), generator)`` (unclipped output).
        params: the op's parameter for levels 1..L (weakest first).
        stochastic: whether the output depends on the generator.
        note: what the level parameter means.
    """

    name: str
    fn: LadderFn
    params: tuple[float, ...]
    stochastic: bool
    note: str


def _t(name: str, fn: LadderFn, params: tuple[float, ...], stochastic: bool, note: str) -> LadderType:
    return LadderType(name, fn, tuple(float(p) for p in params), stochastic, note)


# JPEG quality 0 of the MATLAB writer does not exist in libjpeg: clamped to 1 (spec Q7).
_LIVE = (
    _t(
        "gblur",
        R.gaussian_blur_hsize,
        (7, 15, 39, 91, 199),
        False,
        "hsize, sigma = hsize/6, symmetric border",
    ),
    _t("wn", R.white_noise_clipped, tuple(2.0**e for e in (-10, -7.5, -5.5, -3.5, 0)), True, "variance 2^e"),
    _t("jpeg", Fn.jpeg, (43, 12, 7, 4, 1), False, "libjpeg quality (MATLAB's 0 clamped to 1)"),
    _t("jp2k", Fn.jpeg2000, (52, 150, 343, 600, 1200), False, "OpenJPEG compression ratio = 24/bpp"),
)

_TID = (
    _t("agn", R.white_noise_clipped, (0.001, 0.005, 0.01, 0.05), True, "#01 additive noise, variance"),
    _t("anc", R.noise_color_components, (0.0140, 0.0198, 0.0343, 0.0524), True, "#02 YCbCr noise, variance"),
    _t("hfn", R.high_frequency_noise, (0.001, 0.005, 0.01, 0.05), True, "#05 high-pass noise, variance"),
    _t("in", R.impulse_noise_elementwise, (0.005, 0.01, 0.05, 0.1), True, "#06 salt & pepper density"),
    _t("qn", R.quantization_thresholds, (9, 7, 5, 3), False, "#07 number of thresholds"),
    _t("gb", R.gaussian_blur_hsize, (7, 15, 39, 91), False, "#08 hsize, sigma = hsize/6"),
    _t("den", R.denoise_residual, (0.001, 0.005, 0.01, 0.05), True, "#09 noise variance before denoising"),
    _t("jpeg", Fn.jpeg, (43, 12, 7, 4), False, "#10 libjpeg quality"),
    _t("jp2k", Fn.jpeg2000, (52, 150, 343, 600), False, "#11 compression ratio = 24/bpp"),
    _t("nepn", R.non_eccentricity_pattern, (30, 70, 150, 300), True, "#14 number of 15x15 patches"),
    _t("block", R.blockwise, (1, 2, 3, 4), True, "#15 level (2/4/8/16 blocks, level-dependent colour)"),
    _t("ms", R.mean_shift_u8, (15, 30, 45, 60), False, "#16 MSH, grey levels added"),
    _t("ctc", R.contrast_gain, (0.85, 0.70, 0.55, 0.40), False, "#17 CCL, global gain"),
    _t("ccs", R.saturation_ycbcr, (0.4, 0.0, -0.4, -0.8), False, "#18 chroma factor about 0.5"),
    _t("mgn", R.multiplicative_gaussian_noise, (0.05, 0.09, 0.13, 0.2), True, "#19 multiplicative sigma"),
    _t("icqd", R.color_quantization_dither, (64, 32, 16, 8), False, "#22 palette size"),
    _t("cha", R.chromatic_aberration, (2, 6, 10, 14), False, "#23 R shift a px, B shift a/2 px"),
)

SETTINGS: dict[str, tuple[LadderType, ...]] = {"live": _LIVE, "tid2013": _TID}


class RankIQALadder:
    """RankIQA's ranked views: per sample one distortion type drawn uniformly, applied at every level.

    Args:
        setting: ``"live"`` (4 types x 5 levels) or ``"tid2013"`` (17 types x 4 levels).
        types: restrict to these type names of the setting (in the given order); None = all.

    ``ladder(images, generator)`` returns ``(views (B, K, 3, H, W), type_ids (B,))`` with
    ``K = num_levels + 1``; ``views[:, 0]`` is the input, ``views[:, k]`` level ``k`` (severity increasing
    with ``k``), clipped to [0,1], same device and dtype as ``images``. The work is batched per type: the
    loop runs over the distinct types of the batch and the levels, never over samples.
    """

    def __init__(self, setting: str = "live", types: list[str] | None = None) -> None:
        if setting not in SETTINGS:
            raise ValueError(f"setting must be one of {list(SETTINGS)}, got {setting!r}")
        table = {t.name: t for t in SETTINGS[setting]}
        if types is None:
            chosen = list(table)
        else:
            if isinstance(types, str) or not all(isinstance(t, str) for t in types):
                raise ValueError(f"types must be a list of type names or None, got {types!r}")
            chosen = list(types)
            unknown = [t for t in chosen if t not in table]
            if unknown or not chosen or len(set(chosen)) != len(chosen):
                raise ValueError(
                    f"types must be distinct names of the {setting!r} setting {list(table)}, got {chosen}"
                )
        self.setting = setting
        self._types = [table[t] for t in chosen]
        self._num_levels = len(self._types[0].params)
        self._params = torch.tensor([t.params for t in self._types], dtype=torch.float64)  # (T, L)

    # ------------------------------------------------------------------------------------------ metadata
    @property
    def types(self) -> list[str]:
        """Type names; ``type_ids`` index this list."""
        return [t.name for t in self._types]

    @property
    def num_levels(self) -> int:
        """Distortion levels per ladder (5 for live, 4 for tid2013); views per sample = num_levels + 1."""
        return self._num_levels

    @property
    def num_views(self) -> int:
        return self._num_levels + 1

    def level_params(self, name: str) -> tuple[float, ...]:
        """Parameter values of type ``name`` for levels 1..num_levels."""
        for t in self._types:
            if t.name == name:
                return t.params
        raise ValueError(f"name must be one of {self.types}, got {name!r}")

    def is_stochastic(self, name: str) -> bool:
        for t in self._types:
            if t.name == name:
                return t.stochastic
        raise ValueError(f"name must be one of {self.types}, got {name!r}")

    def __repr__(self) -> str:
        return f"RankIQALadder(setting={self.setting!r}, types={self.types}, num_levels={self.num_levels})"

    # --------------------------------------------------------------------------------------------- work
    def sample_types(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``(batch_size,)`` int64 type ids uniform over :attr:`types`, drawn on the generator's device."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be an int >= 0, got {batch_size!r}")
        dev = generator.device if generator is not None else torch.device("cpu")
        ids = torch.randint(0, len(self._types), (batch_size,), generator=generator, device=dev)
        return ids.to(device) if device is not None else ids

    def apply(self, images: Tensor, type_ids: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Views ``(B, K, 3, H, W)`` of ``images (B,3,H,W)`` in [0,1] for the given per-sample ``type_ids (B,)``."""
        _check_images(images)
        b = images.shape[0]
        if (
            not isinstance(type_ids, Tensor)
            or type_ids.shape != (b,)
            or type_ids.is_floating_point()
            or type_ids.dtype == torch.bool
        ):
            got = (
                f"{type_ids.dtype} {tuple(type_ids.shape)}"
                if isinstance(type_ids, Tensor)
                else type(type_ids)
            )
            raise ValueError(f"type_ids must be an integer tensor of shape ({b},), got {got}")
        ids = type_ids.detach().to("cpu", torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(self._types)):
            raise ValueError(
                f"type_ids must be in 0..{len(self._types) - 1}, got [{int(ids.min())}, {int(ids.max())}]"
            )
        k = self.num_views
        out = images.new_empty((b, k, *images.shape[1:]))
        if images.numel() == 0:
            out.copy_(images.unsqueeze(1).expand_as(out))
            return out
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
            out[:, 0] = images
            x = images.float().contiguous()
            for t in torch.unique(ids).tolist():
                rows = (ids == t).nonzero(as_tuple=True)[0]
                spec = self._types[t]
                # JPEG 2000 codes uint8 images in worker processes: hand them the whole group at once
                small = x.device.type == "cpu" and spec.fn is not Fn.jpeg2000
                step = CPU_CHUNK if small else max(1, b)
                for i in range(0, rows.numel(), step):
                    idx = rows[i : i + step].to(images.device)
                    xs = x.index_select(0, idx)
                    for lv in range(self._num_levels):
                        p = self._params[t, lv].to(device=x.device, dtype=torch.float32).expand(xs.shape[0])
                        y = spec.fn(xs, p.contiguous(), generator).clamp_(0.0, 1.0)
                        out[idx, lv + 1] = y.to(images.dtype)
        return out

    def apply_level(
        self, name: str, images: Tensor, level: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Type ``name`` at one ``level`` (1..num_levels) on ``images (B,3,H,W)``; clipped, input dtype."""
        _check_images(images)
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= self._num_levels:
            raise ValueError(f"level must be an int in 1..{self._num_levels}, got {level!r}")
        self.level_params(name)  # ValueError naming `name` when unknown
        t = self.types.index(name)
        if images.numel() == 0:
            return images.clone()
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
            x = images.float().contiguous()
            p = self._params[t, level - 1].to(device=x.device, dtype=torch.float32).expand(x.shape[0])
            y = self._types[t].fn(x, p.contiguous(), generator).clamp_(0.0, 1.0)
        return y.to(images.dtype)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw one type per sample and return ``(views (B, K, 3, H, W), type_ids (B,) int64)``."""
        _check_images(images)
        type_ids = self.sample_types(images.shape[0], generator, images.device)
        return self.apply(images, type_ids, generator), type_ids
