"""`python -m iqa_bench.evaluate ckpt=PATH data/eval=[NAME,...]`: evaluate a trained encoder with the shared
evaluator, without training.

* `ckpt=PATH`: a Lightning checkpoint written by `train` (any method), loaded by
  `iqa_bench.checkpoints.load_method_checkpoint` (method class from the checkpoint or its run's saved config; for a
  checkpoint outside a run directory, from the `method=` group of this command).
* `ckpt=random`: the configured method/backbone at its random initialisation, seeded by `seed`; combine with
  `backbone.weights=FILE` to evaluate local backbone weights (e.g. ImageNet ones).

Writes into the run directory `results.csv` / `results.json`, `regressors/<encoder>__<dataset>.safetensors` (the
deployed ridge regressor, see `eval/regressor.py`) and `predictions/<encoder>__<dataset>.csv` (test predictions).
Extracted features are cached under `evaluator.cache_dir`, so a re-run (another evaluator setting, another alpha
grid) does not run the encoder again. See docs/evaluator.md.
"""

from __future__ import annotations

import csv
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from iqa_bench.checkpoints import RANDOM, load_method_checkpoint, plain
from iqa_bench.errors import ConfigError, UserError, exit_on_user_error
from iqa_bench.eval.cache import checkpoint_key, dataset_fingerprint
from iqa_bench.eval.regressor import save_regressor
from iqa_bench.eval.results import result_rows, summary_table, write_results
from iqa_bench.methods.baselines import RANDOM as INIT_RANDOM
from iqa_bench.methods.baselines import init_label
from iqa_bench.runs import build_eval_sets, cleanup_on_user_error, run_dir_of, select_device
from iqa_bench.utils import resolvers
from iqa_bench.utils.atomic import atomic_write_text
from iqa_bench.utils.checkpoint_io import weights_fingerprint
from iqa_bench.utils.config_check import validate_config
from iqa_bench.utils.instantiate import instantiate

log = logging.getLogger(__name__)


def file_label(label: str) -> str:
    """An encoder label as used in file names: `init=random` -> `init-random`, so paths can be pasted into a
    Hydra command line (which cannot parse `=` inside a value)."""
    return label.replace("=", "-").replace(":", "-")


def _random_init(cfg: DictConfig) -> L.LightningModule:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return instantiate(cfg.method).eval()


def _write_predictions(
    run_dir: Path, preds: dict[tuple[str, str], dict[str, Any]], labels: dict[str, str]
) -> None:
    for (enc, ds), p in preds.items():
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["split", "item", "label", "pred", "mos"])
        for row in zip(p["split"], p["item"], p["label"], p["pred"], p["mos"]):
            w.writerow([row[0], row[1], row[2], f"{row[3]:.6g}", f"{row[4]:.6g}"])
        atomic_write_text(
            run_dir / "predictions" / f"{file_label(labels.get(enc, enc))}__{ds}.csv", buf.getvalue()
        )


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the checkpoint of a composed `evaluate` config; returns {"run_dir", "rows"}."""
    if OmegaConf.is_missing(cfg, "ckpt") or cfg.get("ckpt") in (None, ""):
        raise ConfigError("ckpt: required: ckpt=PATH (a Lightning checkpoint of a method) or ckpt=random")
    validate_config(cfg)
    run_dir = run_dir_of(cfg)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    torch.set_num_threads(cfg.get("num_threads") or torch.get_num_threads())
    torch.set_flush_denormal(True)
    device = select_device(cfg)
    ckpt = str(cfg.ckpt)
    if ckpt != RANDOM and not Path(ckpt).expanduser().is_file():
        raise UserError(
            f"ckpt: checkpoint not found: {ckpt} (give a .ckpt file written by train, or ckpt=random)"
        )

    eval_sets = build_eval_sets(cfg)  # fail on bad data config before loading anything heavy
    if not eval_sets:
        raise ConfigError("data/eval: no evaluation set given (e.g. data/eval=[builtin_synthetic])")
    evaluator = instantiate(cfg.evaluator)
    weights = cfg.backbone.get("weights")
    if ckpt == RANDOM:
        module = _random_init(cfg)
        label = f"weights:{Path(str(weights)).name}" if weights else init_label(cfg.backbone)
        info = {
            "method": str(cfg.method_name),
            "backbone": str(cfg.backbone.name),
            "target": cfg.method._target_,
        }
        enc_key: Any = {
            "random_init": plain(cfg.method),
            "seed": int(cfg.seed),
            "weights": checkpoint_key(weights) if weights and Path(str(weights)).is_file() else None,
        }
    else:
        module, info = load_method_checkpoint(ckpt, cfg)
        info["weights_sha256"] = weights_fingerprint(module)  # recorded with the regressor: predict checks it
        label = str(Path(ckpt).expanduser().resolve())
        enc_key = {"checkpoint": checkpoint_key(label), "target": info["target"]}
    module = module.to(device)
    encoders: dict[str, Any] = {"pretrained": module}
    keys: dict[str, Any] = {"pretrained": enc_key}
    if getattr(evaluator, "baseline_random_init", False) and ckpt != RANDOM:
        encoders[INIT_RANDOM] = _random_init(cfg).to(device)
        keys[INIT_RANDOM] = {"random_init": plain(cfg.method), "seed": int(cfg.seed)}
    ds_keys = {
        name: dataset_fingerprint(ds, plain(OmegaConf.select(cfg, f"data.eval.{name}", default=None)))
        for name, ds in eval_sets.items()
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    raw_rows = evaluator.run(encoders, eval_sets, device=device, encoder_keys=keys, dataset_keys=ds_keys)

    meta = {
        "method": info["method"],
        "backbone": info["backbone"],
        "seed": int(cfg.seed),
        "ckpt": label,
        "checkpoint": None if ckpt == RANDOM else label,
        "run_dir": str(run_dir),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    rows = result_rows(raw_rows, meta)
    write_results(run_dir, rows, meta)
    names = {"pretrained": "ckpt" if ckpt != RANDOM else label}
    for (enc, ds), model in getattr(evaluator, "regressors", {}).items():
        save_regressor(
            run_dir / "regressors" / f"{file_label(names.get(enc, enc))}__{ds}.safetensors",
            model,
            {
                "method": info["method"],
                "backbone": info["backbone"],
                "ckpt": label if enc == "pretrained" else enc,
                "dataset": ds,
                "scales": [float(s) for s in evaluator.scales],
                "crop_size": evaluator.crop_size,
                "method_target": info["target"],
                **(
                    {"weights_sha256": info["weights_sha256"]}
                    if enc == "pretrained" and ckpt != RANDOM
                    else {}
                ),
            },
        )
    if cfg.get("save_predictions", True):
        _write_predictions(run_dir, getattr(evaluator, "predictions", {}), names)
    if rows:
        print(f"\nResults ({evaluator.protocol}; median over splits):\n" + summary_table(rows), flush=True)
    print(f"\nRun directory: {run_dir}", flush=True)
    return {"run_dir": run_dir, "rows": rows}


@hydra.main(version_base="1.3", config_path=str(resolvers.CONF_DIR), config_name="evaluate")
@exit_on_user_error
@cleanup_on_user_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
