"""Command-line behaviour: pasteable run-folder names, runtime root, --help per CLI, the debug group, plain
progress lines without a terminal, no empty run folder after a config error."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from iqa_bench.errors import ConfigError
from iqa_bench.runs import cleanup_on_user_error, remove_if_empty
from iqa_bench.utils.progress import PlainLines, progress
from iqa_bench.utils.resolvers import CONF_DIR, PROJECT_ROOT, run_name, runtime_root

SRC = str(PROJECT_ROOT / "src")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], "default"),
        (["method=arniqa"], "method-arniqa"),
        (
            ["seed=1", "method=reiqa"],
            "method-reiqa__seed-1",
        ),  # sorted: order on the command line is irrelevant
        (["data/eval=[clive,koniq10k]", "method=rankiqa"], "data.eval-clive+koniq10k__method-rankiqa"),
        (["method.optimizer.lr=1e-3", "resume=false", "logger=wandb"], "method.optimizer.lr-1e-3"),
        (["+trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val-1.0"),
    ],
)
def test_run_folder_is_named_after_overrides_and_pastes_back(compose_cfg, overrides, expected):
    cfg = compose_cfg(overrides)
    run_dir = Path(cfg.hydra.run.dir)
    assert run_dir.name == expected and run_dir.parent.name == "train"
    # the folder's path is a valid unquoted Hydra override value (the README's `ckpt=runs/train/<name>/...`)
    value = f"runs/train/{run_dir.name}/checkpoints/last.ckpt"
    assert OverridesParser.create().parse_override(f"ckpt={value}").value() == value


def test_run_name_sanitises_and_bounds_length():
    assert run_name("x-'a b'") == "x-a_b"
    long = "__".join(f"key{i}-value{i}" for i in range(30))
    name = run_name(long)
    assert len(name) <= 120 and name != run_name(long + "x") and name == run_name(long)
    assert name.startswith("key0-value0__key1-value1__")  # shortest pairs first, in their order
    root = "data.eval.biq2021.root-" + "_home_user_datasets" * 6
    name = run_name(f"{root}__data.eval-builtin_synthetic+biq2021__method-arniqa__seed-1")
    parts = name.split("__")
    assert parts[:3] == ["data.eval-builtin_synthetic+biq2021", "method-arniqa", "seed-1"] and len(parts) == 4
    assert len(parts[-1]) == 12 and name != run_name(f"{root}x__method-arniqa__seed-1")
    assert len(run_name("x" * 130)) == 113  # a single long pair: cut, then the hash


def test_runtime_root_is_cwd_or_env(monkeypatch, tmp_path):
    monkeypatch.delenv("IQA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runtime_root() == tmp_path
    monkeypatch.setenv("IQA_ROOT", str(tmp_path / "elsewhere"))
    assert runtime_root() == tmp_path / "elsewhere"


def test_paths_follow_the_runtime_root(compose_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("IQA_ROOT", str(tmp_path))
    cfg = compose_cfg(["method=mlf"])
    assert Path(cfg.hydra.run.dir) == tmp_path / "runs" / "train" / "method-mlf"
    assert Path(cfg.paths.cache_dir) == tmp_path / "data" / "builtin"


@pytest.mark.parametrize(
    ("cli", "present", "absent"),
    [
        ("train", ["iqa-train", "method:", "data/pretrain:", "debug:", "logger:", "--cfg job --resolve"], []),
        (
            "evaluate",
            ["iqa-evaluate", "ckpt=PATH", "evaluator:", "builtin_synthetic"],
            ["logger:", "callbacks:"],
        ),
        ("predict", ["iqa-predict", "regressor=PATH", "images="], ["logger:", "method:", "evaluator:"]),
    ],
)
def test_help_lists_only_the_groups_of_that_cli(cli, present, absent):
    env = {**os.environ, "PYTHONPATH": SRC}
    res = subprocess.run(
        [sys.executable, "-m", f"iqa_bench.{cli}", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    for text in present:
        assert text in res.stdout, text
    for text in absent:
        assert text not in res.stdout, text
    if cli == "train":  # options are read from the config tree: every method file is listed
        methods = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
        assert f"method:         {', '.join(methods)}" in res.stdout


@pytest.mark.parametrize("name", ["default", "fdr", "limit", "profiler", "deterministic"])
def test_debug_group(compose_cfg, name):
    cfg = compose_cfg([f"debug={name}"])
    assert cfg.task_name == "debug" and cfg.resume is False and cfg.trainer.detect_anomaly is True
    assert cfg.evaluator.baseline_random_init is False
    expected = {
        "fdr": ("fast_dev_run", True),
        "limit": ("max_steps", 5),
        "profiler": ("profiler", "simple"),
        "deterministic": ("deterministic", True),
        "default": ("max_steps", 20),
    }[name]
    assert cfg.trainer[expected[0]] == expected[1]
    assert "/debug/" in cfg.hydra.run.dir.replace(os.sep, "/")


def test_plain_progress_lines_are_throttled():
    buf = io.StringIO()
    lines = PlainLines("train", total=10, every_s=3600, stream=buf)
    assert not lines.update(1)  # within every_s: nothing
    assert lines.update(10, "loss=0.5", force=True)
    out = buf.getvalue().strip().splitlines()
    assert len(out) == 1 and out[0].startswith("[train] 10/10 (100%) loss=0.5 | ")


def test_progress_without_terminal_yields_everything_and_ends_with_a_line(capsys):
    assert list(progress(range(4), "feat", every_s=3600)) == [0, 1, 2, 3]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [line for line in err if line.startswith("[feat] 4/4 (100%)")] and len(err) == 1


def test_config_error_leaves_no_empty_run_folder(compose_cfg, tmp_path):
    cfg = compose_cfg([f"hydra.run.dir={tmp_path / 'run'}"])
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml({"a": 1}))

    @cleanup_on_user_error
    def task(_cfg):
        raise ConfigError("trainer.max_steps: must be > 0")

    with pytest.raises(ConfigError):
        task(cfg)
    assert not run.exists()

    kept = tmp_path / "kept"
    (kept / "checkpoints").mkdir(parents=True)
    remove_if_empty(kept)  # a run with work in it is never removed
    assert (kept / "checkpoints").is_dir()


def test_config_error_cli_removes_the_run_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "IQA_ROOT": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-m", "iqa_bench.train", "data.pretrain.batch_size=-1", "print_config=false"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith(
        "error: data.pretrain.batch_size"
    )
    assert not (tmp_path / "runs" / "train" / "data.pretrain.batch_size--1").exists()


def test_runs_in_former_folder_names_still_resume_and_skip(compose_cfg, tmp_path):
    from iqa_bench.runs import legacy_run_dir, resume_checkpoint, stored_results

    cfg = compose_cfg(["seed=2", "method=mlf", "resume=true"])
    new = tmp_path / "train" / "method-mlf__seed-2"
    old = tmp_path / "train" / "method=mlf,seed=2"  # resume=true is excluded from folder names, then and now
    assert legacy_run_dir(new) is None and resume_checkpoint(cfg, new) is None
    (old / "checkpoints").mkdir(parents=True)
    import torch

    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 3}, old / "checkpoints" / "last.ckpt")
    assert legacy_run_dir(new) == old
    assert resume_checkpoint(cfg, new) == str(old / "checkpoints" / "last.ckpt")
    assert stored_results(new) is None
    (old / "results.csv").write_text("method\n")
    (old / "results.json").write_text('{"rows": [{"srcc": 0.5}], "meta": {"checkpoint": "c"}}')
    assert stored_results(new)["rows"] == [{"srcc": 0.5}]
    with_new = compose_cfg(["seed=2", "method=mlf", "resume=false"])
    assert resume_checkpoint(with_new, new) is None


def test_runs_in_former_long_folder_names_still_resume(compose_cfg, tmp_path, monkeypatch):
    """Names over 120 characters were once cut at 100 characters; such a run is still found and resumed."""
    import hashlib

    from hydra.core.hydra_config import HydraConfig

    from iqa_bench.runs import legacy_run_dir, resume_checkpoint
    from iqa_bench.utils.resolvers import run_name

    root = "/data/" + "very_long_folder_name/" * 5
    cfg = compose_cfg([f"data.root={root}", "method=mlf", "seed=2", "resume=true"])
    dirname = f"data.root-{root}__method-mlf__seed-2"
    from omegaconf import OmegaConf

    hc = OmegaConf.create(OmegaConf.to_container(HydraConfig.get()))
    hc.job.override_dirname = dirname  # what Hydra sets for a launched job
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: hc))
    full = dirname.replace("/", ".")
    old = tmp_path / "train" / f"{full[:100]}-{hashlib.sha1(full.encode()).hexdigest()[:12]}"
    new = tmp_path / "train" / run_name(dirname)
    assert "method-mlf__seed-2" in new.name and new != old
    assert legacy_run_dir(new) is None
    import torch

    (old / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 3}, old / "checkpoints" / "last.ckpt")
    assert legacy_run_dir(new) == old
    assert resume_checkpoint(cfg, new) == str(old / "checkpoints" / "last.ckpt")


def test_plain_progress_bar_in_a_lightning_fit(capsys):
    """Without a terminal, training progress is plain `[train] step/max` lines (here one per step: every_s=0),
    ending with the final step, and Lightning's own tqdm bar is replaced."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from iqa_bench.utils.progress import PlainProgressBar

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def training_step(self, batch, _idx):
            loss = self.lin(batch[0]).pow(2).mean()
            self.log("loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    bar = PlainProgressBar(every_s=0)
    trainer = L.Trainer(
        max_steps=3, callbacks=[bar], logger=False, enable_checkpointing=False, enable_model_summary=False
    )
    trainer.fit(Tiny(), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))
    assert trainer.progress_bar_callback is bar
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[train]")]
    assert [ln.split(" (")[0] for ln in lines] == ["[train] 1/3", "[train] 2/3", "[train] 3/3", "[train] 3/3"]
    assert "loss=" in lines[-1] and "(100%)" in lines[-1]


def test_entry_points_do_not_import_each_other():
    """train / evaluate / predict / report share helpers through runs.py, checkpoints.py and api.py only."""
    import ast

    entry = {"train", "evaluate", "predict", "report"}
    for name in entry:
        tree = ast.parse((PROJECT_ROOT / "src" / "iqa_bench" / f"{name}.py").read_text())
        imported = {
            node.module.split(".")[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("iqa_bench.")
        } | {
            alias.name.split(".")[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name.startswith("iqa_bench.")
        }
        assert not imported & (entry - {name}), f"{name}.py imports {imported & entry}"


def test_evaluation_metrics_are_logged_at_the_final_step():
    from iqa_bench.train import log_results

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[dict, int | None]] = []

        def log_metrics(self, metrics, step=None):
            self.calls.append((metrics, step))

        def save(self) -> None:
            pass

    rec = Recorder()
    rows = [
        {"split": "median", "dataset": "d", "ckpt": "pretrained", "srcc": 0.5, "plcc": 0.4, "krcc": None},
        {"split": "0", "dataset": "d", "ckpt": "pretrained", "srcc": 0.1, "plcc": 0.1, "krcc": 0.1},
    ]
    log_results([rec], rows, step=700)
    assert rec.calls == [({"eval/d/pretrained/srcc": 0.5, "eval/d/pretrained/plcc": 0.4}, 700)]
