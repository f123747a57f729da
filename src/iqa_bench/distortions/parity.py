"""Comparison of the bank with reference outputs of the official ARNIQA functions (test/report tooling).

The reference folder (``shared/reference/arniqa`` in the development setup; never needed at run time) holds
``pristine.npz`` (uint8 HWC crops keyed by image), ``<name>.npz`` (keys ``<image>_L<level>``),
``compositions.npz`` and ``manifest.json``. Outputs are compared in uint8 (``round(clip(y)*255)``):

* deterministic ops: at least 99% of the pixels of every image within +-1 grey level of the reference;
* stochastic ops: the mean absolute change from the pristine crop (averaged over images and over
  ``seeds`` realisations of ours) within 15% (+0.5 grey level) of the reference's, and the same monotone
  ordering of levels wherever the reference's is monotone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .bank import get_spec
from .sampling import DistortionPlan
from .transform import apply, apply_plan

__all__ = [
    "MAD_ABS_TOL",
    "MAD_REL_TOL",
    "WITHIN1_MIN",
    "ParityResult",
    "Reference",
    "check_composition",
    "check_level",
    "mad_ordering_ok",
    "psnr",
]

WITHIN1_MIN = 0.99
MAD_REL_TOL = 0.15
MAD_ABS_TOL = 0.5


def to_u8(y: torch.Tensor) -> np.ndarray:
    """``(B,3,H,W)`` float in [0,1] -> ``(B,H,W,3)`` uint8 by ``round(clip(y)*255)`` (the oracle's rule)."""
    return (y.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in grey levels of two uint8 arrays."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


class Reference:
    """Lazy reader of an ARNIQA reference folder; each ``.npz`` is decompressed once and cached."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = json.loads((self.root / "manifest.json").read_text())
        self.images: list[str] = list(self.manifest["images"])
        self._files: dict[str, dict[str, np.ndarray]] = {}

    def file(self, stem: str) -> dict[str, np.ndarray]:
        if stem not in self._files:
            with np.load(self.root / f"{stem}.npz") as z:
                self._files[stem] = {k: z[k] for k in z.files}
        return self._files[stem]

    def pristine_u8(self) -> np.ndarray:
        """``(N,H,W,3)`` uint8 pristine crops in manifest image order."""
        p = self.file("pristine")
        return np.stack([p[k] for k in self.images])

    def pristine(self) -> torch.Tensor:
        """``(N,3,H,W)`` float32 crops, ``u8/255`` like the official ``ToTensor``."""
        return torch.from_numpy(self.pristine_u8()).permute(0, 3, 1, 2).float() / 255.0

    def outputs(self, name: str, level: int) -> np.ndarray:
        """``(N,H,W,3)`` uint8 reference outputs of ``name`` at ``level``."""
        f = self.file(name)
        return np.stack([f[f"{k}_L{level}"] for k in self.images])

    def compositions(self) -> list[dict]:
        return list(self.manifest["compositions"]["entries"])

    def composition_outputs(self, index: int) -> np.ndarray:
        f = self.file("compositions")
        return np.stack([f[f"c{index}_{k}"] for k in self.images])


@dataclass
class ParityResult:
    """Outcome of one (op, level) or composition comparison.

    ``criterion`` is ``"within1"`` (``value`` = worst per-image fraction of pixels within +-1) or ``"mad"``
    (``value`` = our mean absolute change, ``reference`` = the oracle's, ``tolerance`` = allowed gap).
    """

    name: str
    level: int
    criterion: str
    value: float
    reference: float
    tolerance: float
    passed: bool
    psnr_db: float
    ours_mad: float
    ref_mad: float


def _stochastic(name: str) -> bool:
    return get_spec(name).stochastic


def _mad_result(
    name: str, level: int, ours: list[np.ndarray], ref: np.ndarray, pristine: np.ndarray
) -> ParityResult:
    ours_mad = float(np.mean([mad(o, pristine) for o in ours]))
    ref_mad = mad(ref, pristine)
    tol = MAD_REL_TOL * ref_mad + MAD_ABS_TOL
    return ParityResult(
        name,
        level,
        "mad",
        ours_mad,
        ref_mad,
        tol,
        abs(ours_mad - ref_mad) <= tol,
        float(np.median([psnr(o[i], ref[i]) for o in ours for i in range(len(ref))])),
        ours_mad,
        ref_mad,
    )


def _within1_result(
    name: str, level: int, ours: np.ndarray, ref: np.ndarray, pristine: np.ndarray
) -> ParityResult:
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    frac = float(min((diff[i] <= 1).mean() for i in range(len(ref))))
    p = float(min(psnr(ours[i], ref[i]) for i in range(len(ref))))
    return ParityResult(
        name,
        level,
        "within1",
        frac,
        WITHIN1_MIN,
        0.0,
        frac >= WITHIN1_MIN,
        p,
        mad(ours, pristine),
        mad(ref, pristine),
    )


def check_level(reference: Reference, name: str, level: int, seeds: int = 4) -> ParityResult:
    """Compare ``name`` at ``level`` on the reference crops (criterion chosen by the op's stochastic flag)."""
    x = reference.pristine()
    pristine = reference.pristine_u8()
    ref = reference.outputs(name, level)
    if _stochastic(name):
        ours = [
            to_u8(apply(name, x, level, generator=torch.Generator().manual_seed(1000 * level + s)))
            for s in range(seeds)
        ]
        return _mad_result(name, level, ours, ref, pristine)
    return _within1_result(name, level, to_u8(apply(name, x, level)), ref, pristine)


def mad_ordering_ok(ours: list[float], reference: list[float]) -> bool:
    """True when ``ours`` is monotone in the same direction wherever ``reference`` is strictly monotone."""
    ref_up = all(b > a for a, b in zip(reference, reference[1:]))
    ref_down = all(b < a for a, b in zip(reference, reference[1:]))
    if ref_up:
        return all(b >= a for a, b in zip(ours, ours[1:]))
    if ref_down:
        return all(b <= a for a, b in zip(ours, ours[1:]))
    return True


def check_composition(reference: Reference, index: int, seeds: int = 4) -> ParityResult:
    """Compare composed sequence ``index`` of ``compositions.npz`` (within1 if every step is deterministic)."""
    entry = reference.compositions()[index]
    steps = [(s["name"], int(s["level"])) for s in entry["sequence"]]
    x = reference.pristine()
    pristine = reference.pristine_u8()
    ref = reference.composition_outputs(index)
    plan = DistortionPlan.from_sequences([steps] * x.shape[0])
    label = " -> ".join(f"{n}:L{lv}" for n, lv in steps)
    if any(_stochastic(n) for n, _ in steps):
        ours = [
            to_u8(apply_plan(x, plan, generator=torch.Generator().manual_seed(50 + s))) for s in range(seeds)
        ]
        return _mad_result(label, 0, ours, ref, pristine)
    return _within1_result(label, 0, to_u8(apply_plan(x, plan)), ref, pristine)
