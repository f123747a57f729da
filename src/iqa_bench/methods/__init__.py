"""Pretraining methods: one LightningModule per method on the shared `PretrainMethod` base."""

from iqa_bench.methods.arniqa import ARNIQA
from iqa_bench.methods.base import PretrainMethod
from iqa_bench.methods.mlf import MLF
from iqa_bench.methods.rankiqa import RankIQA
from iqa_bench.methods.reiqa import ReIQA

METHODS: dict[str, type[PretrainMethod]] = {"arniqa": ARNIQA, "rankiqa": RankIQA, "mlf": MLF, "reiqa": ReIQA}

__all__ = ["ARNIQA", "METHODS", "MLF", "PretrainMethod", "RankIQA", "ReIQA"]
