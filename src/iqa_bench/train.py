"""`python -m iqa_bench.train method=arniqa`: pretrain a method, then evaluate it with the configured evaluator.

Thin Hydra entry point: validate the config, seed, instantiate datamodule / method / trainer / loggers, fit, then
probe the pretrained encoder (and the same encoder at its initialisation: `init=random`, plus `init=imagenet` with
pretrained weights) and write `results.csv` and
`results.json` into the run directory.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from iqa_bench.errors import exit_on_user_error
from iqa_bench.eval.results import result_rows, summary_table, write_results
from iqa_bench.methods.baselines import init_baselines
from iqa_bench.runs import (
    build_eval_sets,
    cleanup_on_user_error,
    is_multirun,
    job_number,
    keep_previous_metrics,
    resume_checkpoint,
    run_dir_of,
    stored_results,
)
from iqa_bench.utils import resolvers
from iqa_bench.utils.config_check import validate_config
from iqa_bench.utils.instantiate import instantiate
from iqa_bench.utils.printing import print_config_tree
from iqa_bench.utils.progress import PlainProgressBar, is_terminal

log = logging.getLogger(__name__)


class _DropAdverts(logging.Filter):
    """Lightning prints an advertisement for its cloud logger at every fit; keep the console for information."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage().lower()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())


def _fit_and_evaluate(
    cfg: DictConfig,
    run_dir: Path,
    method: L.LightningModule,
    baselines: dict[str, L.LightningModule],
    datamodule: L.LightningDataModule,
    eval_sets: dict[str, Any],
    loggers: list[Any],
    ckpt_path: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Fit, evaluate (pretrained + the initialisation baselines), write and log the results. Returns (rows, last
    checkpoint)."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    for lg in loggers:
        if hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.trainer.get("enable_progress_bar", True) and not is_terminal():
        # a log file (SLURM, CI) cannot show tqdm's bar: plain lines every progress_every_s instead
        callbacks.append(PlainProgressBar(float(cfg.get("progress_every_s") or 30)))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    if ckpt_path:
        print(f"Resuming from {ckpt_path}", flush=True)
    trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt_path)

    checkpoint = save_final_checkpoint(trainer, callbacks)

    rows = []
    if eval_sets:
        evaluator = instantiate(cfg.evaluator)
        encoders = {"pretrained": method.eval()}
        encoders.update({name: enc.to(method.device) for name, enc in baselines.items()})
        rows = evaluator.run(encoders, eval_sets, device=method.device)
    meta = {
        "method": cfg.method_name,
        "backbone": cfg.backbone.name,
        "seed": cfg.seed,
        "ckpt": "pretrained",
        "checkpoint": checkpoint,
        "run_dir": str(run_dir),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    rows = result_rows(rows, meta)
    write_results(run_dir, rows, meta)
    if rows:
        print(
            f"\nEvaluation ({cfg.evaluator._target_.rsplit('.', 1)[-1]}; median over splits):\n"
            + summary_table(rows),
            flush=True,
        )
    log_results(loggers, rows, step=trainer.global_step)
    return rows, checkpoint


def objective(rows: list[dict[str, Any]]) -> float | None:
    """The value returned to a sweeper: the pretrained encoder's median VALIDATION SRCC (the val SRCC at the chosen
    alpha / epoch), averaged over the evaluation sets; test parts never enter it. None without results."""
    vals = [
        float(r["val_srcc"])
        for r in rows
        if r.get("split") == "median"
        and r.get("ckpt") == "pretrained"
        and r.get("val_srcc") not in (None, "")
    ]
    return float(np.mean(vals)) if vals else None


def save_final_checkpoint(trainer: L.Trainer, callbacks: list[Any]) -> str | None:
    """Write `last.ckpt` for the final weights (ModelCheckpoint's periodic `last.ckpt` may be older than the last
    step), atomically; returns its path (None without a ModelCheckpoint callback)."""
    for cb in callbacks:
        if isinstance(cb, L.pytorch.callbacks.ModelCheckpoint) and cb.dirpath:
            path = str(Path(cb.dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}")
            trainer.save_checkpoint(path, weights_only=False)
            cb.last_model_path = path
            return path
    return None


def log_results(loggers: list[Any], rows: list[dict[str, Any]], step: int | None = None) -> None:
    """Median metrics of every (encoder, dataset) to each logger (`eval/<dataset>/<ckpt>/<metric>`) at `step`
    (the final global step of training, so they line up with the training curves); W&B also gets the table."""
    medians = [r for r in rows if r.get("split") == "median"]
    metrics = {
        f"eval/{r['dataset']}/{r['ckpt']}/{m}": float(r[m])
        for r in medians
        for m in ("srcc", "plcc", "krcc")
        if r.get(m) is not None
    }
    for lg in loggers:
        try:
            if metrics:
                lg.log_metrics(metrics, step=step)
            if hasattr(lg, "log_table") and medians:
                cols = ["method", "backbone", "ckpt", "dataset", "srcc", "plcc", "krcc", "alpha"]
                lg.log_table(
                    key="eval/results", columns=cols, data=[[r.get(c) for c in cols] for r in medians]
                )
            lg.save()
        except Exception as exc:  # noqa: BLE001 - a logging backend must never lose the written results
            log.warning("could not log results to %s: %s", type(lg).__name__, exc)


def close_loggers(loggers: list[Any], failed: bool) -> None:
    """Finish every logger's run, also when the job failed (a W&B run left open would swallow the next
    multirun job's metrics)."""
    for lg in loggers:
        try:
            lg.finalize("failed" if failed else "success")
            if type(lg).__name__ == "WandbLogger":
                import wandb

                if wandb.run is not None:
                    wandb.finish(exit_code=1 if failed else 0)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not close logger %s: %s", type(lg).__name__, exc)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run pretraining + evaluation for a composed config; returns {"run_dir", "rows", "checkpoint"}."""
    validate_config(cfg)
    run_dir = run_dir_of(cfg)
    if cfg.get("skip_existing", True) and is_multirun() and (done := stored_results(run_dir)) is not None:
        print(f"Skipping {run_dir}: results.csv already exists (skip_existing=true)", flush=True)
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*too few batches.*|.*number of training batches.*")
    warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # Hydra has already written .hydra/ into the run dir; a resumed run's metrics.csv is kept (keep_previous_metrics)
    warnings.filterwarnings("ignore", message=".*Experiment logs directory .* exists and is not empty.*")
    # our sampler resumes mid-epoch exactly (data/sampling.py), which Lightning cannot know
    warnings.filterwarnings(
        "ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*"
    )
    if cfg.get("print_config", True) and job_number() == 0:
        print_config_tree(cfg)  # once per sweep; every job's resolved config is in its .hydra/config.yaml
    torch.set_num_threads(cfg.get("num_threads") or torch.get_num_threads())
    torch.set_flush_denormal(True)  # denormal floats make CPU convolutions orders of magnitude slower
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    method = instantiate(cfg.method)
    baselines = init_baselines(cfg, method)  # init=random (+ init=imagenet with pretrained weights)
    if cfg.get("compile", False):
        # in place (nn.Module.compile): parameter names, hence checkpoints, stay those of the eager module
        method.backbone.compile(**(cfg.get("compile_options") or {}))
    datamodule = instantiate(cfg.data.pretrain, sample_format=method.sample_format)
    ckpt_path = resume_checkpoint(cfg, run_dir)
    if ckpt_path:
        keep_previous_metrics(run_dir)  # before any logger touches the run dir (the CSV logger deletes it)
    eval_sets = build_eval_sets(cfg)  # fail on bad eval config before training starts
    # `~evaluator`: train only, like `data/eval=[]`. An experiment that tunes evaluator keys leaves them behind
    # without a `_target_` when the evaluator itself is removed: that is no evaluator either.
    if eval_sets and "_target_" not in (cfg.get("evaluator") or {}):
        print("No evaluator configured (~evaluator): training without evaluation.", flush=True)
        eval_sets = {}

    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    failed = True
    try:
        rows, checkpoint = _fit_and_evaluate(
            cfg, run_dir, method, baselines, datamodule, eval_sets, loggers, ckpt_path
        )
        failed = False
    finally:
        close_loggers(loggers, failed)
    print(f"\nRun directory: {run_dir}", flush=True)
    return {"run_dir": run_dir, "rows": rows, "checkpoint": checkpoint}


@hydra.main(version_base="1.3", config_path=str(resolvers.CONF_DIR), config_name="train")
@exit_on_user_error
@cleanup_on_user_error
def main(cfg: DictConfig) -> float | None:
    """Returns the sweep objective (for hydra/sweeper=optuna...): see `objective`."""
    return objective(train(cfg)["rows"])


if __name__ == "__main__":
    main()
