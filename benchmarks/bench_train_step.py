"""Training-step throughput of a method, with and without the GPU-side distortions.

    python benchmarks/bench_train_step.py --method arniqa --device cpu [--overrides experiment=cpu_budget ...]
    python benchmarks/bench_train_step.py --method reiqa --device cuda --overrides experiment=reiqa_paper

Composes the same config `python -m iqa_bench.train method=M` would, takes one real batch from the datamodule and
times, per step (after warm-up):
  * full step   = `prepare_batch` (uint8 -> float, distortion plan + bank, on the device) + forward + backward +
                  optimiser step, as in training;
  * no-distortion step = forward + backward + optimiser step on an already prepared batch.
The difference is the distortion overhead (goal on a GPU: <= 10% of the step). Prints steps/s and images/s (images
= every view the encoder sees in a step) and writes JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir

from iqa_bench.utils.instantiate import instantiate
from iqa_bench.utils.resolvers import CONF_DIR


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def _count_images(prepared: Any) -> int:
    if isinstance(prepared, torch.Tensor):
        return int(prepared.shape[:-3].numel()) if prepared.dim() >= 4 else 0
    if isinstance(prepared, dict):
        return sum(_count_images(v) for v in prepared.values())
    if isinstance(prepared, (list, tuple)):
        return sum(_count_images(v) for v in prepared)
    return 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="arniqa")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--amp", choices=["none", "bf16"], default="none", help="autocast dtype on the device")
    ap.add_argument(
        "--overrides", nargs="*", default=[], help="extra Hydra overrides (e.g. experiment=cpu_budget)"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    device = torch.device(args.device)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=[f"method={args.method}", *args.overrides], return_hydra_config=False
        )
    torch.manual_seed(0)
    method = instantiate(cfg.method).to(device).train()
    dm = instantiate(cfg.data.pretrain, sample_format=method.sample_format)
    dm.setup()
    batch = _to(next(iter(dm.train_dataloader())), device)
    opt = method.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    gen = torch.Generator(device=device).manual_seed(0)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16")

    def train_step(prepared: Any, i: int) -> None:
        with amp:
            loss = method.training_step(prepared, i)
        loss = loss["loss"] if isinstance(loss, dict) else loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if hasattr(method, "on_train_batch_end"):
            method.on_train_batch_end(None, prepared, i)  # e.g. momentum-encoder updates

    def timed(fn) -> float:
        for i in range(args.warmup):
            fn(i)
        _sync(device)
        t0 = time.perf_counter()
        for i in range(args.steps):
            fn(i)
        _sync(device)
        return (time.perf_counter() - t0) / args.steps

    prepared = method.prepare_batch(batch, gen)
    n_images = _count_images(prepared)
    t_prep = timed(lambda i: method.prepare_batch(batch, gen))
    t_full = timed(lambda i: train_step(method.prepare_batch(batch, gen), i))
    t_plain = timed(lambda i: train_step(prepared, i))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        train_step(method.prepare_batch(batch, gen), 0)
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = None
    out = {
        "method": args.method,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "overrides": args.overrides,
        "amp": args.amp,
        "images_per_step": n_images,
        "full_step_s": t_full,
        "no_distortion_step_s": t_plain,
        "prepare_batch_s": t_prep,
        "steps_per_s": 1 / t_full,
        "images_per_s": n_images / t_full,
        "steps_per_s_no_distortion": 1 / t_plain,
        "distortion_overhead": max(0.0, t_full - t_plain) / t_full,
        "peak_memory_gib": peak,
        "load_average_1min": os.getloadavg()[0],
    }
    print(
        f"{args.method} on {device} ({n_images} images/step): {out['steps_per_s']:.2f} steps/s, "
        f"{out['images_per_s']:.1f} images/s; without distortions {out['steps_per_s_no_distortion']:.2f} steps/s; "
        f"distortion overhead {100 * out['distortion_overhead']:.1f}% of the step "
        f"(prepare_batch alone {1000 * t_prep:.1f} ms)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
