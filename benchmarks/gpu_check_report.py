"""The verdict and the report of `make gpu-check` (benchmarks/gpu_check.py): which checks and targets failed, and
the markdown table for docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

TARGETS = {"bank_crops_per_s": 20_000.0, "bank_peak_gib": 4.0, "distortion_share": 0.10}


# -- report -------------------------------------------------------------------------------------------------------
def failures(result: dict[str, Any]) -> list[str]:
    """One line per failed check or missed target of a `run` result."""
    out = [
        f"bank agreement: {r['bank']}/{r['op']} differs: {r}"
        for r in result.get("agreement", [])
        if not r["ok"]
    ]
    bank = result.get("bank")
    if bank:
        if bank["crops_per_s"] < TARGETS["bank_crops_per_s"]:
            out.append(
                f"bank throughput {bank['crops_per_s']:.0f} crops/s < {TARGETS['bank_crops_per_s']:.0f}"
            )
        if bank["peak_gib"] is not None and bank["peak_gib"] > TARGETS["bank_peak_gib"]:
            out.append(f"bank peak memory {bank['peak_gib']:.2f} GiB > {TARGETS['bank_peak_gib']} GiB")
    for r in result.get("training", []):
        if "error" in r:
            out.append(f"training {r['method']}: {r['error']}")
            continue
        if not r["finite"]:
            out.append(f"training {r['method']}: non-finite loss")
        if r["distortion_share"] > TARGETS["distortion_share"]:
            out.append(f"training {r['method']}: distortion share {100 * r['distortion_share']:.1f} % > 10 %")
    return out


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown tables (for docs/benchmarks.md)."""
    agree = result.get("agreement", [])
    lines = [
        f"GPU check on {result.get('device_name')} (torch {result.get('torch')}, "
        f"{result.get('codec_workers', '?')} JPEG 2000 worker processes).",
        "",
    ]
    bad = [r for r in agree if not r["ok"]]
    lines.append(f"Bank agreement CUDA vs CPU: {len(agree) - len(bad)}/{len(agree)} ops agree.")
    if bank := result.get("bank"):
        peak = "n/a" if bank["peak_gib"] is None else f"{bank['peak_gib']:.2f}"
        lines += [
            "",
            "| bank (ARNIQA compositions) | batch | crops/s | ms/batch | peak GiB |",
            "|---|---|---|---|---|",
            f"| {bank['size']}² crops | {bank['batch']} | {bank['crops_per_s']:,.0f} | {bank['ms_per_batch']:.1f} | {peak} |",
        ]
    train = [r for r in result.get("training", []) if "error" not in r]
    if train:
        lines += [
            "",
            "| method (paper setting, bf16) | batch × crop | steps | steps/s | step ms | distortion share | peak GiB | loss first → last |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in train:
            peak = "n/a" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
            lines.append(
                f"| {r['method']} | {r['batch_size']} × {r['crop_size']} | {r['steps']} | {r['steps_per_s']:.2f} | "
                f"{r['step_ms']:.0f} | {100 * r['distortion_share']:.1f} % | {peak} | "
                f"{r['loss_first']:.3f} → {r['loss_last']:.3f} |"
            )
    fails = failures(result)
    lines += ["", "All checks passed." if not fails else "Failed:", *[f"- {f}" for f in fails]]
    return "\n".join(lines) + "\n"
