"""Storage of integrated-gradients maps: compact, for display only.

ρ (Eq. 5) is computed from the full-precision attributions before anything is stored; the stored
map only draws the heatmap panel. So it is kept small (about 50 KB at Waterbirds size instead of
750 KB of float32 at the source's size):

- **Resolution**: the attributions exist at the classifier's input size (224 × 224 for a ResNet-50);
  the source-size map is an interpolation of them. The stored map's longer side is at most
  ``max(256, classifier input side)`` (never larger than the source), aspect ratio kept; area
  averaging, scaled so that the stored map sums to what the full map sums to.
- **Values**: 8 bits with a square-root companding, q = round(127 · sign(a) · √(|a| / max|a|)),
  and the scale max|a| stored beside them (float32). Attributions are heavy-tailed and the panel
  scales its colours at the 99th percentile of |a|; the square root gives small values many more
  of the 127 levels than a linear code would (a value at 1% of the maximum gets level 13, not 1).

File: ``ig/<candidate id>.npz`` holding ``q`` (int8, h × w), ``scale`` (float32), ``source_shape``
(the source's h, w). Maps stored by earlier versions (float32 ``.npy`` at the source's size) still
load.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MIN_SIDE = 256  # the stored map's longer side is at most max(MIN_SIDE, classifier input side)
LEVELS = 127


def stored_shape(shape: tuple[int, int], classifier_side: int) -> tuple[int, int]:
    """(h, w) of the stored map of a map of ``shape``: longer side ≤ max(256, classifier side), ≤ the source."""
    h, w = shape
    bound = max(MIN_SIDE, int(classifier_side))
    if max(h, w) <= bound:
        return h, w
    f = bound / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def encode(ig: np.ndarray, classifier_side: int) -> dict[str, np.ndarray]:
    """The stored form of a float map (any size): ``q``, ``scale``, ``source_shape``."""
    from PIL import Image

    a = np.asarray(ig, np.float32)
    h, w = stored_shape(a.shape, classifier_side)
    if (h, w) != a.shape:
        small = np.asarray(Image.fromarray(a).resize((w, h), Image.BOX), np.float32)
        a = small * np.float32(a.size / small.size)  # the same sum
    top = float(np.abs(a).max()) if a.size else 0.0
    if not np.isfinite(top):
        raise ValueError("the IG map holds NaN or infinite values")
    q = np.zeros(a.shape, np.int8) if top == 0 else \
        np.round(LEVELS * np.sign(a) * np.sqrt(np.abs(a) / top)).astype(np.int8)
    return {"q": q, "scale": np.float32(top), "source_shape": np.array(ig.shape[:2], np.int32)}


def decode(q: np.ndarray, scale: float) -> np.ndarray:
    v = q.astype(np.float32) / LEVELS
    return np.sign(v) * v * v * np.float32(scale)


def save_ig(path: Path, ig: np.ndarray, classifier_side: int) -> Path:
    """Write the compact map atomically (temporary name, then rename); returns the path (``.npz``)."""
    path = Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **encode(ig, classifier_side))
    os.replace(tmp, path)
    return path


def load_ig(path: str | os.PathLike) -> np.ndarray:
    """A stored map as float32 (at its stored resolution; the panels resize it to the image)."""
    path = Path(path)
    if path.suffix == ".npy":  # stored by an earlier version: float32 at the source's size
        return np.load(path).astype(np.float32)
    with np.load(path) as z:
        return decode(z["q"], float(z["scale"]))
