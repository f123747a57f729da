"""The README's commands run as printed.

* fast: every `iqa-train` / `iqa-evaluate` / `iqa-predict` command in the README's bash blocks composes with the
  shipped config tree (groups, options and keys exist), only documented placeholders (`<run>`) are used, and the
  workflow's train command writes to the folder its evaluate command reads the checkpoint from;
* slow: the workflow block (train -> evaluate -> predict -> report) runs verbatim in a fresh directory, `<run>`
  replaced by the folder `iqa-evaluate` created.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from iqa_bench.utils.resolvers import CONF_DIR, PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
PLACEHOLDERS = {"<run>"}  # documented right below the workflow block
CLIS = {"iqa-train": "train", "iqa-evaluate": "evaluate", "iqa-predict": "predict", "iqa-report": "report"}


def bash_blocks(text: str) -> list[list[str]]:
    """The commands of every ```bash block (comments and blank lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    out = []
    for b in blocks:
        cmds = [ln.split(" #")[0].strip() for ln in b.splitlines()]
        out.append([c for c in cmds if c and not c.startswith("#")])
    return out


def workflow_block() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Workflow") :]
    return bash_blocks(section)[0]


def _compose(config_name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def test_workflow_block_is_the_documented_chain():
    cmds = workflow_block()
    assert [c.split()[0] for c in cmds] == ["iqa-train", "iqa-evaluate", "iqa-predict", "iqa-report"]
    used = set(re.findall(r"<[a-z_]+>", " ".join(cmds)))
    assert used <= PLACEHOLDERS, f"undocumented placeholders {used - PLACEHOLDERS}"


def test_every_readme_command_composes(monkeypatch, tmp_path):
    monkeypatch.setenv("IQA_ROOT", str(tmp_path))
    checked = 0
    for block in bash_blocks(README.read_text()):
        for cmd in block:
            argv = shlex.split(cmd.replace("<run>", "2026-01-01_00-00-00"))
            if argv[0] not in CLIS or CLIS[argv[0]] == "report" or any(a.startswith("--") for a in argv[1:]):
                continue
            args = [a for a in argv[1:] if a != "-m"]
            if "-m" in argv:  # a sweep: compose its first job
                args = [re.sub(r"=([^\[\]]*?),.*$", r"=\1", a) if "[" not in a else a for a in args]
            if any(a.startswith(("hydra/launcher=", "hydra/sweeper=")) for a in args):
                plugin = "hydra_submitit_launcher" if "launcher" in cmd else "hydra_optuna_sweeper"
                pytest.importorskip(f"hydra_plugins.{plugin}")
            _compose(CLIS[argv[0]], args)
            checked += 1
    assert checked >= 12


def test_workflow_paths_line_up(monkeypatch, tmp_path, compose_cfg):
    monkeypatch.setenv("IQA_ROOT", str(tmp_path))
    train, evaluate, predict, report = (shlex.split(c) for c in workflow_block())
    cfg = compose_cfg(train[1:])
    run_dir = Path(cfg.hydra.run.dir).relative_to(tmp_path).as_posix()
    ckpt = next(a.split("=", 1)[1] for a in evaluate if a.startswith("ckpt="))
    assert ckpt == f"{run_dir}/checkpoints/last.ckpt"
    assert report[1] == run_dir
    images = next(a.split("=", 1)[1] for a in predict if a.startswith("images="))
    assert (PROJECT_ROOT / images).is_dir()


@pytest.mark.slow
def test_workflow_runs_verbatim(tmp_path):
    """train -> evaluate -> predict -> report exactly as printed, from a fresh directory holding the repository's
    files the commands name (the built-in data cache is shared to save time)."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "src").symlink_to(PROJECT_ROOT / "src")
    (PROJECT_ROOT / "data" / "builtin").mkdir(parents=True, exist_ok=True)
    (work / "data" / "builtin").symlink_to(PROJECT_ROOT / "data" / "builtin")
    env = {k: v for k, v in os.environ.items() if k != "IQA_ROOT"}
    env["PYTHONPATH"] = str(PROJECT_ROOT / "src")
    for cmd in workflow_block():
        if "<run>" in cmd:
            runs = sorted((work / "runs" / "evaluate").iterdir())
            assert len(runs) == 1
            cmd = cmd.replace("<run>", runs[0].name)
        argv = shlex.split(cmd)
        argv = [sys.executable, "-m", f"iqa_bench.{CLIS[argv[0]]}", *argv[1:]]
        res = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, f"{cmd}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
        assert "weights_only" not in res.stdout + res.stderr  # no stray library notice on every run
    pred = next((work / "runs" / "predict").iterdir()) / "predictions.csv"
    lines = pred.read_text().splitlines()
    assert lines[0] == "path,score" and len(lines) == 1 + 24  # the 24 shipped Kodak photos
    report = work / "runs" / "train" / "experiment-smoke" / "report"
    assert "| arniqa/tiny |" in (report / "report.md").read_text()
    assert any(p.suffix == ".png" for p in report.iterdir())
