"""A Hydra callback that checks, before Hydra writes anything, that the run (or sweep) folder can be written.

Hydra creates the run folder and writes `.hydra/` into it before our entry point runs, so a read-only, full or
misspelt run folder would otherwise end in Hydra's own error report. Wired into every primary config:

    hydra:
      callbacks:
        run_dir_check:
          _target_: iqa_bench.utils.run_dir.RunDirCheck

Prints `error: hydra.run.dir: cannot write ...` (one line) and exits with status 2, like every other bad input.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def write_problem(folder: Path) -> str | None:
    """None if `folder` exists or can be created, and a file can be created in it; else why not (one line)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


class RunDirCheck(Callback):
    """Exit with one line (status 2) when `hydra.run.dir` / `hydra.sweep.dir` cannot be written."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        try:
            HydraConfig.instance().set_config(config)  # the folder names interpolate ${hydra:...}
            folder = Path(str(OmegaConf.select(config, key)))
        except Exception:  # noqa: BLE001 - cannot resolve here: leave it to Hydra
            return
        problem = write_problem(folder)
        if problem is not None:
            print(
                f"error: {key}: cannot write the run folder {folder}: {problem}", file=sys.stderr, flush=True
            )
            sys.exit(2)
