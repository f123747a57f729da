"""`python -m iqa_bench.evaluate ckpt=PATH data/eval=[NAME,...]`: evaluate a trained encoder with the shared
evaluator, without training.

* `ckpt=PATH`: a Lightning checkpoint written by `train` (any method). The method class is taken from the
  checkpoint's `iqa_bench_method` entry when present, else from the run's saved Hydra config (`<run>/.hydra/config.yaml`, key `method._target_`, found next to or one folder above the
  checkpoint, i.e. `<run>/checkpoints/last.ckpt`); for a checkpoint outside a run directory, from the `method=`
  group of this command. The constructor arguments come from the checkpoint's hyper-parameters (every method
  saves them) with the pretrained/weights options of every backbone config in them (backbone, Re-IQA's content
  encoder) switched off (the checkpoint's state dict replaces them); the checkpoint is read with
  `torch.load(weights_only=True)`.
* `ckpt=random`: the configured method/backbone at its random initialisation, seeded by `seed`; combine with
  `backbone.weights=FILE` to evaluate local backbone weights (e.g. ImageNet ones).

Writes into the run directory `results.csv` / `results.json`, `regressors/<encoder>__<dataset>.safetensors` (the
deployed ridge regressor, see `eval/regressor.py`) and `predictions/<encoder>__<dataset>.csv` (test predictions).
Extracted features are cached under `evaluator.cache_dir`, so a re-run (another evaluator setting, another alpha
grid) does not run the encoder again. See docs/evaluator.md.
"""

from __future__ import annotations

import copy
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

from iqa_bench.errors import ConfigError, UserError, exit_on_user_error
from iqa_bench.eval.cache import checkpoint_key, dataset_fingerprint
from iqa_bench.eval.regressor import save_regressor
from iqa_bench.eval.results import result_rows, summary_table, write_results
from iqa_bench.train import build_eval_sets, run_dir_of
from iqa_bench.utils import resolvers
from iqa_bench.utils.atomic import atomic_write_text
from iqa_bench.utils.checkpoint_io import weights_fingerprint
from iqa_bench.utils.config_check import validate_config
from iqa_bench.utils.instantiate import instantiate

log = logging.getLogger(__name__)

RANDOM = "random"
# optional checkpoint entry naming the method class ("module.Class"); used first when a method writes it
CKPT_METHOD_KEY = "iqa_bench_method"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _run_config_of(ckpt: Path) -> tuple[DictConfig | None, str | None]:
    """The saved Hydra config of the run that wrote `ckpt` (and its method choice), or (None, None)."""
    for d in (ckpt.parent, ckpt.parent.parent):
        cfg_file = d / ".hydra" / "config.yaml"
        if cfg_file.is_file():
            try:
                run_cfg = OmegaConf.load(cfg_file)
            except Exception:  # unreadable: fall back to this command's method
                return None, None
            choice = None
            hydra_file = d / ".hydra" / "hydra.yaml"
            if hydra_file.is_file():
                try:
                    choice = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices.method")
                except Exception:
                    choice = None
            return run_cfg, choice  # type: ignore[return-value]
    return None, None


def _resolve_class(target: str) -> type:
    from hydra.utils import get_class

    try:
        return get_class(target)
    except Exception as exc:
        raise UserError(f"ckpt: cannot import the method class {target!r} ({exc})") from None


def load_method_checkpoint(path: str | Path, cfg: DictConfig) -> tuple[L.LightningModule, dict[str, Any]]:
    """Load a method from a Lightning checkpoint (see the module docstring); returns (module in eval mode,
    info {'method', 'backbone', 'target'}). UserError for a missing/unreadable file or a mismatching state."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt: checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"ckpt: cannot read {path} as a checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"ckpt: {path} is not a Lightning checkpoint (no 'state_dict')")
    run_cfg, choice = _run_config_of(path)
    method_node = run_cfg.get("method") if run_cfg is not None else None
    target = ckpt.get(CKPT_METHOD_KEY) or (method_node or {}).get("_target_") or cfg.method._target_
    cls = _resolve_class(target)
    hparams = dict(ckpt.get("hyper_parameters") or {})
    if hparams:
        backbone = dict(hparams.get("backbone") or {})
        for key, value in list(hparams.items()):
            # every backbone config (the backbone, Re-IQA's content encoder, ...): the state dict below replaces
            # its pretrained/local weights, which need not be reachable any more
            if isinstance(value, dict) and "name" in value and ("pretrained" in value or "weights" in value):
                hparams[key] = {**value, "pretrained": False, "weights": None}
        try:
            module = cls(**hparams)
        except TypeError as exc:
            raise UserError(f"ckpt: {path} hyper-parameters do not fit {target} ({exc})") from None
    else:  # no saved hyper-parameters: build from the run's (or this command's) method config
        node = copy.deepcopy(cfg.method)
        module = instantiate(node)
        backbone = dict(_plain(cfg.backbone))
    result = module.load_state_dict(ckpt["state_dict"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"ckpt: {path} does not match {target} (missing {list(result.missing_keys)[:5]}, unexpected "
            f"{list(result.unexpected_keys)[:5]}); pass the right method=..."
        )
    method_name = choice or (cfg.get("method_name") if run_cfg is None else None) or cls.__name__.lower()
    info = {"method": str(method_name), "backbone": str(backbone.get("name", "?")), "target": target}
    return module.eval(), info


def _device(cfg: DictConfig) -> torch.device:
    dev = str(cfg.get("device") or "auto")
    if dev == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(dev)
    except RuntimeError as exc:
        raise ConfigError(f"device: {exc}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {dev!r} requested but CUDA is not available (use device=cpu)")
    return d


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
        atomic_write_text(run_dir / "predictions" / f"{labels.get(enc, enc)}__{ds}.csv", buf.getvalue())


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the checkpoint of a composed `evaluate` config; returns {"run_dir", "rows"}."""
    if OmegaConf.is_missing(cfg, "ckpt") or cfg.get("ckpt") in (None, ""):
        raise ConfigError("ckpt: required: ckpt=PATH (a Lightning checkpoint of a method) or ckpt=random")
    validate_config(cfg)
    run_dir = run_dir_of(cfg)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    torch.set_num_threads(cfg.get("num_threads") or torch.get_num_threads())
    torch.set_flush_denormal(True)
    device = _device(cfg)
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
        label = f"weights:{Path(str(weights)).name}" if weights else "random_init"
        info = {
            "method": str(cfg.method_name),
            "backbone": str(cfg.backbone.name),
            "target": cfg.method._target_,
        }
        enc_key: Any = {
            "random_init": _plain(cfg.method),
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
        encoders["random_init"] = _random_init(cfg).to(device)
        keys["random_init"] = {"random_init": _plain(cfg.method), "seed": int(cfg.seed)}
    ds_keys = {
        name: dataset_fingerprint(ds, _plain(OmegaConf.select(cfg, f"data.eval.{name}", default=None)))
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
    names = {"pretrained": "ckpt" if ckpt != RANDOM else "random_init"}
    for (enc, ds), model in getattr(evaluator, "regressors", {}).items():
        save_regressor(
            run_dir / "regressors" / f"{names.get(enc, enc)}__{ds}.safetensors",
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
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
