"""ARNIQA group "jpeg" (compression): jpeg2000 and jpeg, through the same CPU codecs as the official code.

* jpeg: libjpeg via ``torchvision.io.encode_jpeg``/``decode_jpeg`` on lists of CPU tensors (one call per quality).
* jpeg2000: OpenJPEG via Pillow (``quality_mode='rates'``, ``quality_layers=[ratio]``, 8 resolutions, LRCP),
  one image after another: Pillow holds the GIL while coding JPEG 2000, so a thread pool gains nothing
  (measured: 18.5 ms/image serial vs 18.5 ms/image with 2 threads).

Both convert to uint8 by *truncation* (``(x*255).byte()``), as the official functions do. Inputs on another
device are coded on the CPU and moved back. ``x (B,3,H,W)`` float32 in [0,1], ``param (B,)``.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ._utils import per_level

__all__ = ["jpeg", "jpeg2000"]


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


def _jpeg2000_one(img: np.ndarray, ratio: int) -> np.ndarray:
    """Encode/decode one ``(H,W,3)`` uint8 image with OpenJPEG at compression ratio ``ratio``."""
    h, w = img.shape[:2]
    # OpenJPEG needs every resolution level to keep >= 1 pixel; 8 levels (the official value) need >= 128 px.
    resolutions = max(1, min(8, int(math.floor(math.log2(max(1, min(h, w))))) + 1))
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(
        buf,
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=[ratio],
        num_resolutions=resolutions,
        progression="LRCP",
    )
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


def jpeg2000(x: Tensor, ratio: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """JPEG 2000 round trip at compression ratio ``ratio (B,)`` (rates mode), one CPU image at a time."""
    u8 = _to_u8_truncated(x).permute(0, 2, 3, 1).contiguous().numpy()
    ratios = [int(r) for r in ratio.detach().cpu().tolist()]
    out = [_jpeg2000_one(img, r) for img, r in zip(u8, ratios)]
    y = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
    return (y.float() / 255.0).to(x.device)
