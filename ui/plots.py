"""Fast raster plots for the review screen (numpy + PIL, no matplotlib: a slider move must redraw
a 120,000-point scatter in a few milliseconds).

Every function returns an RGB uint8 array that Gradio shows as an image; images of the dataset
are enlarged with nearest-neighbour so 64-px pixels stay sharp.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

KEPT = np.array([46, 125, 50], np.float32)  # green
PRUNED = np.array([198, 40, 40], np.float32)  # red
ACCEPTED = np.array([21, 101, 192], np.float32)  # blue (manual accept)
REJECTED = np.array([94, 53, 177], np.float32)  # purple (manual reject)
BG = (255, 255, 255)
AXIS = (60, 60, 60)


def _ascii(text: str) -> str:
    """PIL's built-in font has no Greek letters: spell them."""
    for a, b in (("ψ", "psi"), ("ρ", "rho"), ("Ψ", "Psi"), ("Σ", "sum"), ("·", "*"), ("→", "->"), ("–", "-")):
        text = text.replace(a, b)
    return text


def fit_size(hw: tuple[int, int], size: int) -> tuple[int, int]:
    """(height, width) of an image of ``hw`` scaled, aspect ratio kept, so its longer side is ``size``."""
    h, w = hw
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def enlarge(img: np.ndarray, size: int = 256) -> np.ndarray:
    """The image scaled so its longer side is ``size`` px, aspect ratio kept (a non-square image is
    never distorted): nearest-neighbour when enlarging (small pixels stay sharp), Lanczos when shrinking."""
    h, w = img.shape[:2]
    th, tw = fit_size((h, w), size)
    if (th, tw) == (h, w):
        return img
    pil = Image.fromarray(img)
    return np.asarray(pil.resize((tw, th), Image.NEAREST if th >= h else Image.LANCZOS))


def overlay_mask(img: np.ndarray, mask: Optional[np.ndarray], colour=(255, 64, 64), alpha: float = 0.45) -> np.ndarray:
    if mask is None:
        return img
    m = (mask >= 128)[..., None]
    tint = np.array(colour, np.float32)
    return np.where(m, (1 - alpha) * img + alpha * tint, img).astype(np.uint8)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    m = mask >= 128
    edge = np.zeros_like(m)
    edge[1:, :] |= m[1:, :] != m[:-1, :]
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    return edge


def heatmap_overlay(img: np.ndarray, ig: np.ndarray, mask: Optional[np.ndarray], size: int = 256) -> np.ndarray:
    """IG attribution (positive = towards the target class) over the image, with the mask outline;
    the longer side ``size`` px, aspect ratio kept."""
    a = np.asarray(ig, np.float32)
    if a.shape != img.shape[:2]:
        a = np.asarray(Image.fromarray(a).resize(img.shape[1::-1], Image.BILINEAR))
    scale = np.percentile(np.abs(a), 99) or 1.0
    v = np.clip(a / scale, -1, 1)
    heat = np.zeros(img.shape, np.float32)
    heat[..., 0] = np.clip(v, 0, 1) * 255  # red: supports the target class
    heat[..., 2] = np.clip(-v, 0, 1) * 255  # blue: against it
    alpha = np.abs(v)[..., None] * 0.75
    out = ((1 - alpha) * (img.astype(np.float32) * 0.6) + alpha * heat).astype(np.uint8)
    big = enlarge(out, size)
    if mask is not None:
        th, tw = big.shape[:2]
        edge = mask_outline(np.asarray(Image.fromarray(mask).resize((tw, th), Image.NEAREST)))
        big = big.copy()
        big[edge] = (255, 235, 59)
    return big


def softmax_bars(probs_src: Sequence[float], probs_gen: Sequence[float], names: Sequence[str], source: int,
                 Psi: Optional[float], w: int = 300, h: int = 256) -> np.ndarray:
    """Class probabilities of source (grey) vs result (colour) as bars, with the Ψ_i line on class i."""
    im = Image.new("RGB", (w, h), BG)
    d = ImageDraw.Draw(im)
    n = len(names)
    top, bottom, left = 28, h - 36, 10
    plot_h = bottom - top
    slot = (w - 2 * left) / max(1, n)
    d.text((left, 6), "P(class): source (grey) → result (blue)", fill=AXIS)
    d.line([(left, bottom), (w - left, bottom)], fill=AXIS)
    for c in range(n):
        x0 = left + c * slot + slot * 0.15
        bw = slot * 0.33
        for k, (p, col) in enumerate(((probs_src[c], (170, 170, 170)), (probs_gen[c], (33, 150, 243)))):
            y = bottom - float(p) * plot_h
            d.rectangle([x0 + k * bw, y, x0 + (k + 1) * bw - 2, bottom], fill=col)
            d.text((x0 + k * bw, max(top - 12, y - 12)), f"{float(p):.2f}", fill=AXIS)
        d.text((x0, bottom + 6), names[c][:14], fill=AXIS)
        if c == source and Psi is not None:
            y = bottom - float(Psi) * plot_h
            d.line([(x0 - 4, y), (x0 + 2 * bw + 2, y)], fill=(230, 81, 0), width=2)
            d.text((x0 + 2 * bw + 4, y - 6), "Psi", fill=(230, 81, 0))
    return np.asarray(im)


def _scale(v: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    return np.clip(((v - lo) / (hi - lo + 1e-12) * (n - 1)).round(), 0, n - 1).astype(np.int64)


def scatter(psi: np.ndarray, rho: np.ndarray, status: np.ndarray, psi_line: Optional[float], rho_line: Optional[float],
            w: int = 360, h: int = 260, ranges: Optional[tuple] = None, title: str = "") -> np.ndarray:
    """ψ (x) against ρ (y) as a density raster coloured by decision.

    ``status``: 0 auto-pruned, 1 auto-kept, 2 manually accepted, 3 manually rejected.
    """
    im = np.full((h, w, 3), 255, np.float32)
    ml, mr, mt, mb = 34, 8, 18, 22
    pw, ph = w - ml - mr, h - mt - mb
    ok = np.isfinite(psi) & np.isfinite(rho)
    if ranges is None:
        x0, x1 = 0.0, 1.0
        y0, y1 = (np.percentile(rho[ok], [0.5, 99.5]) if ok.any() else (0.0, 1.0))
        if y1 <= y0:
            y1 = y0 + 1.0
    else:
        (x0, x1), (y0, y1) = ranges
    xs, ys = _scale(psi[ok], x0, x1, pw), ph - 1 - _scale(rho[ok], y0, y1, ph)
    st = status[ok]
    for code, colour in ((0, PRUNED), (1, KEPT), (3, REJECTED), (2, ACCEPTED)):
        sel = st == code
        if not sel.any():
            continue
        cnt = np.bincount(ys[sel] * pw + xs[sel], minlength=pw * ph).reshape(ph, pw)
        a = np.clip(0.35 + np.log1p(cnt) / 4, 0, 0.95) * (cnt > 0)
        region = im[mt:mt + ph, ml:ml + pw]
        region[:] = region * (1 - a[..., None]) + colour * a[..., None]
    out = Image.fromarray(im.astype(np.uint8))
    d = ImageDraw.Draw(out)
    d.rectangle([ml - 1, mt - 1, ml + pw, mt + ph], outline=AXIS)
    if psi_line is not None and x0 <= psi_line <= x1:
        x = ml + _scale(np.array([psi_line]), x0, x1, pw)[0]
        d.line([(x, mt), (x, mt + ph)], fill=(230, 81, 0), width=2)
    if rho_line is not None and y0 <= rho_line <= y1:
        y = mt + ph - 1 - _scale(np.array([rho_line]), y0, y1, ph)[0]
        d.line([(ml, y), (ml + pw, y)], fill=(230, 81, 0), width=2)
    d.text((ml, 3), _ascii(title or "psi (x) vs rho (y)"), fill=AXIS)
    d.text((ml, h - 16), f"psi {x0:.1f}", fill=AXIS)
    d.text((ml + pw - 34, h - 16), f"{x1:.1f}", fill=AXIS)
    d.text((2, mt), f"{y1:.2g}", fill=AXIS)
    d.text((2, mt + ph - 10), f"{y0:.2g}", fill=AXIS)
    return np.asarray(out)


def histogram(values: np.ndarray, line: Optional[float], label: str, w: int = 300, h: int = 120, bins: int = 40,
              rng: Optional[tuple[float, float]] = None) -> np.ndarray:
    v = values[np.isfinite(values)]
    im = Image.new("RGB", (w, h), BG)
    d = ImageDraw.Draw(im)
    ml, mt, mb = 8, 16, 16
    pw, ph = w - 2 * ml, h - mt - mb
    d.text((ml, 2), _ascii(label), fill=AXIS)
    if v.size == 0:
        d.text((ml, h // 2), "no scored candidates", fill=AXIS)
        return np.asarray(im)
    lo, hi = rng if rng else (float(v.min()), float(v.max()))
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    top = counts.max() or 1
    bw = pw / bins
    for k, c in enumerate(counts):
        x = ml + k * bw
        below = line is not None and edges[k + 1] <= line
        d.rectangle([x, mt + ph - c / top * ph, x + bw - 1, mt + ph], fill=(120, 144, 156) if below else (84, 110, 122))
    if line is not None and lo <= line <= hi:
        x = ml + (line - lo) / (hi - lo) * pw
        d.line([(x, mt), (x, mt + ph)], fill=(230, 81, 0), width=2)
    d.text((ml, h - 14), f"{lo:.2g}", fill=AXIS)
    d.text((w - ml - 30, h - 14), f"{hi:.2g}", fill=AXIS)
    return np.asarray(im)
