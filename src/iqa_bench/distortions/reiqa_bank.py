"""Re-IQA's 26-distortion bank (official ``datasets/iqa_distortions.py``, dispatcher
``IQAImageClass.iqa_transformations`` choices 1..26; the Re-IQA paper and code) and its chunk sampler.

Quick use::

    from iqa_bench.distortions import reiqa_bank
    y = reiqa_bank.apply("imblurgauss", images, level=3, generator=g)      # one op, (B,3,H,W) in [0,1]
    sampler = reiqa_bank.ReIQASampler(n_aug=11)
    plan = sampler.sample(images.shape[0], generator=g, device=images.device)   # ReIQAPlan (B, 11)
    chunk = reiqa_bank.apply_chunk(images, plan, generator=g)                    # (B, 12, 3, H, W)
    chunk, plan = sampler(images, generator=g)                                   # both steps

``chunk[:, 0]`` is the pristine image and ``chunk[:, j]`` distortion ``j`` of the plan applied to it (one
distortion per view, distinct types within a sample, as the official ``__getitem__``). Work is grouped by
type over all (sample, slot) pairs: the loop runs over distinct types, never over samples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .functional import reiqa as R
from .threaded_compose import run_op_batch
from .transform import _check_images, _check_levels, compose_steps

__all__ = [
    "ReIQAPlan",
    "ReIQASampler",
    "ReIQASpec",
    "apply",
    "apply_chunk",
    "apply_plan",
    "get_spec",
    "level_params",
    "names",
    "type_id",
]

ReIQAFn = Callable[[Tensor, Tensor, "torch.Generator | None"], Tensor]
NUM_LEVELS = 5


@dataclass(frozen=True)
class ReIQASpec:
    """One Re-IQA distortion: official function name, dispatcher number, batched op, level table."""

    name: str
    choice: int
    fn: ReIQAFn
    levels: tuple[float, float, float, float, float]
    stochastic: bool


def _s(name: str, choice: int, fn: ReIQAFn, levels: tuple[float, ...], stochastic: bool = False) -> ReIQASpec:
    return ReIQASpec(name, choice, fn, tuple(float(v) for v in levels), stochastic)  # type: ignore[arg-type]


_SPECS: tuple[ReIQASpec, ...] = (
    _s("imblurgauss", 1, R.blur_gauss_pil, (0.1, 0.5, 1, 2, 5)),
    _s("imblurlens", 2, R.blur_lens, (1, 2, 4, 6, 8)),
    _s("imcolordiffuse", 3, R.color_diffuse, (1, 3, 6, 8, 12)),
    _s("imcolorshift", 4, R.color_shift_flat_roll, (1, 3, 6, 8, 12), stochastic=True),
    _s("imcolorsaturate", 5, R.color_saturate_hsv, (0.4, 0.2, 0.1, 0, -0.4)),
    _s("imsaturate", 6, R.saturate_lab, (1, 2, 3, 6, 9)),
    _s("imcompressjpeg", 7, R.compress_jpeg_pil, (70, 43, 36, 24, 7)),
    _s("imnoisegauss", 8, R.noise_gauss, (0.001, 0.002, 0.003, 0.005, 0.01), stochastic=True),
    _s("imnoisecolormap", 9, R.noise_colormap, (0.0001, 0.0005, 0.001, 0.002, 0.003), stochastic=True),
    _s("imnoiseimpulse", 10, R.noise_impulse, (0.001, 0.005, 0.01, 0.02, 0.03), stochastic=True),
    _s(
        "imnoisemultiplicative", 11, R.noise_multiplicative, (0.001, 0.005, 0.01, 0.02, 0.05), stochastic=True
    ),
    _s("imdenoise", 12, R.denoise, (0.001, 0.002, 0.003, 0.005, 0.01), stochastic=True),
    _s("imbrighten", 13, R.brighten, (0.1, 0.2, 0.4, 0.7, 1.1)),
    _s("imdarken", 14, R.darken, (0.05, 0.1, 0.2, 0.4, 0.8)),
    _s("immeanshift", 15, R.mean_shift, (0.15, 0.08, 0, -0.08, -0.15)),
    _s("imresizedist", 16, R.resize_bicubic, (2, 3, 4, 8, 16)),
    _s("imsharpenHi", 17, R.sharpen_hi, (1, 2, 3, 6, 12)),
    _s("imcontrastc", 18, R.contrast_cubic, (0.3, 0.15, 0, -0.4, -0.6)),
    _s("imcolorblock", 19, R.color_block_u8, (2, 4, 6, 8, 10), stochastic=True),
    _s("impixelate", 20, R.pixelate_pil, (0.01, 0.05, 0.1, 0.2, 0.5)),
    _s("imnoneccentricity", 21, R.non_eccentricity, (20, 40, 60, 80, 100), stochastic=True),
    _s("imjitter", 22, R.jitter_cubic, (0.05, 0.1, 0.2, 0.5, 1), stochastic=True),
    _s("imresizedist_bilinear", 23, R.resize_bilinear, (2, 3, 4, 8, 16)),
    _s("imresizedist_nearest", 24, R.resize_nearest, (2, 3, 4, 5, 6)),
    _s("imresizedist_lanczos", 25, R.resize_lanczos, (2, 3, 4, 8, 16)),
    _s("imblurmotion", 26, R.blur_motion_line, (12, 16, 20, 24, 28), stochastic=True),
)
# Not part of names(): the released imsharpenHi (rgb2lab of 0..255 floats -> false colour), for parity checks and
# for reproducing the official training distribution (ReIQASampler(sharpen_official=True)).
SHARPEN_OFFICIAL = _s("imsharpenHi_official", 17, R.sharpen_hi_official, (1, 2, 3, 6, 12))
_ALL: tuple[ReIQASpec, ...] = (*_SPECS, SHARPEN_OFFICIAL)
_ORDERED = frozenset(i for i, spec in enumerate(_ALL) if spec.stochastic)  # ops that draw from the generator
_INDEX = {s.name: i for i, s in enumerate(_ALL)}
_PARAMS = torch.tensor([s.levels for s in _ALL], dtype=torch.float64)
# CPU chunk (images per op call; the whole batch off the CPU). The Re-IQA ops keep more full-image
# intermediates on the uint8 grid than the ARNIQA ones: chunks of 4 (2.4 MB at 224^2) were 5-30% faster than 8
# on 1 thread (measured); per-sample sequential loops prefer big chunks (as in the ARNIQA bank).
REIQA_CPU_CHUNK = 4
_CPU_CHUNK_BY_OP = {"imnoneccentricity": 64, "imcolorblock": 64}


def names() -> list[str]:
    """The 26 Re-IQA function names in dispatcher order (choice = index + 1; type id = index)."""
    return [s.name for s in _SPECS]


def get_spec(name: str) -> ReIQASpec:
    """The :class:`ReIQASpec` of ``name`` (the 26 names, or ``"imsharpenHi_official"``)."""
    if isinstance(name, str) and name in _INDEX:
        return _ALL[_INDEX[name]]
    raise ValueError(f"name must be one of the Re-IQA distortions {names()}, got {name!r}")


def type_id(name: str) -> int:
    """Index of ``name`` (26 for ``imsharpenHi_official``)."""
    get_spec(name)
    return _INDEX[name]


def level_params(name: str) -> tuple[float, ...]:
    """The official ``levels`` table of ``name`` (level 1..5 = official index 0..4)."""
    return get_spec(name).levels


def _cpu_chunk(index: int) -> int:
    """Images per op call on the CPU."""
    return _CPU_CHUNK_BY_OP.get(_ALL[index].name, REIQA_CPU_CHUNK)


def _run(index: int, x: Tensor, levels: Tensor, generator: torch.Generator | None) -> Tensor:
    """Op ``index`` on float32 ``x (b,3,H,W)`` at CPU ``levels (b,)``, CPU-chunked, clipped to [0,1]."""
    spec = _ALL[index]
    params = _PARAMS[index, levels - 1].to(device=x.device, dtype=torch.float32)
    step = _cpu_chunk(index) if x.device.type == "cpu" else max(1, x.shape[0])
    if x.shape[0] <= step:
        return spec.fn(x, params, generator).clamp_(0.0, 1.0)
    out = torch.empty_like(x)
    for i in range(0, x.shape[0], step):
        out[i : i + step] = spec.fn(x[i : i + step], params[i : i + step], generator).clamp_(0.0, 1.0)
    return out


def apply(name: str, images: Tensor, level: int | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Apply Re-IQA distortion ``name`` at ``level`` (int 1..5 or integer tensor ``(B,)``) to ``images``.

    ``images`` is a floating ``(B,3,H,W)`` tensor in [0,1]; it is read as the uint8 image ``round(x*255)``
    (what the official functions receive). Returns the same shape, dtype and device, on the uint8 grid.
    """
    spec = get_spec(name)
    _check_images(images)
    levels = _check_levels(level, images.shape[0])
    if images.numel() == 0:
        return images.clone()
    with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
        out = _run_batch(_INDEX[spec.name], images.float().contiguous(), levels, generator)
    return out.to(images.dtype)


@dataclass
class ReIQAPlan:
    """Per-sample distortions of a Re-IQA chunk: ``type_ids (B,N)`` (index into :func:`names`; 26 =
    ``imsharpenHi_official``) and ``levels (B,N)`` in 1..5. Slot ``j`` becomes view ``j+1`` of the chunk."""

    type_ids: Tensor
    levels: Tensor

    def __post_init__(self) -> None:
        if self.type_ids.dim() != 2 or self.type_ids.shape != self.levels.shape:
            raise ValueError(
                f"type_ids and levels must both be (B,N), got {tuple(self.type_ids.shape)} and "
                f"{tuple(self.levels.shape)}"
            )
        self.type_ids = self.type_ids.long()
        self.levels = self.levels.long()

    @property
    def batch_size(self) -> int:
        return int(self.type_ids.shape[0])

    @property
    def num_distortions(self) -> int:
        """Distorted views per sample N (the chunk has N+1 views)."""
        return int(self.type_ids.shape[1])

    def to(self, device: torch.device | str | None) -> ReIQAPlan:
        if device is None or torch.device(device) == self.type_ids.device:
            return self
        return ReIQAPlan(self.type_ids.to(device), self.levels.to(device))

    def describe(self, index: int) -> list[tuple[str, int]]:
        """Sample ``index``'s distortions as ``[(name, level), ...]`` (view order)."""
        t, lv = self.type_ids[index].tolist(), self.levels[index].tolist()
        return [(_ALL[a].name, b) for a, b in zip(t, lv)]

    def as_steps(self) -> ReIQAPlan:
        """The ``(B*N, 1)`` plan whose row ``i*N + j`` is slot ``j`` of sample ``i``: one distortion per
        version, for :func:`apply_plan` on ``images.repeat_interleave(N, 0)`` (or on per-version crops)."""
        return ReIQAPlan(self.type_ids.reshape(-1, 1), self.levels.reshape(-1, 1))

    @classmethod
    def from_sequences(cls, sequences: list[list[tuple[str, int]]]) -> ReIQAPlan:
        """Build a plan from per-sample lists of ``(name, level)`` of equal length."""
        types = torch.tensor([[type_id(n) for n, _ in seq] for seq in sequences], dtype=torch.long)
        levels = torch.tensor([[int(lv) for _, lv in seq] for seq in sequences], dtype=torch.long)
        return cls(types.view(len(sequences), -1), levels.view(len(sequences), -1))


def apply_chunk(images: Tensor, plan: ReIQAPlan, generator: torch.Generator | None = None) -> Tensor:
    """The chunk ``(B, N+1, 3, H, W)``: view 0 = ``images``, view ``j+1`` = plan slot ``j`` applied to it.

    All (sample, slot) pairs of one type are processed together (``index_select`` / ``index_copy_``).
    """
    _check_images(images)
    if not isinstance(plan, ReIQAPlan):
        raise ValueError(f"plan must be a ReIQAPlan, got {type(plan).__name__}")
    b, n = plan.batch_size, plan.num_distortions
    if b != images.shape[0]:
        raise ValueError(f"plan has batch_size {b} but images has {images.shape[0]} samples")
    types = plan.type_ids.detach().cpu().reshape(-1)
    levels = plan.levels.detach().cpu().reshape(-1)
    if types.numel() and (int(types.min()) < 0 or int(types.max()) >= len(_ALL)):
        raise ValueError(f"plan.type_ids must be in 0..{len(_ALL) - 1}")
    if levels.numel() and (int(levels.min()) < 1 or int(levels.max()) > NUM_LEVELS):
        raise ValueError(f"plan.levels must be in 1..{NUM_LEVELS}")
    out = images.new_empty((b, n + 1, *images.shape[1:]))
    out[:, 0] = images
    if images.numel() == 0 or n == 0:
        out.copy_(images.unsqueeze(1).expand_as(out))
        return out
    rows_out = out.view(b * (n + 1), *images.shape[1:])  # out is contiguous: view (i, j+1) is row i*(n+1)+j+1
    with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
        x = images.float().contiguous()
        for t in torch.unique(types).tolist():
            pairs = (types == t).nonzero(as_tuple=True)[0]  # flat (sample, slot) indices
            src = (pairs // n).to(images.device)
            dst = (pairs // n * (n + 1) + pairs % n + 1).to(images.device)
            y = _run_batch(t, x.index_select(0, src), levels[pairs], generator)
            rows_out.index_copy_(0, dst, y.to(images.dtype))
    return out


def apply_plan(images: Tensor, plan: ReIQAPlan, generator: torch.Generator | None = None) -> Tensor:
    """Apply the steps of ``plan`` (``(B,S)``, column order, ``-1`` = empty step) to ``images (B,3,H,W)`` as a
    *composition*, like :func:`iqa_bench.distortions.apply_plan` does for ARNIQA plans; grouped per
    (step, type). With ``plan.as_steps()`` every row is one Re-IQA version (one distortion)."""
    _check_images(images)
    if not isinstance(plan, ReIQAPlan):
        raise ValueError(f"plan must be a ReIQAPlan, got {type(plan).__name__}")
    if plan.batch_size != images.shape[0]:
        raise ValueError(f"plan has batch_size {plan.batch_size} but images has {images.shape[0]} samples")
    return compose_steps(
        images,
        plan.type_ids,
        plan.levels,
        len(_ALL),
        _run_rows,
        generator,
        ordered=_ORDERED,
        chunk_rows=_cpu_chunk,
    )


def _run_batch(index: int, x: Tensor, levels: Tensor, generator: torch.Generator | None) -> Tensor:
    """:func:`_run` on a whole batch, a deterministic op's CPU chunks on threads (:func:`run_op_batch`)."""
    return run_op_batch(
        x, levels, _cpu_chunk(index), functools.partial(_run, index), index not in _ORDERED, generator
    )


def _run_rows(x: Tensor, rows: Tensor, t: int, levels: Tensor, generator: torch.Generator | None) -> None:
    """Replace ``x[rows]`` by op ``t`` at ``levels`` (one per row), for :func:`compose_steps`."""
    idx = rows.to(x.device)
    x.index_copy_(0, idx, _run(t, x.index_select(0, idx), levels, generator))


class ReIQASampler:
    """Re-IQA's chunk sampler (``IQAImageClass.__getitem__`` with ``--n_distortions 1``): per sample
    ``n_aug`` *distinct* types drawn uniformly without replacement from the bank and a level uniform over
    1..``num_levels`` for each.

    Args:
        n_aug: distorted views per image (README command: 11; code default: 7).
        num_levels: levels 1..num_levels are drawn uniformly (official: 5).
        names: restrict the bank to these names (None = all 26).
        sharpen_official: use the released, buggy ``imsharpenHi`` (false colour) instead of the intended
            Laplacian sharpening (default False: the intent, see docs/distortions.md).
    """

    def __init__(
        self,
        n_aug: int = 11,
        num_levels: int = 5,
        names: list[str] | None = None,
        sharpen_official: bool = False,
    ) -> None:
        allowed = list(globals()["names"]()) if names is None else list(names)
        unknown = sorted(set(allowed) - set(globals()["names"]()))
        if unknown or not allowed or len(set(allowed)) != len(allowed):
            raise ValueError(
                f"names must be distinct Re-IQA distortion names, got unknown {unknown} in {allowed}"
            )
        if isinstance(n_aug, bool) or not isinstance(n_aug, int) or not 1 <= n_aug <= len(allowed):
            raise ValueError(f"n_aug must be an int in 1..{len(allowed)}, got {n_aug!r}")
        if (
            isinstance(num_levels, bool)
            or not isinstance(num_levels, int)
            or not 1 <= num_levels <= NUM_LEVELS
        ):
            raise ValueError(f"num_levels must be an int in 1..{NUM_LEVELS}, got {num_levels!r}")
        self.names = allowed
        self.n_aug = n_aug
        self.num_levels = num_levels
        self.sharpen_official = bool(sharpen_official)
        ids = [type_id(a) for a in allowed]
        if self.sharpen_official:
            ids = [type_id("imsharpenHi_official") if a == "imsharpenHi" else i for a, i in zip(allowed, ids)]
        self._ids = torch.tensor(ids, dtype=torch.long)

    def __repr__(self) -> str:
        return (
            f"ReIQASampler(n_aug={self.n_aug}, num_levels={self.num_levels}, names={len(self.names)} types, "
            f"sharpen_official={self.sharpen_official})"
        )

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> ReIQAPlan:
        """A :class:`ReIQAPlan` ``(batch_size, n_aug)``, drawn on the generator's device, returned on ``device``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be an int >= 0, got {batch_size!r}")
        dev = generator.device if generator is not None else torch.device("cpu")
        order = torch.rand((batch_size, len(self._ids)), generator=generator, device=dev).argsort(dim=1)
        types = self._ids.to(dev)[order[:, : self.n_aug]]
        levels = torch.randint(
            1, self.num_levels + 1, (batch_size, self.n_aug), generator=generator, device=dev
        )
        return ReIQAPlan(types, levels).to(device)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ReIQAPlan]:
        """Sample a plan for ``images`` and return ``(chunk (B, n_aug+1, 3, H, W), plan)``."""
        _check_images(images)
        plan = self.sample(images.shape[0], generator, images.device)
        return apply_chunk(images, plan, generator), plan
