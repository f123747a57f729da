"""Dataset registry: config/CLI name -> evaluation-set class.

Every class is an `EvalSet` (uint8 images, `scores` higher = better, `refs` or None, `labels`), so the evaluator
treats them all alike. Each real dataset reads its official files under its `root` (see `data/README.md`);
`conf/data/eval/<name>.yaml` instantiates it with `root: ${data.root}/<folder>`.

Adding a dataset: write `iqa_bench/data/datasets/<name>.py` with a `FileEvalSet` subclass (parse the score file
into `Entry`s in `read_entries`), add it to `DATASETS` below and add `conf/data/eval/<name>.yaml`.
"""

from __future__ import annotations

from iqa_bench.data.datasets.base import FileEvalSet
from iqa_bench.data.datasets.biq2021 import BIQ2021
from iqa_bench.data.datasets.clive import CLIVE
from iqa_bench.data.datasets.csiq import CSIQ
from iqa_bench.data.datasets.csv_folder import CsvFolder
from iqa_bench.data.datasets.flive import FLIVE
from iqa_bench.data.datasets.kadid10k import KADID10k
from iqa_bench.data.datasets.koniq10k import KonIQ10k
from iqa_bench.data.datasets.live import LiveIQA
from iqa_bench.data.datasets.pipal import PIPAL
from iqa_bench.data.datasets.spaq import SPAQ
from iqa_bench.data.datasets.tid2013 import TID2013
from iqa_bench.data.eval_sets import BuiltinSyntheticEval, EvalSet
from iqa_bench.errors import ConfigError

__all__ = ["DATASETS", "FileEvalSet", "get_dataset"]

DATASETS: dict[str, type[EvalSet]] = {
    "builtin_synthetic": BuiltinSyntheticEval,
    "live": LiveIQA,
    "csiq": CSIQ,
    "tid2013": TID2013,
    "kadid10k": KADID10k,
    "koniq10k": KonIQ10k,
    "clive": CLIVE,
    "flive": FLIVE,
    "spaq": SPAQ,
    "biq2021": BIQ2021,
    "pipal": PIPAL,
    "csv": CsvFolder,
}


def get_dataset(name: str) -> type[EvalSet]:
    """The evaluation-set class registered as `name` (case-insensitive); `ConfigError` listing the known names."""
    try:
        return DATASETS[name.lower()]
    except (KeyError, AttributeError):
        raise ConfigError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
