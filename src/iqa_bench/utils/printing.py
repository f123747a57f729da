"""Console output: the resolved config as a tree, printed at the start of a run."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

DEFAULT_ORDER = (
    "method",
    "backbone",
    "distortion",
    "data",
    "evaluator",
    "trainer",
    "callbacks",
    "logger",
    "paths",
)


def print_config_tree(cfg: DictConfig, order: Sequence[str] = DEFAULT_ORDER) -> None:
    """Print the resolved config as a rich tree (one branch per top-level group, YAML inside); plain YAML when the
    output is not a terminal that rich can style."""
    from rich import print as rprint
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("CONFIG", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if OmegaConf.is_config(value) else str(value)
        tree.add(str(key)).add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    rprint(tree)
