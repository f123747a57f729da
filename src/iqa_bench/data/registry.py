"""Dataset registry, derived from the `data/eval` config group: config/CLI name -> evaluation-set class.

The config group is the only list of datasets: `conf/data/eval/<name>.yaml` names its class in `_target_`, and
this module reads those files (no second table to keep in sync). Every class is an `EvalSet` (uint8 images,
`scores` higher = better, `refs` or None, `labels`), so the evaluator treats them all alike.

Adding a dataset: write `iqa_bench/data/datasets/<name>.py` with a `FileEvalSet` subclass (parse the score file
into `Entry`s in `read_entries`) and add `conf/data/eval/<name>.yaml` whose `_target_` points at it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from iqa_bench.data.datasets.base import FileEvalSet
from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.errors import ConfigError
from iqa_bench.utils.resolvers import CONF_DIR

__all__ = ["DATASETS", "FileEvalSet", "dataset_names", "datasets", "get_dataset"]  # noqa: F822 - DATASETS: __getattr__

EVAL_GROUP = CONF_DIR / "data" / "eval"


def dataset_names() -> list[str]:
    """Names of the `data/eval` config group (its yaml files), sorted."""
    return sorted(p.stem for p in EVAL_GROUP.glob("*.yaml"))


@cache
def _target(name: str) -> type[EvalSet]:
    from hydra.utils import get_object
    from omegaconf import OmegaConf

    path: Path = EVAL_GROUP / f"{name}.yaml"
    target = OmegaConf.load(path).get("_target_")
    if not isinstance(target, str):
        raise ConfigError(f"{path}: no _target_ naming the dataset class")
    try:
        cls = get_object(target)
    except Exception as exc:  # noqa: BLE001 - ImportError, AttributeError, ...
        raise ConfigError(f"{path}: _target_ {target} cannot be imported ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, EvalSet)):
        raise ConfigError(f"{path}: _target_ {target} is not an EvalSet")
    return cls


def get_dataset(name: str) -> type[EvalSet]:
    """The evaluation-set class of config `data/eval/<name>` (case-insensitive); `ConfigError` listing the known
    names."""
    known = dataset_names()
    key = name.lower() if isinstance(name, str) else None
    if key not in known:
        raise ConfigError(f"unknown dataset {name!r}; known: {known}")
    return _target(key)


def datasets() -> dict[str, type[EvalSet]]:
    """Every dataset of the config group: name -> class."""
    return {n: _target(n) for n in dataset_names()}


def __getattr__(attr: str) -> dict[str, type[EvalSet]]:
    """`DATASETS` (name -> class), read from the config group when first asked for."""
    if attr == "DATASETS":
        return datasets()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
