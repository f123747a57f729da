"""Pretraining methods: one LightningModule per method on the shared `PretrainMethod` base."""

from iqa_bench.methods.arniqa import ARNIQA
from iqa_bench.methods.base import PretrainMethod

METHODS: dict[str, type[PretrainMethod]] = {"arniqa": ARNIQA}

__all__ = ["ARNIQA", "METHODS", "PretrainMethod"]
