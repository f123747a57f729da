"""Per-op timing of the distortion banks on one device: which ops dominate a composed batch.

    python benchmarks/bench_bank_ops.py [--device cuda] [--batch 256] [--size 224] [--bank arniqa reiqa] [--json F]

For every op of each bank: milliseconds to apply it to ``batch`` crops of ``size``² with per-sample levels cycling
over 1..5 (median of ``--repeats`` timed calls after one warm-up, device synchronised), and crops per second. Then
the whole ARNIQA composition (``apply_plan`` with a fresh plan per call) as ``make gpu-check`` times it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import natural_crops  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_call(fn: Any, dev: torch.device, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def op_rows(bank: str, dev: torch.device, batch: int, size: int, repeats: int) -> list[dict[str, Any]]:
    """One row per op of ``bank`` ('arniqa' or 'reiqa'): ms per batch and crops/s."""
    from iqa_bench import distortions

    mod = distortions if bank == "arniqa" else distortions.reiqa_bank
    x = natural_crops(batch, size).to(dev)
    levels = (torch.arange(batch) % 5 + 1).to(dev)
    g = torch.Generator(device=dev).manual_seed(0)
    rows = []
    for name in mod.names():
        ms = time_call(lambda n=name: mod.apply(n, x, levels, generator=g), dev, repeats)
        rows.append({"bank": bank, "op": name, "ms": ms, "crops_per_s": 1e3 * batch / ms})
        print(f"{bank:7s} {name:22s} {ms:9.2f} ms  {1e3 * batch / ms:10.0f} crops/s", flush=True)
    return rows


def composition_ms(
    dev: torch.device, batch: int, size: int, repeats: int, exclude: tuple[str, ...] = ()
) -> float:
    """Median ms of one ARNIQA composition on ``batch`` crops; ops in ``exclude`` are replaced by pristine steps."""
    from iqa_bench import distortions
    from iqa_bench.distortions.bank import type_id

    x = natural_crops(batch, size).to(dev)
    sampler = distortions.ArniqaSampler()
    g = torch.Generator(device=dev).manual_seed(0)
    drop = torch.tensor([type_id(n) for n in exclude], dtype=torch.long)

    def once() -> None:
        plan = sampler.sample(batch, generator=g, device=dev)
        if drop.numel():
            ids = plan.type_ids.clone()
            ids[torch.isin(ids.cpu(), drop).to(ids.device)] = -1
            plan = type(plan)(type_ids=ids, levels=plan.levels)
        distortions.apply_plan(x, plan, generator=g)

    return time_call(once, dev, repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bank", nargs="*", default=["arniqa", "reiqa"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    rows = [r for b in args.bank for r in op_rows(b, dev, args.batch, args.size, args.repeats)]
    full = composition_ms(dev, args.batch, args.size, args.repeats)
    no_codec = composition_ms(dev, args.batch, args.size, args.repeats, exclude=("jpeg", "jpeg2000"))
    print(
        f"composition: {full:.1f} ms ({1e3 * args.batch / full:.0f} crops/s); "
        f"without jpeg/jpeg2000: {no_codec:.1f} ms ({1e3 * args.batch / no_codec:.0f} crops/s)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "device": str(dev),
                    "batch": args.batch,
                    "size": args.size,
                    "ops": rows,
                    "composition_ms": full,
                    "no_codec_ms": no_codec,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
