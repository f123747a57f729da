"""Run-directory helpers shared by the entry points (`train`, `evaluate`, `predict`).

A run directory is Hydra's output directory: `<paths.log_dir>/<task>/<run name>`. For `train` the run name is
derived from the command-line overrides (see `iqa_bench.utils.resolvers.run_name`), so the same command always
maps to the same folder: that is what makes resume-after-kill and skipping finished sweep jobs work.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from iqa_bench.errors import ConfigError, user_error_in_chain
from iqa_bench.utils.instantiate import instantiate

F = TypeVar("F", bound=Callable[..., Any])


def run_dir_of(cfg: DictConfig) -> Path:
    """The run's output directory (Hydra's, or `paths.output_dir` when composed without Hydra's runtime)."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def is_multirun() -> bool:
    """True inside a Hydra multirun job."""
    return HydraConfig.initialized() and str(HydraConfig.get().mode) == "RunMode.MULTIRUN"


def job_number() -> int:
    """The job's index in a multirun (0 for a single run or outside Hydra)."""
    if not is_multirun():
        return 0
    try:
        return int(HydraConfig.get().job.num or 0)
    except Exception:  # noqa: BLE001 - unset (MISSING) outside a launcher
        return 0


def build_eval_sets(cfg: DictConfig) -> dict[str, Any]:
    """Instantiate every dataset under `data.eval` (a mapping name -> dataset config)."""
    return {name: instantiate(ds_cfg) for name, ds_cfg in (cfg.data.get("eval") or {}).items()}


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint to resume from: `ckpt_path` if set (must exist and load), else `run_dir/checkpoints/last.ckpt`
    when `resume` is true and a previous (killed or finished) run left one there; a damaged one is passed over for
    the newest loadable checkpoint (see `checkpoint_io.resume_from`)."""
    from iqa_bench.utils.checkpoint_io import checkpoint_problem, resume_from

    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise ConfigError(f"ckpt_path: no checkpoint file at {path}")
        if (problem := checkpoint_problem(path)) is not None:
            raise ConfigError(f"ckpt_path: {path} cannot be resumed from: {problem}")
        return str(path)
    if not cfg.get("resume", True):
        return None
    found = resume_from(run_dir / "checkpoints")
    if found is not None:
        return found
    old = legacy_run_dir(run_dir)  # a run started before folders were named key-value__key-value
    if old is not None and (old / "checkpoints").is_dir():
        found = resume_from(old / "checkpoints")
        if found is not None:
            print(f"Found this run under its former folder name {old}", flush=True)
        return found
    return None


def stored_results(run_dir: Path) -> dict[str, Any] | None:
    """The finished run in `run_dir` (results.json written by a previous job; also under the run's former folder
    name, see `legacy_run_dir`), or None."""
    if not (run_dir / "results.csv").is_file() and (old := legacy_run_dir(run_dir)) is not None:
        run_dir = old
    path = run_dir / "results.json"
    if not (run_dir / "results.csv").is_file() or not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: run the job again (results are written atomically, so this is rare)
    return {
        "run_dir": run_dir,
        "rows": payload.get("rows", []),
        "checkpoint": payload["meta"].get("checkpoint"),
    }


def keep_previous_metrics(run_dir: Path) -> None:
    """Lightning's CSV logger deletes an existing metrics.csv; keep the killed run's as metrics.<n>.csv."""
    old = run_dir / "metrics.csv"
    if old.is_file():
        n = 1
        while (run_dir / f"metrics.{n}.csv").exists():
            n += 1
        old.rename(run_dir / f"metrics.{n}.csv")


def remove_if_empty(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's `.hydra/` snapshot and log files (a run that failed
    on its configuration before doing any work), so a typo leaves no empty folder behind."""
    try:
        entries = list(run_dir.iterdir())
    except OSError:
        return
    if any(p.name != ".hydra" and not (p.is_file() and p.suffix == ".log") for p in entries):
        return
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


def cleanup_on_user_error(fn: F) -> F:
    """Decorator for a Hydra task: when it fails with a `UserError` (bad config or input), remove the run
    directory if the job left nothing in it but Hydra's snapshot, then re-raise."""

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(cfg, *args, **kwargs)
        except Exception as exc:
            if user_error_in_chain(exc) is not None and HydraConfig.initialized():
                remove_if_empty(Path(HydraConfig.get().runtime.output_dir))
            raise

    return wrapper  # type: ignore[return-value]


def select_device(cfg: DictConfig) -> torch.device:
    """`cfg.device`: auto (CUDA when available) | cpu | cuda | cuda:N; ConfigError for an unusable choice."""
    dev = str(cfg.get("device") or "auto")
    return parse_device(dev)


def parse_device(dev: str) -> torch.device:
    """A torch device from "auto" | "cpu" | "cuda" | "cuda:N"; ConfigError naming `device` otherwise."""
    if dev == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(dev)
    except RuntimeError as exc:
        raise ConfigError(f"device: {exc}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {dev!r} requested but CUDA is not available (use device=cpu)")
    return d


def legacy_run_dir(run_dir: Path) -> Path | None:
    """The folder an older version named this run (`key=value` pairs joined by `,`, e.g. `method=arniqa,seed=1`,
    or a long `key-value__...` name cut at 100 characters), when it exists beside `run_dir`; None otherwise or
    outside a Hydra run."""
    import hashlib
    import re

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    try:
        exclude = set(hc.job.config.override_dirname.exclude_keys)
        overrides = list(hc.overrides.task)
    except Exception:  # noqa: BLE001 - no override information: nothing to look for
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    lines = sorted(o.input_line for o in parsed if o.key_or_group not in exclude and o.input_line)
    name = re.sub(r"[^A-Za-z0-9=,._+\-\[\]]", "_", ",".join(lines)) or "default"
    if len(name) > 120:
        name = f"{name[:100]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"
    candidates = [run_dir.parent / name]
    # key-value__key-value names over 120 characters were once cut at 100 characters (+ hash), losing short pairs
    # such as method and seed behind a long data path
    from iqa_bench.utils.resolvers import sanitized_override_name

    try:
        full = sanitized_override_name(str(hc.job.override_dirname))
    except Exception:  # noqa: BLE001 - composed without a job (tests, the compose API)
        full = ""
    if len(full) > 120:
        candidates.append(run_dir.parent / f"{full[:100]}-{hashlib.sha1(full.encode()).hexdigest()[:12]}")
    return next((c for c in candidates if c != run_dir and c.is_dir()), None)
