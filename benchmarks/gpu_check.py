"""First check on a GPU (`make gpu-check`, ≤ 8 minutes on one GPU): correctness and speed of the GPU path.

    python benchmarks/gpu_check.py [--out runs/gpu_check] [--steps 200] [--reiqa-steps 100] [--batch 256]

1. Bank agreement, CUDA vs CPU, per op and level: the 24 ARNIQA ops and the 26 Re-IQA ops on the same images.
   Deterministic ops must agree pixel-wise (mean |Δ| ≤ 1e-3 and ≤ 1 % of pixels off by more than 2/255: float
   reductions and rounding to the uint8 grid may differ by one code value); stochastic ops draw different random
   numbers on each device, so their strength (mean |output − input|) must agree within 15 % (+ 2e-3).
2. Bank throughput: ARNIQA compositions (1–4 distortions, 5 % pristine) on a batch of 256 224² crops; target
   ≥ 20,000 crops/s on an H100-class GPU and ≤ 4 GiB peak memory.
3. Training steps per method in its paper setting (experiment=arniqa_paper, rankiqa_live, mlf_live, reiqa_paper;
   random init since no weights are downloaded; Re-IQA without its content encoder; one micro-batch per step) in
   bf16 autocast: steps/s, the distortion share of the step (prepare_batch time / full step time; target ≤ 10 %),
   peak memory, first and last losses (finite).

Writes `<out>/gpu_check.json` and `<out>/gpu_check.md` (a table for docs/benchmarks.md); exit status 1 if a check or
target fails, 2 (one line on stderr) without CUDA.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from iqa_bench.utils.codec_pool import codec_workers

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded from a file path
from gpu_check_report import failures, markdown  # noqa: E402

METHOD_EXPERIMENTS = {
    "arniqa": ["experiment=arniqa_paper"],
    "rankiqa": ["experiment=rankiqa_live"],
    "mlf": ["experiment=mlf_live"],
    "reiqa": ["experiment=reiqa_paper", "method.content_encoder=null"],
}
DET_MEAN_TOL, DET_PIXEL_TOL, DET_PIXEL_FRAC = 1e-3, 2.0 / 255.0, 0.01
STOCH_REL_TOL, STOCH_ABS_TOL, STOCH_SE = 0.15, 2e-3, 4.0


# -- 1. agreement -------------------------------------------------------------------------------------------------
def natural_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """`(n, 3, size, size)` float32 crops in [0, 1] of scikit-image's sample photographs (random if unavailable)."""
    g = torch.Generator().manual_seed(seed)
    try:
        from skimage import data

        photos = [
            torch.from_numpy(getattr(data, k)()).permute(2, 0, 1) for k in ("astronaut", "chelsea", "coffee")
        ]
    except Exception:  # noqa: BLE001 - skimage is a dependency; keep the check usable without it
        photos = [(torch.rand(3, 512, 512, generator=g) * 255).to(torch.uint8)]
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        if min(p.shape[1:]) < size:
            p = torch.nn.functional.interpolate(p[None].float(), size=(2 * size, 2 * size), mode="bilinear")[
                0
            ]
        top = int(torch.randint(0, p.shape[1] - size + 1, (1,), generator=g))
        left = int(torch.randint(0, p.shape[2] - size + 1, (1,), generator=g))
        out.append(p[:, top : top + size, left : left + size].float() / 255.0)
    return torch.stack(out).clamp(0, 1)


def compare_outputs(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, stochastic: bool) -> dict[str, Any]:
    """Agreement of two outputs `a`, `b` of one op on input `x` (all `(B, 3, H, W)`, any devices).

    Deterministic: mean |a − b| ≤ 1e-3 and at most 1 % of values differ by more than 2/255. Stochastic: the mean
    distortion strengths |a − x| and |b − x| agree within 15 % (relative) + 2e-3, or within 4 standard errors of
    the difference of two means over the per-image strengths when the op's strength varies a lot from draw to
    draw (a few large random blocks on a small crop): another draw of the same op must pass, a systematically
    stronger or weaker op must not."""
    x, a, b = (t.detach().float().cpu() for t in (x, a, b))
    if stochastic:
        per_a, per_b = ((t - x).abs().flatten(1).mean(1).double() for t in (a, b))
        sa, sb = float(per_a.mean()), float(per_b.mean())
        n = per_a.numel()
        se = math.sqrt(float(per_a.var() + per_b.var()) / n) if n > 1 else 0.0
        tol = max(STOCH_REL_TOL * max(sa, sb) + STOCH_ABS_TOL, STOCH_SE * se)
        ok = math.isfinite(sa) and math.isfinite(sb) and math.isfinite(tol) and abs(sa - sb) <= tol
        return {"stochastic": True, "strength_a": sa, "strength_b": sb, "tolerance": tol, "ok": bool(ok)}
    d = (a - b).abs()
    mean, frac = float(d.mean()), float((d > DET_PIXEL_TOL).float().mean())
    ok = math.isfinite(mean) and mean <= DET_MEAN_TOL and frac <= DET_PIXEL_FRAC
    return {
        "stochastic": False,
        "mean_abs": mean,
        "max_abs": float(d.max()),
        "frac_off": frac,
        "ok": bool(ok),
    }


def bank_agreement(
    device_a: str,
    device_b: str,
    batch: int = 10,
    size: int = 96,
    banks: Sequence[str] = ("arniqa", "reiqa"),
    ops: Sequence[str] | None = None,
    seeds: tuple[int, int] = (0, 0),
) -> list[dict[str, Any]]:
    """One row per (bank, op): every level 1..5 (levels cycle over the batch) on `device_a` vs `device_b`, with
    generators seeded `seeds` (stochastic ops draw other numbers on another device anyway)."""
    from iqa_bench import distortions

    x = natural_crops(batch, size)
    levels = torch.arange(batch) % 5 + 1
    rows = []
    for bank in banks:
        mod = distortions if bank == "arniqa" else distortions.reiqa_bank
        spec_of = distortions.bank.get_spec if bank == "arniqa" else distortions.reiqa_bank.get_spec
        for name in ops or mod.names():
            if name not in mod.names():
                continue
            outs = []
            for dev, seed in zip((device_a, device_b), seeds):
                g = torch.Generator(device=dev).manual_seed(seed)
                outs.append(mod.apply(name, x.to(dev), levels.to(dev), generator=g))
            rows.append({"bank": bank, "op": name, **compare_outputs(x, *outs, spec_of(name).stochastic)})
    return rows


# -- 2. bank throughput -------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bank_throughput(device: str, batch: int = 256, size: int = 224, repeats: int = 20) -> dict[str, Any]:
    """ARNIQA compositions per second on `batch` crops of `size`² (a fresh plan per call) and peak memory."""
    from iqa_bench import distortions

    dev = torch.device(device)
    x = natural_crops(batch, size).to(dev)
    sampler = distortions.ArniqaSampler()
    g = torch.Generator(device=dev).manual_seed(0)

    def once() -> None:
        distortions.apply_plan(x, sampler.sample(batch, generator=g, device=dev), generator=g)

    once()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(repeats):
        once()
    _sync(dev)
    dt = (time.perf_counter() - t0) / repeats
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    return {
        "batch": batch,
        "size": size,
        "crops_per_s": batch / dt,
        "ms_per_batch": 1e3 * dt,
        "peak_gib": peak,
    }


# -- 3. training steps --------------------------------------------------------------------------------------------
def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def sample_batch(sample_format: str, crop: int, batch_size: int, folder: Path) -> dict[str, torch.Tensor]:
    """One real uint8 batch of `sample_format` from 512×384 PNGs of scikit-image photos written to `folder`."""
    from PIL import Image
    from torch.utils.data import default_collate

    from iqa_bench.data.pretrain import SAMPLE_FORMATS

    folder.mkdir(parents=True, exist_ok=True)
    crops = natural_crops(6, 384, seed=1)
    paths = []
    for i, c in enumerate(crops):
        img = torch.nn.functional.interpolate(c[None], size=(384, 512), mode="bilinear")[0]
        arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        paths.append(folder / f"img{i}.png")
        Image.fromarray(arr).save(paths[-1])
    ds = SAMPLE_FORMATS[sample_format](paths, crop)
    torch.manual_seed(0)
    return default_collate([ds[i % len(ds)] for i in range(batch_size)])


def compose(overrides: Sequence[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from iqa_bench.utils.resolvers import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides))


def train_steps(
    method_name: str,
    device: str,
    steps: int,
    folder: Path,
    overrides: Sequence[str] = (),
    amp: bool = True,
    warmup: int = 5,
) -> dict[str, Any]:
    """`steps` training steps (prepare_batch + forward + backward + optimiser step) of `method_name` in its paper
    setting, with bf16 autocast when `amp`. Returns steps/s, distortion share, peak memory, first/last losses."""
    from iqa_bench.utils.instantiate import instantiate

    dev = torch.device(device)
    trainer = "trainer=gpu" if dev.type == "cuda" else "trainer=cpu"
    cfg = compose(
        [
            f"method={method_name}",
            *METHOD_EXPERIMENTS[method_name],
            trainer,
            "backbone.pretrained=false",
            *overrides,
        ]
    )
    torch.manual_seed(0)
    method = instantiate(cfg.method).to(dev).train()
    batch = _to(
        sample_batch(method.sample_format, cfg.data.pretrain.crop_size, cfg.data.pretrain.batch_size, folder),
        dev,
    )
    opt = method.configure_optimizers()
    sched = opt.get("lr_scheduler", {}).get("scheduler") if isinstance(opt, dict) else None
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    gen = torch.Generator(device=dev).manual_seed(0)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp)
    losses: list[float] = []

    def step(i: int) -> None:
        prepared = method.prepare_batch(batch, gen)
        with autocast:
            loss = method.training_step(prepared, i)
        loss = loss["loss"] if isinstance(loss, dict) else loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if sched is not None:
            sched.step()  # per optimiser step, as in training (warm-up included)
        method.on_train_batch_end(None, prepared, i)
        losses.append(float(loss.detach()))

    method.log = lambda *a, **k: None  # no trainer attached: logging is a no-op
    for i in range(warmup):
        step(i)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _sync(dev)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(dev)
    t_step = (time.perf_counter() - t0) / steps
    n_prep = max(1, min(steps, 50))
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(n_prep):
        method.prepare_batch(batch, gen)
    _sync(dev)
    t_prep = (time.perf_counter() - t0) / n_prep
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    k = max(1, min(10, len(losses) // 2))
    return {
        "method": method_name,
        "overrides": [*METHOD_EXPERIMENTS[method_name], *overrides],
        "batch_size": int(cfg.data.pretrain.batch_size),
        "crop_size": int(cfg.data.pretrain.crop_size),
        "steps": steps,
        "bf16": amp,
        "steps_per_s": 1.0 / t_step,
        "step_ms": 1e3 * t_step,
        "prepare_ms": 1e3 * t_prep,
        "distortion_share": min(1.0, t_prep / t_step),
        "peak_gib": peak,
        "loss_first": sum(losses[:k]) / k,
        "loss_last": sum(losses[-k:]) / k,
        "finite": all(math.isfinite(v) for v in losses),
    }


def run(
    device: str,
    steps: int,
    reiqa_steps: int,
    batch: int,
    folder: Path,
    methods: Sequence[str] = tuple(METHOD_EXPERIMENTS),
    log: Callable[[str], None] = print,
    bank_repeats: int = 20,
) -> dict[str, Any]:
    """Every check on `device` (agreement against the CPU); returns the JSON-able result."""
    dev = torch.device(device)
    result: dict[str, Any] = {
        "device": device,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "codec_workers": codec_workers(),
    }
    t0 = time.perf_counter()
    result["agreement"] = bank_agreement("cpu", device, batch=10, size=64)
    log(
        f"agreement: {sum(r['ok'] for r in result['agreement'])}/{len(result['agreement'])} ops ({time.perf_counter() - t0:.0f} s)"
    )
    result["bank"] = bank_throughput(device, batch=batch, repeats=bank_repeats)
    log(f"bank: {result['bank']['crops_per_s']:,.0f} crops/s, peak {result['bank']['peak_gib']} GiB")
    result["training"] = []
    for m in methods:
        try:
            r = train_steps(m, device, reiqa_steps if m == "reiqa" else steps, folder / m)
        except Exception as exc:  # noqa: BLE001 - report every method, then fail
            r = {"method": m, "error": f"{type(exc).__name__}: {exc}"}
        result["training"].append(r)
        log(f"train {m}: {r} ({time.perf_counter() - t0:.0f} s so far)")
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    result["wall_s"] = time.perf_counter() - t0
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/gpu_check"))
    ap.add_argument(
        "--steps", type=int, default=200, help="training steps per method (after 5 warm-up steps)"
    )
    ap.add_argument(
        "--reiqa-steps", type=int, default=100, help="Re-IQA steps (35 images x 24 instances each)"
    )
    ap.add_argument("--batch", type=int, default=256, help="bank throughput batch")
    ap.add_argument("--bank-repeats", type=int, default=20, help="timed bank batches")
    ap.add_argument("--methods", nargs="*", default=list(METHOD_EXPERIMENTS))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device (torch.cuda.is_available() is false); run it on a machine with a GPU",
            file=sys.stderr,
        )
        return 2
    result = run(
        "cuda",
        args.steps,
        args.reiqa_steps,
        args.batch,
        args.out / "images",
        args.methods,
        bank_repeats=args.bank_repeats,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    (args.out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return 1 if failures(result) else 0


if __name__ == "__main__":
    sys.exit(main())
