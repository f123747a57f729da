"""Safe image decoding to uint8 RGB tensors and uint8 cropping/resizing (what dataloader workers do).

Everything here returns `torch.uint8` tensors `(3, H, W)` in [0, 255]; no float maths happens in workers.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from iqa_bench.errors import UserError

log = logging.getLogger(__name__)

# .gif: the first frame of an animated GIF; palette transparency is composited on white like any alpha channel
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
MAX_PIXELS = 16384 * 16384  # refuse decompression bombs above this many pixels
MIN_SIDE = 16


class BadImageError(UserError):
    """An image file cannot be used (unreadable, truncated, too small, too large, not a regular file); the message
    names the file."""


def display_path(path: str | os.PathLike[str]) -> str:
    """`path` as printable UTF-8 text: bytes of a name that is not valid UTF-8 are shown as `\\xNN` escapes (such
    a name cannot be written to a UTF-8 log, CSV or JSON file as it is)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def decode_image(path: str | Path, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Decode any still image to RGB uint8 `(3, H, W)`.

    Grayscale, palette, CMYK, RGBA (alpha composited on white) and 16-bit images are converted to 8-bit RGB.
    Raises `BadImageError` naming the file for unreadable/truncated files, images smaller than `min_side` pixels
    on a side, images with more than `MAX_PIXELS` pixels (decompression bombs) and anything that is not a regular
    file (a FIFO named `x.jpg` would block `open()` forever; it is never opened).
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BadImageError(f"{display_path(path)}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise BadImageError(f"{display_path(path)}: not a regular file (FIFO, socket, device or folder)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise BadImageError(
                        f"{display_path(path)}: {w}x{h} pixels exceeds the {MAX_PIXELS}-pixel safety limit"
                    )
                fast = _decode_fast(path, im)
                if fast is not None:
                    rgb = None
                else:
                    im.load()
                    rgb = _to_rgb8(im)
    except BadImageError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise BadImageError(
            f"{display_path(path)}: cannot decode image ({type(exc).__name__}: {exc})"
        ) from None
    if rgb is not None:
        fast = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    if min(fast.shape[-2:]) < min_side:
        raise BadImageError(
            f"{display_path(path)}: image is {fast.shape[-1]}x{fast.shape[-2]}, smaller than {min_side} px on a side"
        )
    return fast


def _decode_fast(path: Path, im: Image.Image) -> torch.Tensor | None:
    """libjpeg-turbo / libpng decode through torchvision for the common case (8-bit RGB or grey JPEG/PNG, no
    alpha), 1.2-1.5x faster than PIL; None for everything else (and for anything that looks truncated or fails),
    which then goes through PIL's checked path."""
    if im.format not in ("JPEG", "PNG") or im.mode not in ("RGB", "L") or "transparency" in im.info:
        return None
    try:
        data = path.read_bytes()
        if im.format == "JPEG" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
            return None  # no end-of-image marker: truncated; libjpeg would fill it in grey silently
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs in favour of torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import ImageReadMode
            from torchvision.io import decode_image as tv_decode

            out = tv_decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except Exception:  # noqa: BLE001 - any failure: let PIL decide (and name the problem)
        return None
    if out.dtype != torch.uint8 or out.shape != (3, im.size[1], im.size[0]):
        return None
    return out


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """PIL image of any mode -> uint8 `(H, W, 3)`."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.float64)
        scale = 65535.0 if arr.max() > 255 else 255.0
        arr = np.round(arr / scale * 255.0).clip(0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if im.mode == "F":
        arr = np.asarray(im)
        arr = np.round(arr.clip(0, 1) * 255 if arr.max() <= 1.0 else arr.clip(0, 255)).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    arr = np.asarray(im.convert("RGB"))
    if arr.dtype != np.uint8:  # 16-bit RGB decoded by PIL as RGB;16 is rare but possible
        arr = (arr.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
    return arr


def resize_uint8(img: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bicubic resize of a uint8 `(3, H, W)` tensor to `(3, height, width)`, still uint8."""
    return TF.resize(img, [height, width], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)


def ensure_min_side(img: torch.Tensor, side: int) -> torch.Tensor:
    """Upscale (bicubic) so that both sides are at least `side`; unchanged if already large enough."""
    h, w = img.shape[-2:]
    if min(h, w) >= side:
        return img
    s = side / min(h, w)
    return resize_uint8(img, max(side, round(h * s)), max(side, round(w * s)))


def random_crop(img: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random `size x size` crop of a uint8 `(3, H, W)` image with `H, W >= size`."""
    h, w = img.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    return img[:, top : top + size, left : left + size]


def half_scale(img: torch.Tensor) -> torch.Tensor:
    """The ×2-downscaled image (antialiased bicubic, like ARNIQA's PIL `resize((w//2, h//2))`)."""
    h, w = img.shape[-2:]
    return resize_uint8(img, max(1, h // 2), max(1, w // 2))


def list_images(root: str | Path) -> list[Path]:
    """All image files under `root` (recursive, sorted; skips as `folders.scan_images`); `UserError` if `root` is
    missing or holds none."""
    from iqa_bench.data.folders import scan_images

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    files = [root / r for r in scan_images(root, IMAGE_EXTENSIONS)]
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    return files
