"""Typed structured-config schemas: derived from the targets' signatures, registered for every option of the
method / evaluator / data-eval groups, and checked by Hydra at compose time; value ranges at run start."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, List, Optional  # noqa: UP035

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from iqa_bench.errors import ConfigError
from iqa_bench.utils.config_check import validate_config
from iqa_bench.utils.resolvers import CONF_DIR, PROJECT_ROOT
from iqa_bench.utils.schemas import SCHEMA_GROUPS, _omegaconf_type, schema_for


def test_type_hints_map_to_what_omegaconf_checks():
    assert _omegaconf_type(int) is int and _omegaconf_type(bool) is bool
    assert _omegaconf_type(int | None) == Optional[int]  # noqa: UP045
    assert _omegaconf_type(tuple[float, ...]) == List[float]  # noqa: UP006
    assert _omegaconf_type(list[str]) == List[str]  # noqa: UP006
    assert _omegaconf_type(dict[str, int]) is Any and _omegaconf_type(str | int) is Any


def test_schema_follows_the_signature():
    schema = schema_for("iqa_bench.eval.finetune.FinetuneEvaluator")
    node = OmegaConf.structured(schema)
    assert node._target_ == "iqa_bench.eval.finetune.FinetuneEvaluator"
    assert node.epochs == 10 and node.freeze_backbone is True and node.ratios == [0.7, 0.1, 0.2]
    assert "results" not in node  # a factory default OmegaConf cannot hold is left out
    with pytest.raises(ValidationError):
        OmegaConf.merge(node, {"epochs": "ten"})
    with pytest.raises(ConfigKeyError):
        OmegaConf.merge(node, {"n_splitz": 3})
    assert schema_for("iqa_bench.methods.rankiqa.RankIQA") is None  # **extra: any key is valid
    assert schema_for("no.such.Target") is None


@pytest.mark.parametrize("group", SCHEMA_GROUPS)
def test_every_option_lists_its_schema(group):
    """A new option (e.g. a new dataset yaml) needs `- /schema/<group>/<name>@_here_` in its defaults unless its
    target takes **kwargs."""
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        node = OmegaConf.load(path)
        target = node.get("_target_") or OmegaConf.select(node, "method._target_")
        if schema_for(str(target)) is None:
            continue
        assert f"/schema/{group}/{path.stem}@" in path.read_text(), path


@pytest.mark.parametrize(
    "override,key",
    [
        ("evaluator.epochs=ten", "evaluator.epochs"),
        ("evaluator.n_splits=1.5", "evaluator.n_splits"),
        ("data.eval.builtin_synthetic.long_side=big", "data.eval.builtin_synthetic.long_side"),
        ("method.temperature=warm", "method.temperature"),
    ],
)
def test_wrong_types_fail_at_compose_time_naming_the_key(compose_cfg, override, key):
    extra = ["evaluator=finetune"] if "epochs" in override else []
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg([*extra, override])
    assert key in f"{info.value} {info.value.__cause__}"


def test_a_typo_in_a_config_file_fails_at_compose_time(compose_cfg, tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "typo.yaml").write_text("# @package _global_\nevaluator:\n  n_splitz: 3\n")
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg([f"hydra.searchpath=[file://{tmp_path}]", "experiment=typo"])
    assert "n_splitz" in f"{info.value} {info.value.__cause__}"


def test_evaluator_range_checks_run_at_start_not_after_training(compose_cfg):
    cfg = compose_cfg(["evaluator=finetune", "evaluator.epochs=0"])
    with pytest.raises(ConfigError, match=r"evaluator\.epochs must be >= 1, got 0"):
        validate_config(cfg)
    cfg = compose_cfg(["evaluator.num_alphas=0"])
    with pytest.raises(ConfigError, match=r"evaluator\.num_alphas must be >= 1"):
        validate_config(cfg)
    validate_config(compose_cfg(["evaluator=finetune", "experiment=smoke"]))  # ridge-only keys accepted


def test_cli_wrong_type_is_one_message_without_traceback():
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "iqa_bench.train",
            "evaluator=finetune",
            "evaluator.epochs=ten",
            "--cfg",
            "job",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert res.returncode != 0 and "evaluator.epochs" in res.stderr and "Traceback" not in res.stderr
