"""Throughput of the batched distortion bank: per op (mixed levels), full ARNIQA sampler, and batch-1 loops.

Usage::

    python benchmarks/bench_distortions.py --device cpu --batch 64 [--size 224] [--threads 2] [--json out.json]

Prints a markdown table. "batched" runs one call on a batch whose levels cycle 1..5; "batch-1" runs the same
op one image at a time (a per-image loop like the official data loader, same code). The sampler rows draw a
fresh ARNIQA plan (max 4 distortions, 5% pristine) and apply it with ``apply_plan``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import torch

from iqa_bench import distortions


def _natural_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(n,3,size,size)`` float32 random crops of scikit-image's sample photographs (synthetic fallback)."""
    g = torch.Generator().manual_seed(seed)
    try:
        from skimage import data

        photos = [
            torch.from_numpy(getattr(data, k)()).permute(2, 0, 1)
            for k in ("astronaut", "chelsea", "coffee", "rocket")
        ]
    except Exception:  # pragma: no cover - skimage is a project dependency
        photos = [(torch.rand(3, 512, 512, generator=g) * 255).to(torch.uint8)]
    crops = []
    for i in range(n):
        p = photos[i % len(photos)]
        if min(p.shape[1:]) < size:
            p = torch.nn.functional.interpolate(p[None].float(), size=(size * 2, size * 2), mode="bilinear")[
                0
            ]
        top = int(torch.randint(0, p.shape[1] - size + 1, (1,), generator=g))
        left = int(torch.randint(0, p.shape[2] - size + 1, (1,), generator=g))
        crops.append(p[:, top : top + size, left : left + size].float() / 255.0)
    return torch.stack(crops).clamp(0, 1)


def _timeit(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time (s) of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def run(device: torch.device, batch: int, size: int, repeats: int, single: int, ops: list[str]) -> dict:
    x = _natural_crops(batch, size).to(device)
    levels = (torch.arange(batch) % 5 + 1).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    rows = []
    for name in ops:
        t_batch = _timeit(lambda n=name: distortions.apply(n, x, levels, generator=gen), device, repeats)
        k = min(single, batch)

        def one_by_one(n: str = name, k: int = k) -> None:
            for i in range(k):
                distortions.apply(n, x[i : i + 1], int(levels[i]), generator=gen)

        t_single = _timeit(one_by_one, device, max(1, repeats // 2))
        rows.append(
            {
                "op": name,
                "batched_img_s": batch / t_batch,
                "batched_ms_per_img": 1e3 * t_batch / batch,
                "single_img_s": k / t_single,
                "single_ms_per_img": 1e3 * t_single / k,
            }
        )
    sampler = distortions.ArniqaSampler()
    plans = [
        sampler.sample(batch, generator=torch.Generator().manual_seed(s), device=device)
        for s in range(repeats + 1)
    ]
    it = iter(range(10**9))

    def composed() -> None:
        distortions.apply_plan(x, plans[next(it) % len(plans)], generator=gen)

    t_plan = _timeit(
        lambda: sampler.sample(batch, generator=torch.Generator().manual_seed(1), device=device),
        device,
        repeats,
    )
    t_comp = _timeit(composed, device, len(plans) * 2)
    k = min(single, batch)

    def composed_single() -> None:
        p = plans[0]
        for i in range(k):
            sub = distortions.DistortionPlan(p.type_ids[i : i + 1], p.levels[i : i + 1])
            distortions.apply_plan(x[i : i + 1], sub, generator=gen)

    t_comp_single = _timeit(composed_single, device, max(1, repeats // 2))
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "batch": batch,
        "size": size,
        "repeats": repeats,
        "ops": rows,
        "sampler": {
            "plan_ms_per_batch": 1e3 * t_plan,
            "composed_crops_s": batch / (t_comp + t_plan),
            "composed_ms_per_crop": 1e3 * (t_comp + t_plan) / batch,
            "single_composed_crops_s": k / t_comp_single,
        },
        "torch": torch.__version__,
    }


def to_markdown(res: dict) -> str:
    lines = [
        f"device `{res['device']}` ({res['device_name']}), torch {res['torch']}, {res['threads']} threads, "
        f"batch {res['batch']}, {res['size']}x{res['size']} crops, median of {res['repeats']} runs",
        "",
        "| op | batched img/s | batched ms/img | batch-1 img/s | batch-1 ms/img | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["ops"]:
        lines.append(
            f"| {r['op']} | {r['batched_img_s']:.0f} | {r['batched_ms_per_img']:.2f} | {r['single_img_s']:.0f} | "
            f"{r['single_ms_per_img']:.2f} | {r['batched_img_s'] / r['single_img_s']:.1f}x |"
        )
    s = res["sampler"]
    lines.append(
        f"| **ARNIQA sampler (compositions)** | **{s['composed_crops_s']:.0f}** | {s['composed_ms_per_crop']:.2f} | "
        f"{s['single_composed_crops_s']:.0f} | {1e3 / s['single_composed_crops_s']:.2f} | "
        f"{s['composed_crops_s'] / s['single_composed_crops_s']:.1f}x |"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--single", type=int, default=16, help="images timed in the batch-1 loop")
    ap.add_argument("--ops", nargs="*", default=None, help="subset of distortion names")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    res = run(
        torch.device(args.device),
        args.batch,
        args.size,
        args.repeats,
        args.single,
        args.ops or distortions.names(),
    )
    print(to_markdown(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
