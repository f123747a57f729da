"""Every config group option composes, validates and instantiates; bad values fail naming the key."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import torch

from iqa_bench.errors import ConfigError, UserError
from iqa_bench.runs import build_eval_sets
from iqa_bench.utils.config_check import validate_config
from iqa_bench.utils.instantiate import instantiate
from iqa_bench.utils.resolvers import CONF_DIR, PROJECT_ROOT


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


GROUPS = [
    "method",
    "backbone",
    "distortion",
    "data/pretrain",
    "data/eval",
    "evaluator",
    "trainer",
    "callbacks",
    "logger",
    "experiment",
]


def test_every_group_has_options():
    for g in GROUPS:
        assert options(g), f"conf/{g} has no options"


def _fake_user_images(tmp_path, option: str) -> str:
    """A copy of the 24 Kodak photos in the layout of `data/pretrain=<option>`; returns the override to use it."""
    import shutil

    from iqa_bench.data.builtin import kodak_paths

    if option == "kadis700":
        folder, override = tmp_path / "kadis700k" / "ref_imgs", f"data.root={tmp_path}"
    else:
        folder = tmp_path / "photos" / "sub dir ü"  # nested, with a space and a non-ASCII name
        override = f"data.pretrain.path={tmp_path / 'photos'}"
    folder.mkdir(parents=True)
    for p in kodak_paths():
        shutil.copy(p, folder / p.name)
    return override


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_each_option_composes_and_instantiates(compose_cfg, tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if group == "experiment":
        overrides.append(
            "backbone.pretrained=false"
        )  # paper settings ask for ImageNet weights (offline here)
    if option == "reiqa_paper":
        overrides.append("method.content_encoder=null")  # it asks for a local MoCo-v2 weights file
    if not torch.cuda.is_available():
        overrides.append("trainer.accelerator=cpu")  # GPU trainer options instantiate on CPU-only machines
        overrides.append("trainer.precision=32-true")
    if group == "data/pretrain" and option in ("folder", "kadis700"):
        overrides.append(_fake_user_images(tmp_path, option))
    cfg = compose_cfg(overrides)
    validate_config(cfg)
    if group in ("method", "backbone", "distortion"):
        method = instantiate(cfg.method)
        assert method.feature_dim > 0
    elif group == "data/pretrain":
        dm = instantiate(cfg.data.pretrain, sample_format="arniqa_pairs")
        dm.setup()
        assert len(dm.dataset) >= (24 if option in ("folder", "kadis700") else 64)
    elif group == "data/eval" and option == "builtin_synthetic":
        sets = build_eval_sets(cfg)
        assert option in sets and len(sets[option]) > 0
    elif group == "data/eval":
        # real datasets: instantiated against fake official layouts in test_registry*.py; here with a data.root
        # that does not exist, which must be a one-line UserError naming the missing path (not a traceback)
        with pytest.raises(UserError, match="nowhere"):
            build_eval_sets(compose_cfg([*overrides, f"data.root={tmp_path / 'nowhere'}"]))
    elif group == "evaluator":
        assert instantiate(cfg.evaluator).n_splits >= 1
    elif group == "trainer":
        trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert trainer.max_steps == cfg.trainer.max_steps
    elif group in ("callbacks", "logger"):
        objs = [instantiate(c) for c in (cfg.get(group) or {}).values()]
        assert objs
    elif group == "experiment":
        instantiate(cfg.method)
        instantiate(cfg.trainer, logger=False, enable_checkpointing=False)


def test_resolved_config_has_every_top_level_key(compose_cfg):
    cfg = compose_cfg([])
    for key in [
        "method",
        "backbone",
        "distortion",
        "data",
        "evaluator",
        "trainer",
        "logger",
        "paths",
        "seed",
    ]:
        assert key in cfg, key
    assert cfg.method._target_.endswith("ARNIQA")
    assert list(cfg.data.eval) == ["builtin_synthetic"]


@pytest.mark.parametrize(
    "override,key",
    [
        ("data.pretrain.batch_size=-4", "data.pretrain.batch_size"),
        ("data.pretrain.crop_size=4", "data.pretrain.crop_size"),
        ("method.temperature=0", "method.temperature"),
        ("trainer.max_steps=0", "trainer.max_steps"),
        ("distortion.pristine_prob=1.5", "distortion.pristine_prob"),
        ("evaluator.n_splits=0", "evaluator.n_splits"),
        ("seed=-1", "seed"),
    ],
)
def test_bad_values_name_the_key(compose_cfg, override, key):
    cfg = compose_cfg([override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(cfg)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iqa_bench.train", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_cli_prints_resolved_config():
    res = _run_cli("--cfg", "job")
    assert res.returncode == 0, res.stderr
    assert "_target_: iqa_bench.methods.arniqa.ARNIQA" in res.stdout
    assert "batch_size: 16" in res.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (("method=nosuchmethod",), "method"),
        (("data.pretrain.batch_sizee=3",), "batch_sizee"),
        (("data.pretrain.batch_size=-1", "hydra.run.dir=/tmp/iqa_bench_badcfg"), "data.pretrain.batch_size"),
    ],
)
def test_cli_user_errors_are_one_message_without_traceback(args, needle):
    res = _run_cli(*args)
    assert res.returncode != 0
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


EXPECTED_DIM = {"tiny": 240, "resnet18": 512, "resnet50": 2048, "vgg16": 4096}


@pytest.mark.parametrize("method,backbone", list(itertools.product(options("method"), options("backbone"))))
def test_every_method_builds_on_every_backbone(compose_cfg, method, backbone):
    cfg = compose_cfg([f"method={method}", f"backbone={backbone}"])
    module = instantiate(cfg.method)
    assert module.feature_dim == EXPECTED_DIM[backbone]
    x = torch.rand(2, 3, 64, 64)
    f = module.features(x)
    assert f.shape == (2, EXPECTED_DIM[backbone])
    torch.testing.assert_close(f.norm(dim=1), torch.ones(2))


def test_pretrained_weights_offline_is_a_clear_user_error(compose_cfg, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_cfg(["backbone=resnet18", "backbone.pretrained=true"])
    with pytest.raises(UserError, match="backbone.pretrained=true.*resnet18"):
        instantiate(cfg.method)


def test_a_stray_key_is_a_config_error_naming_it(compose_cfg, tmp_path):
    """Direct and partial (`_partial_: true`, called later) targets: an unknown key names its full path."""
    cfg = compose_cfg(
        ["data/pretrain=folder", f"data.pretrain.path={tmp_path}", "+data.pretrain.images.sizee=3"]
    )
    with pytest.raises(ConfigError, match=r"data\.pretrain\.images\.sizee: not an option of .*folder_images"):
        instantiate(cfg.data.pretrain)
    cfg = compose_cfg(["+evaluator.n_splitz=3"])
    with pytest.raises(ConfigError, match=r"n_splitz: not an option of .*RidgeEvaluator"):
        instantiate(cfg.evaluator)


def test_gpu_trainers_turn_on_channels_last(compose_cfg):
    assert compose_cfg([]).backbone.channels_last is False
    for trainer in ("gpu", "ddp"):
        assert compose_cfg([f"trainer={trainer}"]).backbone.channels_last is True
    assert compose_cfg(["trainer=gpu", "backbone.channels_last=false"]).backbone.channels_last is False
