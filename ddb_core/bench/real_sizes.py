"""The real datasets' image sizes (Waterbirds 500×375, CelebA 178×218) and a stand-in picture of that size, for the
full-size benchmark's dataset (``bench.fullscale``) and the plan's thumbnail bytes (``bench.plan``).
"""

from __future__ import annotations

import numpy as np

WATERBIRDS_SIZE = (500, 375)  # w, h
CELEBA_SIZE = (178, 218)


def picture(rng: np.random.Generator, w: int, h: int, label: int) -> np.ndarray:
    """A smooth background with an ellipse (the 'object'): non-trivial pixels for the codecs and models."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    img = base + 40 * np.sin(xx[..., None] / rng.uniform(20, 60) + rng.uniform(0, 6, 3)) \
        + 30 * np.cos(yy[..., None] / rng.uniform(20, 60))
    cx, cy, rx, ry = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65), w * 0.18, h * 0.2
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    img[inside] = (220, 60, 40) if label == 0 else (40, 80, 220)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
