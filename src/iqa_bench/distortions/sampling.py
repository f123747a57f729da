"""ARNIQA composition sampler (``get_distortions_composition``), vectorised over the batch.

A :class:`DistortionPlan` holds, per sample, an ordered list of (type id, level) steps padded with empty steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .bank import groups as bank_groups
from .bank import names as bank_names
from .bank import type_id

__all__ = ["ArniqaSampler", "DistortionPlan", "arniqa_level_probabilities"]


@dataclass
class DistortionPlan:
    """Per-sample distortion sequences.

    Attributes:
        type_ids: ``(B,S)`` int64, index into :func:`iqa_bench.distortions.names`; ``-1`` marks an empty step.
        levels: ``(B,S)`` int64 in 1..5 for real steps, 0 for empty steps.

    Steps are applied in column order; empty steps may sit anywhere and are skipped.
    """

    type_ids: Tensor
    levels: Tensor

    def __post_init__(self) -> None:
        if self.type_ids.dim() != 2 or self.type_ids.shape != self.levels.shape:
            raise ValueError(
                f"type_ids and levels must both be (B,S), got {tuple(self.type_ids.shape)} and "
                f"{tuple(self.levels.shape)}"
            )
        self.type_ids = self.type_ids.long()
        self.levels = self.levels.long()

    @property
    def batch_size(self) -> int:
        """Number of samples B."""
        return int(self.type_ids.shape[0])

    @property
    def num_steps(self) -> int:
        """Number of step slots S (including empty ones)."""
        return int(self.type_ids.shape[1])

    @property
    def device(self) -> torch.device:
        return self.type_ids.device

    def to(self, device: torch.device | str | None) -> DistortionPlan:
        """A copy on ``device`` (returns self when already there or ``device`` is None)."""
        if device is None or torch.device(device) == self.type_ids.device:
            return self
        return DistortionPlan(self.type_ids.to(device), self.levels.to(device))

    def num_distortions(self) -> Tensor:
        """``(B,)`` number of non-empty steps per sample (0 = pristine)."""
        return (self.type_ids >= 0).sum(dim=1)

    def describe(self, index: int) -> list[tuple[str, int]]:
        """Sample ``index``'s steps as ``[(name, level), ...]`` in application order (for logging)."""
        all_names = bank_names()
        t, lv = self.type_ids[index].tolist(), self.levels[index].tolist()
        return [(all_names[a], b) for a, b in zip(t, lv) if a >= 0]

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[tuple[str, int]]]) -> DistortionPlan:
        """Build a plan from per-sample lists of ``(name, level)`` (shorter lists are padded with empty steps)."""
        steps = max((len(s) for s in sequences), default=0)
        types = torch.full((len(sequences), steps), -1, dtype=torch.long)
        levels = torch.zeros((len(sequences), steps), dtype=torch.long)
        for i, seq in enumerate(sequences):
            for j, (name, level) in enumerate(seq):
                types[i, j] = type_id(name)
                levels[i, j] = int(level)
        return cls(types, levels)


def arniqa_level_probabilities(num_levels: int = 5, sigma: float = 2.5) -> Tensor:
    """``p_i ∝ exp(-i^2 / (2 sigma^2))`` for i = 0..num_levels-1 (float64, sums to 1)."""
    w = torch.tensor(
        [math.exp(-(i * i) / (2.0 * sigma * sigma)) for i in range(num_levels)], dtype=torch.float64
    )
    return w / w.sum()


class ArniqaSampler:
    """ARNIQA's degradation model: per sample ``n ~ U{1..max_distortions}`` distinct groups in random order,
    one member per group uniformly, a level per step with ``p_i ∝ exp(-i^2/(2 sigma^2))``, and with probability
    ``pristine_prob`` no distortion at all.

    Args:
        max_distortions: upper bound of ``n`` (capped at the number of groups).
        num_levels: levels 1..num_levels can be drawn (the level table is truncated).
        pristine_prob: probability that a sample gets no step.
        level_sigma: width of the level distribution.
        names: restrict the bank to these distortions (groups left empty are dropped); None = all 24.
    """

    def __init__(
        self,
        max_distortions: int = 4,
        num_levels: int = 5,
        pristine_prob: float = 0.05,
        level_sigma: float = 2.5,
        names: list[str] | None = None,
    ) -> None:
        if int(max_distortions) < 1:
            raise ValueError(f"max_distortions must be >= 1, got {max_distortions}")
        if not 1 <= int(num_levels) <= 5:
            raise ValueError(f"num_levels must be in 1..5, got {num_levels}")
        if not 0.0 <= float(pristine_prob) <= 1.0:
            raise ValueError(f"pristine_prob must be in [0,1], got {pristine_prob}")
        if not float(level_sigma) > 0:
            raise ValueError(f"level_sigma must be > 0, got {level_sigma}")
        allowed = list(bank_names()) if names is None else list(names)
        unknown = sorted(set(allowed) - set(bank_names()))
        if unknown:
            raise ValueError(f"names contains unknown distortions {unknown}")
        self.groups: dict[str, list[str]] = {}
        for g, members in bank_groups().items():
            kept = [m for m in members if m in allowed]
            if kept:
                self.groups[g] = kept
        if not self.groups:
            raise ValueError("names must contain at least one distortion")
        self.max_distortions = int(max_distortions)
        self.num_levels = int(num_levels)
        self.pristine_prob = float(pristine_prob)
        self.level_sigma = float(level_sigma)
        self.max_steps = min(self.max_distortions, len(self.groups))
        width = max(len(m) for m in self.groups.values())
        table = torch.full((len(self.groups), width), -1, dtype=torch.long)
        for gi, members in enumerate(self.groups.values()):
            table[gi, : len(members)] = torch.tensor([type_id(m) for m in members])
        self._members = table
        self._sizes = torch.tensor([len(m) for m in self.groups.values()], dtype=torch.long)
        self.level_probabilities = arniqa_level_probabilities(self.num_levels, self.level_sigma)

    def __repr__(self) -> str:
        return (
            f"ArniqaSampler(max_distortions={self.max_distortions}, num_levels={self.num_levels}, "
            f"pristine_prob={self.pristine_prob}, level_sigma={self.level_sigma}, groups={list(self.groups)})"
        )

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> DistortionPlan:
        """Draw a plan of ``batch_size`` sequences with ``S = min(max_distortions, #groups)`` step slots.

        Random draws happen on the generator's device (CPU when None); the plan is returned on ``device``
        (the draw device when None).
        """
        b, s, g = int(batch_size), self.max_steps, len(self.groups)
        if b < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        dev = generator.device if generator is not None else torch.device("cpu")
        members, sizes = self._members.to(dev), self._sizes.to(dev)
        n = torch.randint(1, s + 1, (b,), generator=generator, device=dev)
        order = torch.rand((b, g), generator=generator, device=dev).argsort(dim=1)[:, :s]  # distinct groups
        pick = torch.floor(torch.rand((b, s), generator=generator, device=dev) * sizes[order]).long()
        pick = torch.minimum(pick, sizes[order] - 1)
        types = members[order, pick]
        probs = self.level_probabilities.to(device=dev, dtype=torch.float32)
        if b * s > 0:
            levels = torch.multinomial(probs, b * s, replacement=True, generator=generator).view(b, s) + 1
        else:
            levels = torch.zeros((b, s), dtype=torch.long, device=dev)
        pristine = torch.rand((b,), generator=generator, device=dev) < self.pristine_prob
        empty = (torch.arange(s, device=dev).view(1, s) >= n.view(b, 1)) | pristine.view(b, 1)
        types = torch.where(empty, torch.full_like(types, -1), types)
        levels = torch.where(empty, torch.zeros_like(levels), levels)
        return DistortionPlan(types, levels).to(device)
