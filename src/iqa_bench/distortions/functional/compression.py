"""ARNIQA group "jpeg" (compression): jpeg2000 and jpeg, through the same CPU codecs as the official code.

* jpeg: libjpeg via ``torchvision.io.encode_jpeg``/``decode_jpeg`` on lists of CPU tensors (one call per quality).
* jpeg2000: OpenJPEG via Pillow (``quality_mode='rates'``, ``quality_layers=[ratio]``, 8 resolutions, LRCP).
  Pillow holds the GIL while coding JPEG 2000, so a thread pool gains nothing (measured: 18.5 ms/image serial vs
  18.5 ms/image with 2 threads); the images are spread over worker processes instead (:mod:`iqa_bench.utils.codec_pool`,
  ``IQA_CODEC_WORKERS``), with results identical to coding in-process.

Both convert to uint8 by *truncation* (``(x*255).byte()``), as the official functions do. Inputs on another
device are coded on the CPU and moved back. ``x (B,3,H,W)`` float32 in [0,1], ``param (B,)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ...utils import codec_pool
from ._utils import per_level

__all__ = ["jpeg", "jpeg2000", "jpeg2000_start"]


def _to_u8_truncated(x: Tensor) -> Tensor:
    """``(B,3,H,W)`` float -> uint8 on the CPU by ``x*255`` and truncation (the official ``.byte()``)."""
    return (x.detach().float() * 255.0).to(device="cpu", dtype=torch.uint8)


def _jpeg_shared(x: Tensor, quality: float) -> Tensor:
    from torchvision.io import decode_jpeg, encode_jpeg

    u8 = list(_to_u8_truncated(x).unbind(0))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*image decoding and encoding capabilities.*")
        encoded = encode_jpeg(u8, quality=int(round(quality)))
        decoded = decode_jpeg(encoded)
    return (torch.stack(decoded) / 255.0).to(device=x.device, dtype=torch.float32)


def jpeg(x: Tensor, quality: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """JPEG round trip at integer ``quality (B,)`` (libjpeg, 4:2:0 chroma subsampling)."""
    return per_level(x, quality, _jpeg_shared)


def jpeg2000(x: Tensor, ratio: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """JPEG 2000 round trip at compression ratio ``ratio (B,)`` (rates mode) on the CPU, over worker processes."""
    return jpeg2000_start(x, ratio)()


def jpeg2000_start(x: Tensor, ratio: Tensor) -> Callable[[], Tensor]:
    """Start :func:`jpeg2000` on ``x (B,3,H,W)`` and return ``finish()``, which waits and returns the result.

    With codec worker processes the images are coded while the caller goes on (the composition loop applies the
    other distortions of a step meanwhile); the result is the same as :func:`jpeg2000`'s.
    """
    u8 = _to_u8_truncated(x).permute(0, 2, 3, 1).contiguous().numpy()
    ratios = [int(r) for r in ratio.detach().cpu().tolist()]
    collect = codec_pool.submit_images(codec_pool.jpeg2000_round_trip, list(u8), ratios)
    device = x.device

    def finish() -> Tensor:
        y = torch.from_numpy(np.stack(collect())).permute(0, 3, 1, 2)
        return (y.float() / 255.0).clamp_(0.0, 1.0).to(device)

    return finish
