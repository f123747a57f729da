"""Deterministic, natural-looking procedural images (dead leaves, 1/f fractal noise, textured shapes).

They give the built-in pretraining set many distinct contents without any download. Each generator takes a numpy
`Generator` and a size and returns a uint8 array `(H, W, 3)` in [0, 255].
"""

from __future__ import annotations

import numpy as np

KINDS = ("dead_leaves", "fractal", "shapes")


def _smooth_noise(rng: np.random.Generator, h: int, w: int, beta: float) -> np.ndarray:
    """Zero-mean, unit-std 1/f^beta noise `(h, w)` float64 made in the Fourier domain."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f**beta
    spectrum[0, 0] = 0.0
    img = np.fft.irfft2(spectrum, s=(h, w))
    return (img - img.mean()) / (img.std() + 1e-12)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A natural-ish RGB colour in [0, 1]: random hue, moderate saturation, random value."""
    hue = rng.uniform(0, 1)
    sat = rng.beta(2, 3)
    val = rng.uniform(0.15, 0.95)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    return val * (1 - sat * np.clip(np.minimum(k, 4 - k), 0, 1))


def dead_leaves(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Occluding discs/ellipses with power-law radii, each with its own colour and fine texture."""
    img = np.zeros((h, w, 3))
    img[:] = _random_colour(rng)
    yy, xx = np.mgrid[0:h, 0:w]
    rmin, rmax = 3.0, max(h, w) / 3
    for _ in range(int(rng.integers(200, 320))):
        # radius ~ r^-3 on [rmin, rmax] (scale invariance of natural images)
        u = rng.uniform()
        r = (rmin**-2 + u * (rmax**-2 - rmin**-2)) ** -0.5
        cy, cx = rng.uniform(-r, h + r), rng.uniform(-r, w + r)
        ay, ax = r * rng.uniform(0.5, 1.5), r * rng.uniform(0.5, 1.5)
        theta = rng.uniform(0, np.pi)
        c, s = np.cos(theta), np.sin(theta)
        y0, y1 = int(max(0, cy - r * 1.6)), int(min(h, cy + r * 1.6 + 1))
        x0, x1 = int(max(0, cx - r * 1.6)), int(min(w, cx + r * 1.6 + 1))
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        mask = ((dx * c + dy * s) / ax) ** 2 + ((-dx * s + dy * c) / ay) ** 2 <= 1.0
        colour = _random_colour(rng)
        shade = 1.0 + 0.03 * rng.standard_normal(mask.shape) * rng.uniform(0, 1)
        shade += 0.15 * (dx / (ax + 1e-6)) * rng.uniform(-1, 1)  # soft shading gradient
        img[y0:y1, x0:x1][mask] = (colour[None, :] * shade[mask][:, None]).clip(0, 1)
    return img


def fractal(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Coloured 1/f noise landscapes: three correlated noise fields mixed by a random colour matrix."""
    beta = rng.uniform(0.9, 1.8)
    fields = np.stack([_smooth_noise(rng, h, w, beta) for _ in range(3)], -1)
    mix = rng.normal(0, 1, (3, 3)) * 0.4 + np.eye(3) * rng.uniform(0.5, 1.0)
    mix[:, :] += rng.normal(0, 0.5, (1, 3))  # shared luminance component
    img = fields @ mix.T
    img = (img - img.min((0, 1))) / (np.ptp(img, (0, 1)) + 1e-12)
    base = _random_colour(rng)
    return (0.35 * base + 0.65 * img).clip(0, 1)


def shapes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth background with rectangles, stripes, rings and sharp edges, overlaid with fine texture."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    g = rng.uniform(-1, 1, 2)
    img = _random_colour(rng)[None, None] * (0.7 + 0.3 * (g[0] * yy + g[1] * xx))[..., None]
    for _ in range(int(rng.integers(6, 16))):
        kind = rng.integers(0, 3)
        colour = _random_colour(rng)
        if kind == 0:  # rectangle
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            y1, x1 = min(h, y0 + rng.integers(8, h // 2)), min(w, x0 + rng.integers(8, w // 2))
            img[y0:y1, x0:x1] = colour
        elif kind == 1:  # stripes inside a disc
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            period, ang = rng.uniform(0.01, 0.06), rng.uniform(0, np.pi)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            stripes = np.sin((xx * np.cos(ang) + yy * np.sin(ang)) / period) > 0
            img[mask & stripes] = colour
        else:  # ring
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
            img[np.abs(d - r) < rng.uniform(0.005, 0.03)] = colour
    texture = _smooth_noise(rng, h, w, rng.uniform(0.5, 1.5))[..., None]
    return (img * (1 + 0.06 * texture)).clip(0, 1)


def procedural_image(seed: int, index: int, height: int = 256, width: int = 256) -> np.ndarray:
    """Image number `index` of the deterministic procedural family for `seed`, uint8 `(height, width, 3)`."""
    rng = np.random.default_rng([seed, index])
    kind = KINDS[index % len(KINDS)]
    img = {"dead_leaves": dead_leaves, "fractal": fractal, "shapes": shapes}[kind](rng, height, width)
    return np.round(img * 255).astype(np.uint8)
