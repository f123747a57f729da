"""Shared fixtures: compose the Hydra config like `python -m iqa_bench.train` does, without a subprocess."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from iqa_bench.utils.resolvers import CONF_DIR, PROJECT_ROOT

if TYPE_CHECKING:
    import lightning as L

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED = PROJECT_ROOT.parent / "shared"


def in_ci() -> bool:
    """True when the environment says this is a CI run (`CI=true`, as GitHub Actions, GitLab and others set)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_shared(path: Path, what: str) -> Path:
    """`path` (reference material in ../shared beside the repository) when it exists. Otherwise skip with a
    reason in a user's clone, but fail under `CI=true`: CI has ../shared, so a missing folder there is a broken
    setup that would silently turn the parity tests off."""
    if path.exists():
        return path
    reason = f"{what} not found at {path} (reference material beside the repository; a plain clone has none)"
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def bare_cpu_trainer(root: Path, max_steps: int, **kwargs: Any) -> L.Trainer:
    """A Lightning trainer on the CPU for `max_steps` steps in `root`, with no logger, checkpointing, progress bar
    or model summary; `kwargs` go to `L.Trainer` (e.g. `accumulate_grad_batches=2`)."""
    import lightning as L  # not at module level: most tests never build a trainer

    return L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **kwargs,
    )


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_cfg(overrides, config_name="train") -> resolved-able config whose run dir is tmp_path/run.

    The Hydra runtime node is set (as in a real run), so `${hydra:...}` interpolations resolve; the run dir is
    tmp_path/run unless an override sets `hydra.run.dir`. Built-in data is
    cached in the project's data/builtin (shared between tests, generated once)."""

    def _compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
        run_dir = tmp_path / "run"
        for o in overrides:  # an explicit hydra.run.dir wins, as on the command line
            if o.startswith("hydra.run.dir="):
                run_dir = Path(o.split("=", 1)[1])
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def trained_run(compose_cfg, tmp_path):
    """A fake train run directory of the smoke ARNIQA method at a seeded random init: `.hydra/config.yaml` +
    `checkpoints/last.ckpt` in Lightning's layout. Returns (checkpoint path, the module it holds)."""
    import torch
    from omegaconf import OmegaConf

    from iqa_bench.utils.instantiate import instantiate

    cfg = compose_cfg(["experiment=smoke"])
    torch.manual_seed(123)
    method = instantiate(cfg.method)
    run = tmp_path / "trainrun"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save({"method": OmegaConf.to_container(cfg.method)}, run / ".hydra" / "config.yaml")
    (run / "checkpoints").mkdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save(
        {
            "state_dict": method.state_dict(),
            "hyper_parameters": dict(method.hparams),
            "global_step": 3,
            "pytorch-lightning_version": "2",
        },
        ckpt,
    )
    return ckpt, method


@pytest.fixture
def evaluated_regressor(compose_cfg, tmp_path, trained_run) -> Callable[..., Path]:
    """evaluated_regressor(*overrides) -> the ridge regressor file that `evaluate` saves for `trained_run`'s
    checkpoint on a tiny built-in synthetic set (2 distortions x 2 levels, 3 splits, 7 alphas), run in
    tmp_path/eval with its feature cache in tmp_path/c; `overrides` are extra evaluate overrides."""
    from iqa_bench.evaluate import evaluate

    ckpt, _ = trained_run

    def _evaluate(*overrides: str) -> Path:
        ev = evaluate(
            compose_cfg(
                [
                    f"ckpt={ckpt}",
                    "data.eval.builtin_synthetic.distortions=[gaublur,whitenoise]",
                    "data.eval.builtin_synthetic.levels=[1,5]",
                    "evaluator.n_splits=3",
                    "evaluator.num_alphas=7",
                    *overrides,
                    f"hydra.run.dir={tmp_path / 'eval'}",
                    f"evaluator.cache_dir={tmp_path}/c",
                ],
                config_name="evaluate",
            )
        )
        return ev["run_dir"] / "regressors" / "ckpt__builtin_synthetic.safetensors"

    return _evaluate
