"""Pretraining loader throughput: decode + crop to uint8 per worker, and start-up cost of a large folder tree.

    python benchmarks/bench_loader.py [--images 64] [--files 100000] [--json PATH]

1. Decode + crop: `ArniqaPairs` samples/s in one process (= one dataloader worker) on 512x384 PNGs (KADIS-size),
   crop 224, no distortions. Each sample decodes two images (A and B) and cuts 4 crops (full + half scale each),
   like the official ARNIQA loader (~47 samples/s per core without distortions, the ARNIQA paper and code).
2. File list: a generated tree of `--files` empty `.png` files; time of the first scan and of the cached reload.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from iqa_bench.data.folders import folder_images
from iqa_bench.data.pretrain import ArniqaPairs
from iqa_bench.data.procedural import procedural_image


def bench_decode(tmp: Path, n_images: int, crop: int, seconds: float) -> dict:
    paths = []
    for i in range(n_images):
        p = tmp / f"img{i:03d}.png"
        Image.fromarray(procedural_image(0, i, 384, 512)).save(p)
        paths.append(p)
    ds = ArniqaPairs(paths, crop)
    for i in range(4):  # warm-up
        ds[i]
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ds[count % len(ds)]
        count += 1
    rate = count / (time.perf_counter() - t0)
    return {"samples_per_s_per_worker": rate, "official_arniqa_per_core": 47.0, "ratio": rate / 47.0}


def bench_filelist(tmp: Path, n_files: int) -> dict:
    root = tmp / "tree"
    per_dir = 1000
    for d in range((n_files + per_dir - 1) // per_dir):
        sub = root / f"d{d:04d}"
        sub.mkdir(parents=True)
        for j in range(min(per_dir, n_files - d * per_dir)):
            (sub / f"{j:05d}.png").touch()
    t0 = time.perf_counter()
    first = folder_images(root, tmp / "cache")
    t1 = time.perf_counter()
    again = folder_images(root, tmp / "cache")
    t2 = time.perf_counter()
    assert len(first) == len(again) == n_files
    return {"files": n_files, "first_scan_s": t1 - t0, "cached_s": t2 - t1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one worker = one core
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out = {
            "decode_crop": bench_decode(tmp, args.images, args.crop, args.seconds),
            "filelist": bench_filelist(tmp, args.files),
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
            "load_average_1min": os.getloadavg()[0],
            "numpy": np.__version__,
            "torch": torch.__version__,
        }
    dc, fl = out["decode_crop"], out["filelist"]
    print(
        f"decode+crop (ArniqaPairs, 512x384 PNG, crop {args.crop}): {dc['samples_per_s_per_worker']:.1f} samples/s "
        f"per worker ({dc['ratio']:.2f}x the official ~47/s per core)\n"
        f"file list of {fl['files']} files: first scan {fl['first_scan_s']:.2f} s, cached {fl['cached_s']:.2f} s"
        f" (load avg {out['load_average_1min']:.1f})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
