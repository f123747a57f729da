"""Throughput of the batched distortion banks: per op (mixed levels), full ARNIQA sampler, RankIQA ladders,
the Re-IQA bank and chunk sampler, each also as a batch-1 loop.

Usage::

    python benchmarks/bench_distortions.py --device cpu --batch 64 [--size 224] [--threads 2] [--json out.json]
        [--suites arniqa ladders reiqa]

Prints markdown tables. "batched" runs one call on a batch whose levels cycle 1..5; "batch-1" runs the same
op one image at a time (a per-image loop like the official data loader, same code). The sampler rows draw a
fresh ARNIQA plan (max 4 distortions, 5% pristine) and apply it with ``apply_plan``. Ladder rows run
``RankIQALadder(setting)(images)`` (types drawn per sample; every ladder = K views, the pristine one included);
the Re-IQA chunk row runs ``ReIQASampler(n_aug=11)(images)`` (12 views per image).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

from iqa_bench import distortions


def _natural_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(n,3,size,size)`` float32 random crops of the 24 vendored Kodak photographs (upscaled 2x if too small)."""
    import numpy as np
    from PIL import Image

    from iqa_bench.data.builtin import kodak_paths

    g = torch.Generator().manual_seed(seed)
    photos = [
        torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in kodak_paths()
    ]
    crops = []
    for i in range(n):
        p = photos[i % len(photos)]
        if min(p.shape[1:]) < size:
            p = torch.nn.functional.interpolate(p[None].float(), scale_factor=2.0, mode="bilinear")[0]
        top = int(torch.randint(0, p.shape[1] - size + 1, (1,), generator=g))
        left = int(torch.randint(0, p.shape[2] - size + 1, (1,), generator=g))
        crops.append(p[:, top : top + size, left : left + size].float() / 255.0)
    return torch.stack(crops).clamp(0, 1)


# The official ARNIQA pipeline (Apache-2.0) in the development checkout's reference folder, for a same-run row.
OFFICIAL_ARNIQA = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "arniqa_official"


def _load_official(root: Path, workdir: Path):
    """Import the official ``utils_data`` module from a copy of ``root`` in ``workdir`` (dither.so built there).

    Returns the module, or None when the folder is absent or the C++ extension cannot be built."""
    if not (root / "utils" / "utils_data.py").is_file():
        return None
    copy = workdir / "arniqa_official"
    shutil.copytree(root, copy)
    ext = copy / "utils" / "dither_extension"
    cmd = ["g++", "-O2", "-shared", "-fPIC", "-std=c++17", "-fopenmp", str(ext / "dither.cpp"), "-o"]
    try:
        subprocess.run([*cmd, str(ext / "dither.so")], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"official ARNIQA row skipped: cannot build its dither extension ({e})")
        return None
    sys.path.insert(0, str(copy))
    fake = types.ModuleType("utils.utils")
    fake.PROJECT_ROOT = copy
    sys.modules["utils.utils"] = fake
    import utils.utils_data as official  # type: ignore[import-not-found]

    return official


def _official_compositions(official, plan) -> list[tuple[list, list]]:
    """The official ``(distort_functions, distort_values)`` of each row of our ``plan``: the same distortions at
    the same levels, in the same order."""
    names = distortions.names()
    out = []
    for types_row, levels_row in zip(plan.type_ids.tolist(), plan.levels.tolist()):
        steps = [(names[t], lv) for t, lv in zip(types_row, levels_row) if t >= 0]
        out.append(
            (
                [official.distortion_functions[n] for n, _ in steps],
                [official.distortion_range[n][lv - 1] for n, lv in steps],
            )
        )
    return out


def _official_rows(x: torch.Tensor, rounds: int, threads: int, gen) -> dict | None:
    """Composed crops/s of the official per-image pipeline and of the bank on the same crops with the same
    compositions (each round draws one plan; the official ``distort_images`` gets each row's distortions and
    levels explicitly), at ``threads`` and 1 thread, timed in ``rounds`` rounds that alternate the two so that
    both see the same machine load; returns the median rates and the median of the per-round ratios."""
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        official = _load_official(OFFICIAL_ARNIQA, Path(tmp))
        if official is None:
            return None
        crops = [c.cpu() for c in x]
        sampler = distortions.ArniqaSampler()

        def run_official(compositions: list[tuple[list, list]]) -> None:
            # a fresh copy per call, as the official loader gives each call a new crop: its jpeg/jpeg2000 scale
            # their input in place (x *= 255), which would leave later repeats timing saturated, cheap images
            for c, (functions, values) in zip(crops, compositions):
                official.distort_images(c.clone(), functions, values)

        def timed(fn: Callable[[], object]) -> float:
            t0 = time.perf_counter()
            fn()
            return len(crops) / (time.perf_counter() - t0)

        counts = sorted({threads, 1}, reverse=True)
        rates: dict[str, list[float]] = {"ours": [], **{f"official_{t}": [] for t in counts}}
        for r in range(rounds + 1):  # round 0 warms both up and is dropped
            plan = sampler.sample(x.shape[0], generator=torch.Generator().manual_seed(1000 + r))
            compositions = _official_compositions(official, plan)
            torch.set_num_threads(threads)
            ours = timed(lambda p=plan: distortions.apply_plan(x, p, generator=gen))
            row = {"ours": ours}
            for t in counts:
                torch.set_num_threads(t)
                row[f"official_{t}"] = timed(lambda c=compositions: run_official(c))
            if r:
                for k, v in row.items():
                    rates[k].append(v)
        torch.set_num_threads(threads)
        out: dict = {"rounds": rounds, "ours_crops_s": statistics.median(rates["ours"])}
        for t in counts:
            out[f"crops_s_{t}_threads"] = statistics.median(rates[f"official_{t}"])
            ratios = [a / b for a, b in zip(rates["ours"], rates[f"official_{t}"])]
            out[f"ratio_{t}_threads"] = statistics.median(ratios)
            out[f"ratio_{t}_threads_range"] = (min(ratios), max(ratios))
        return out


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


def _op_rows(apply_fn, x: torch.Tensor, ops: list[str], repeats: int, single: int, gen) -> list[dict]:
    """Per-op batched and batch-1 throughput of ``apply_fn(name, images, level, generator)``."""
    device, batch = x.device, x.shape[0]
    levels = (torch.arange(batch) % 5 + 1).to(device)
    rows = []
    for name in ops:
        t_batch = _timeit(lambda n=name: apply_fn(n, x, levels, generator=gen), device, repeats)
        k = min(single, batch)

        def one_by_one(n: str = name, k: int = k) -> None:
            for i in range(k):
                apply_fn(n, x[i : i + 1], int(levels[i]), generator=gen)

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
    return rows


def _ladder_rows(x: torch.Tensor, repeats: int, single: int, gen) -> list[dict]:
    rows = []
    k = min(single, x.shape[0])
    for setting in ("live", "tid2013"):
        ladder = distortions.RankIQALadder(setting)
        t_batch = _timeit(lambda ld=ladder: ld(x, generator=gen), x.device, repeats)

        def one_by_one(ld=ladder) -> None:
            for i in range(k):
                ld(x[i : i + 1], generator=gen)

        t_single = _timeit(one_by_one, x.device, max(1, repeats // 2))
        rows.append(
            {
                "setting": setting,
                "views_per_ladder": ladder.num_views,
                "batched_ladders_s": x.shape[0] / t_batch,
                "batched_views_s": x.shape[0] * ladder.num_views / t_batch,
                "batched_ms_per_view": 1e3 * t_batch / (x.shape[0] * ladder.num_views),
                "single_ladders_s": k / t_single,
            }
        )
    return rows


def _reiqa_chunk_row(x: torch.Tensor, repeats: int, single: int, gen) -> dict:
    sampler = distortions.ReIQASampler(n_aug=11)
    t_batch = _timeit(lambda: sampler(x, generator=gen), x.device, repeats)
    k = min(single, x.shape[0])

    def one_by_one() -> None:
        for i in range(k):
            sampler(x[i : i + 1], generator=gen)

    t_single = _timeit(one_by_one, x.device, max(1, repeats // 2))
    return {
        "n_aug": 11,
        "batched_images_s": x.shape[0] / t_batch,
        "batched_distorted_views_s": x.shape[0] * 11 / t_batch,
        "single_images_s": k / t_single,
    }


def run(
    device: torch.device,
    batch: int,
    size: int,
    repeats: int,
    single: int,
    ops: list[str],
    suites: tuple[str, ...] = ("arniqa", "ladders", "reiqa"),
    rounds: int = 7,
) -> dict:
    x = _natural_crops(batch, size).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    res: dict = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "batch": batch,
        "size": size,
        "repeats": repeats,
        "torch": torch.__version__,
        "load_average_before": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if "arniqa" in suites:
        res["ops"] = _op_rows(distortions.apply, x, ops, repeats, single, gen)
        res["sampler"] = _arniqa_sampler(x, repeats, single, gen)
        if device.type == "cpu":
            res["official"] = _official_rows(x, rounds, torch.get_num_threads(), gen)
    if "ladders" in suites:
        res["ladders"] = _ladder_rows(x, repeats, single, gen)
    if "reiqa" in suites:
        res["reiqa_ops"] = _op_rows(
            distortions.reiqa_bank.apply, x, distortions.reiqa_bank.names(), repeats, single, gen
        )
        res["reiqa_chunk"] = _reiqa_chunk_row(x, repeats, single, gen)
    res["load_average_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return res


def _arniqa_sampler(x: torch.Tensor, repeats: int, single: int, gen) -> dict:
    device, batch = x.device, x.shape[0]
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
        "plan_ms_per_batch": 1e3 * t_plan,
        "composed_crops_s": batch / (t_comp + t_plan),
        "composed_ms_per_crop": 1e3 * (t_comp + t_plan) / batch,
        "single_composed_crops_s": k / t_comp_single,
    }


_OP_HEADER = [
    "| op | batched img/s | batched ms/img | batch-1 img/s | batch-1 ms/img | speed-up |",
    "|---|---:|---:|---:|---:|---:|",
]


def _op_lines(rows: list[dict]) -> list[str]:
    return [
        f"| {r['op']} | {r['batched_img_s']:.0f} | {r['batched_ms_per_img']:.2f} | {r['single_img_s']:.0f} | "
        f"{r['single_ms_per_img']:.2f} | {r['batched_img_s'] / r['single_img_s']:.1f}x |"
        for r in rows
    ]


def _load(v) -> str:
    return "n/a" if not v else " / ".join(f"{x:.1f}" for x in v)


def to_markdown(res: dict) -> str:
    lines = [
        f"device `{res['device']}` ({res['device_name']}), torch {res['torch']}, {res['threads']} threads, "
        f"batch {res['batch']}, {res['size']}x{res['size']} crops, median of {res['repeats']} runs, "
        f"load average (1/5/15 min) before {_load(res.get('load_average_before'))}, "
        f"after {_load(res.get('load_average_after'))}",
    ]
    if "ops" in res:
        lines += ["", "ARNIQA bank", "", *_OP_HEADER, *_op_lines(res["ops"])]
        s = res["sampler"]
        lines.append(
            f"| **ARNIQA sampler (compositions)** | **{s['composed_crops_s']:.0f}** | "
            f"{s['composed_ms_per_crop']:.2f} | {s['single_composed_crops_s']:.0f} | "
            f"{1e3 / s['single_composed_crops_s']:.2f} | {s['composed_crops_s'] / s['single_composed_crops_s']:.1f}x |"
        )
    if res.get("official"):
        o = res["official"]
        lines.append(
            f"| ARNIQA sampler, rounds alternating with the official pipeline (median of {o['rounds']}) | "
            f"{o['ours_crops_s']:.0f} | {1e3 / o['ours_crops_s']:.2f} | | | |"
        )
        for t in sorted({int(k.split("_")[2]) for k in o if k.startswith("crops_s_")}, reverse=True):
            rate, (lo, hi) = o[f"crops_s_{t}_threads"], o[f"ratio_{t}_threads_range"]
            lines.append(
                f"| official ARNIQA pipeline, per image, {t} thread(s) (same crops and compositions, alternating rounds) | "
                f"{rate:.0f} | {1e3 / rate:.2f} | | | ours {o[f'ratio_{t}_threads']:.1f}x "
                f"({lo:.1f}-{hi:.1f}) |"
            )
    if "ladders" in res:
        lines += [
            "",
            "RankIQA ladders (one type per image, all levels + pristine)",
            "",
            "| setting | views/ladder | batched ladders/s | batched views/s | ms/view | batch-1 ladders/s | speed-up |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in res["ladders"]:
            lines.append(
                f"| {r['setting']} | {r['views_per_ladder']} | {r['batched_ladders_s']:.1f} | "
                f"{r['batched_views_s']:.0f} | {r['batched_ms_per_view']:.2f} | {r['single_ladders_s']:.1f} | "
                f"{r['batched_ladders_s'] / r['single_ladders_s']:.1f}x |"
            )
    if "reiqa_ops" in res:
        lines += ["", "Re-IQA bank", "", *_OP_HEADER, *_op_lines(res["reiqa_ops"])]
        c = res["reiqa_chunk"]
        lines.append(
            f"| **Re-IQA chunk (11 distortions/image)** | **{c['batched_images_s']:.1f} img/s** "
            f"({c['batched_distorted_views_s']:.0f} views/s) | {1e3 / c['batched_distorted_views_s']:.2f} /view | "
            f"{c['single_images_s']:.1f} img/s | | {c['batched_images_s'] / c['single_images_s']:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--rounds", type=int, default=7, help="rounds alternating the bank and the official pipeline (CPU)"
    )
    ap.add_argument("--single", type=int, default=16, help="images timed in the batch-1 loop")
    ap.add_argument("--ops", nargs="*", default=None, help="subset of distortion names")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    ap.add_argument(
        "--suites", nargs="*", default=["arniqa", "ladders", "reiqa"], choices=["arniqa", "ladders", "reiqa"]
    )
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
        tuple(args.suites),
        args.rounds,
    )
    print(to_markdown(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
