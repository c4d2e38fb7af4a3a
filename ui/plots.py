"""Fast raster plots for the review screen (numpy + PIL, no matplotlib: a slider move must redraw
a 120,000-point scatter in a few milliseconds).

Every function returns an RGB uint8 array that Gradio shows as an image; images of the dataset
are enlarged with nearest-neighbour so 64-px pixels stay sharp.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KEPT = np.array([46, 125, 50], np.float32)  # green
PRUNED = np.array([198, 40, 40], np.float32)  # red
ACCEPTED = np.array([21, 101, 192], np.float32)  # blue (manual accept)
REJECTED = np.array([94, 53, 177], np.float32)  # purple (manual reject)
BG = (255, 255, 255)
AXIS = (60, 60, 60)


@lru_cache(maxsize=4)
def _font(size: int = 12) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, which matplotlib ships (found without importing it): every glyph the page uses (ψ, ρ, Σ, →)."""
    from importlib.util import find_spec

    return ImageFont.truetype(f"{find_spec('matplotlib').submodule_search_locations[0]}/mpl-data/fonts/ttf/DejaVuSans.ttf", size)


def _draw(im: Image.Image, size: int = 12) -> ImageDraw.ImageDraw:
    (d := ImageDraw.Draw(im)).font = _font(size)
    return d


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


def _title(d: ImageDraw.ImageDraw, text: str, w: int, y: int = 4) -> None:
    """A plot's title, right-aligned (the page draws the panel's label over the top-left corner)."""
    text = (text)
    d.text((max(4, w - d.textlength(text) - 8), y), text, fill=AXIS)


def _scale(v: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    return np.clip(((v - lo) / (hi - lo + 1e-12) * (n - 1)).round(), 0, n - 1).astype(np.int64)


LOGIT_CLIP = 1e-6  # ψ is drawn as logit(ψ), clipped to [1e-6, 1 - 1e-6]
PSI_TICKS = (1e-4, 1e-3, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class PlotFrame:
    """Where the data of a raster plot lie: the plot area (``left``, ``top``, ``width``, ``height`` px,
    inside an image of ``image_w`` × ``image_h``) and the data range it shows (``x0``..``x1`` left to
    right, ``y0``..``y1`` bottom to top), in the plot's own coordinates (logit ψ for the ψ–ρ plot)."""

    left: int
    top: int
    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    image_w: int
    image_h: int

    def pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Data coordinates → pixel column and row inside the plot area (clipped to it)."""
        return _scale(x, self.x0, self.x1, self.width), self.height - 1 - _scale(y, self.y0, self.y1, self.height)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def raster(points: list[tuple[np.ndarray, np.ndarray, np.ndarray]], frame: PlotFrame, background=BG) -> Image.Image:
    """Density rasters of point sets (x, y, RGB colour), drawn in order, each pixel's opacity growing
    with the log of its count; the plot area outlined."""
    im = np.full((frame.image_h, frame.image_w, 3), background, np.float32)
    region = im[frame.top:frame.top + frame.height, frame.left:frame.left + frame.width]
    for x, y, colour in points:
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            continue
        cx, cy = frame.pixels(x[ok], y[ok])
        cnt = np.bincount(cy * frame.width + cx, minlength=frame.width * frame.height).reshape(frame.height, frame.width)
        cnt = _spread(cnt, 2 if ok.sum() < 5_000 else 1 if ok.sum() < 50_000 else 0)  # sparse plots: bigger dots
        a = np.clip(0.35 + np.log1p(cnt) / 4, 0, 0.95) * (cnt > 0)
        region[:] = region * (1 - a[..., None]) + np.asarray(colour, np.float32) * a[..., None]
    out = Image.fromarray(im.astype(np.uint8))
    ImageDraw.Draw(out).rectangle([frame.left - 1, frame.top - 1, frame.left + frame.width, frame.top + frame.height],
                                  outline=AXIS)
    return out


def _spread(cnt: np.ndarray, r: int) -> np.ndarray:
    """Each count spread over its (2r+1)² neighbourhood (the maximum), so that few points stay visible."""
    if r <= 0:
        return cnt
    out = cnt.copy()
    h, w = cnt.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx or dy:
                ys, xs = slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), w + min(0, dx))
                yd, xd = slice(max(0, -dy), h + min(0, -dy)), slice(max(0, -dx), w + min(0, -dx))
                np.maximum(out[yd, xd], cnt[ys, xs], out=out[yd, xd])
    return out


def psi_rho_frame(psi: np.ndarray, rho: np.ndarray, psi_line: Optional[float], rho_range: tuple[float, float],
                  w: int = 640, h: int = 380, lpsi_range: Optional[tuple[float, float]] = None) -> PlotFrame:
    """The frame of the ψ–ρ plot: logit ψ from the 0.5 to the 99.5 percentile (``lpsi_range`` when already
    known) and the Ψ line, ρ over ``rho_range``. The same inputs always give the same frame, so a selection
    drawn on a plot maps back."""
    if lpsi_range is not None:
        lo, hi = lpsi_range
    else:
        finite = np.isfinite(psi) & np.isfinite(rho)
        lo, hi = np.percentile(logit(psi)[finite], [0.5, 99.5]) if finite.any() else (-4.0, 4.0)
    if psi_line is not None:
        lo, hi = min(lo, float(logit(psi_line))), max(hi, float(logit(psi_line)))
    pad = max(hi - lo, 1.0) * 0.04
    return PlotFrame(54, 30, w - 54 - 12, h - 30 - 40, float(lo - pad), float(hi + pad), float(rho_range[0]),
                     float(rho_range[1]), w, h)


def point_pixels(x: np.ndarray, y: np.ndarray, frame: PlotFrame) -> tuple[np.ndarray, np.ndarray]:
    """(which points are drawn, the flat pixel index of each drawn one) in ``frame``: what ``coded_raster``
    needs of the points' positions, which a caller may keep while only the codes change."""
    ok = np.isfinite(x) & np.isfinite(y)
    cx, cy = frame.pixels(x[ok], y[ok])
    return ok, (cy * frame.width + cx).astype(np.int64)


def coded_raster(x: np.ndarray, y: np.ndarray, codes: np.ndarray, colours: Sequence, frame: PlotFrame,
                 order: Optional[Sequence[int]] = None,
                 pixels: Optional[tuple[np.ndarray, np.ndarray]] = None, bigger: Sequence[int] = ()) -> Image.Image:
    """Like ``raster`` for points that carry a code (0..len(colours)-1) each: one counting pass for
    every code at once, the codes drawn in ``order``. ``pixels``: ``point_pixels`` of x, y, when kept;
    ``bigger``: codes drawn one pixel larger (so that a few stand out among many)."""
    ok, flat = pixels if pixels is not None else point_pixels(x, y, frame)
    c = np.asarray(codes)[ok].astype(np.int64)
    good = c >= 0
    k = len(colours)
    size = frame.width * frame.height
    cnt = np.bincount(c[good] * size + flat[good], minlength=k * size)
    cnt = cnt.reshape(k, frame.height, frame.width)
    n_drawn = int(good.sum())
    r = 2 if n_drawn < 5_000 else 1 if n_drawn < 50_000 else 0
    im = np.full((frame.image_h, frame.image_w, 3), BG, np.float32)
    region = im[frame.top:frame.top + frame.height, frame.left:frame.left + frame.width]
    for code in (order if order is not None else range(k)):
        c = _spread(cnt[code], r + (1 if code in bigger else 0))
        if not c.any():
            continue
        a = np.clip(0.35 + np.log1p(c) / 4, 0, 0.95) * (c > 0)
        region[:] = region * (1 - a[..., None]) + np.asarray(colours[code], np.float32) * a[..., None]
    out = Image.fromarray(im.astype(np.uint8))
    ImageDraw.Draw(out).rectangle([frame.left - 1, frame.top - 1, frame.left + frame.width, frame.top + frame.height],
                                  outline=AXIS)
    return out


def _label(d: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, w: int, fill) -> None:
    """``text`` at ``xy``, moved left so that it ends inside an image ``w`` px wide."""
    x, y = xy
    d.text((min(x, w - d.textlength(text) - 4), y), text, fill=fill)


def psi_rho_scatter(psi: np.ndarray, rho: np.ndarray, status: np.ndarray, psi_line: Optional[float],
                    rho_line: Optional[float], rho_range: tuple[float, float], title: str = "",
                    w: int = 640, h: int = 380, lpsi: Optional[np.ndarray] = None,
                    lpsi_range: Optional[tuple[float, float]] = None,
                    pixel_cache: Optional[dict] = None, p_decimals: int = 4) -> tuple[np.ndarray, PlotFrame]:
    """ψ (x, on a logit scale, so that values near 1 spread out) against ρ (y) as a density raster
    coloured by decision, with the Ψ and P lines; returns the image and its ``PlotFrame``. ``lpsi`` and
    ``lpsi_range`` (logit ψ and its percentile range) may be passed when already known.

    ``status``: 0 auto-pruned, 1 auto-kept, 2 manually accepted, 3 manually rejected. ``pixel_cache``: a
    dict kept with the points, where their pixels in each frame are remembered (a threshold move changes
    the colours, rarely the frame)."""
    lx = logit(psi) if lpsi is None else lpsi
    frame = psi_rho_frame(psi, rho, psi_line, rho_range, w, h, lpsi_range)
    key = (frame.x0, frame.x1, frame.y0, frame.y1, frame.width, frame.height)
    if pixel_cache is not None and key not in pixel_cache:  # kept for a few frames (the Ψ line can widen one)
        if len(pixel_cache) >= 4:
            pixel_cache.clear()
        pixel_cache[key] = point_pixels(lx, rho, frame)
    pix = pixel_cache.get(key) if pixel_cache is not None else None
    out = coded_raster(lx, rho, np.asarray(status), (PRUNED, KEPT, ACCEPTED, REJECTED), frame, order=(0, 1, 3, 2),
                       pixels=pix, bigger=(2, 3))
    d = _draw(out)
    line = (230, 81, 0)
    if psi_line is not None:
        x = frame.left + frame.pixels(np.array([float(logit(psi_line))]), np.zeros(1))[0][0]
        d.line([(x, frame.top), (x, frame.top + frame.height)], fill=line, width=2)
        text = f"Ψ {psi_line:.4f}"  # as the slider shows it
        _label(d, (x + 3, frame.top + 2) if x + 3 + d.textlength(text) < w - 4 else (x - d.textlength(text) - 3,
                                                                                    frame.top + 2), text, w, line)
    if rho_line is not None:  # beyond the plotted ρ: drawn dashed on the edge it lies past, and said so
        inside = frame.y0 <= rho_line <= frame.y1
        y = frame.top + frame.pixels(np.zeros(1), np.array([rho_line]))[1][0]
        if inside:
            d.line([(frame.left, y), (frame.left + frame.width, y)], fill=line, width=2)
        else:
            for x0 in range(frame.left, frame.left + frame.width, 12):
                d.line([(x0, y), (min(x0 + 6, frame.left + frame.width), y)], fill=line, width=2)
        where = "" if inside else (" (above the plot)" if rho_line > frame.y1 else " (below the plot)")
        text = f"P {rho_line:.{p_decimals}f}{where}"
        _label(d, (frame.left + 3, y - 13 if y - 13 > frame.top else y + 3), text, w, line)
    for t in PSI_TICKS:  # ψ ticks, at their logit
        lt = float(logit(t))
        if frame.x0 <= lt <= frame.x1:
            x = frame.left + frame.pixels(np.array([lt]), np.zeros(1))[0][0]
            d.line([(x, frame.top + frame.height), (x, frame.top + frame.height + 4)], fill=AXIS)
            d.text((x - 10, frame.top + frame.height + 6), f"{t:g}", fill=AXIS)
    d.text((frame.left, h - 16), "ψ = P(source class | result), logit scale", fill=AXIS)
    d.text((4, frame.top - 16), "ρ = Σ mask · IG", fill=AXIS)
    for v in np.linspace(frame.y0, frame.y1, 5):
        y = frame.top + frame.pixels(np.zeros(1), np.array([v]))[1][0]
        d.text((2, y - 5), f"{v:.3g}", fill=AXIS)
    _title(d, title or "ψ (x) against ρ (y)", w, 2)
    return np.asarray(out), frame


def selected_in(frame: PlotFrame, x: np.ndarray, y: np.ndarray, polygon: list[tuple[float, float]]) -> np.ndarray:
    """Which points (data coordinates) fall inside ``polygon`` (image pixels, as drawn on the plot): the
    polygon is filled on the plot area's pixel grid and each point tested at the pixel it is drawn on,
    so a selection holds exactly the dots it covers."""
    mask = Image.new("1", (frame.width, frame.height), 0)
    pts = [(float(px) - frame.left, float(py) - frame.top) for px, py in polygon]
    ImageDraw.Draw(mask).polygon(pts, fill=1, outline=1)
    grid = np.asarray(mask, bool)
    ok = np.isfinite(x) & np.isfinite(y)
    out = np.zeros(len(x), bool)
    cx, cy = frame.pixels(x[ok], y[ok])  # a point outside the frame's range is drawn on its edge, and selected there
    out[np.nonzero(ok)[0]] = grid[cy, cx]
    return out


def nearest(frame: PlotFrame, x: np.ndarray, y: np.ndarray, point: tuple[float, float], radius: float = 8.0) -> Optional[int]:
    """The index of the point drawn nearest to ``point`` (image pixels), if within ``radius`` px."""
    ok = np.nonzero(np.isfinite(x) & np.isfinite(y))[0]
    if not ok.size:
        return None
    cx, cy = frame.pixels(x[ok], y[ok])
    d2 = (cx + frame.left - point[0]) ** 2 + (cy + frame.top - point[1]) ** 2
    k = int(np.argmin(d2))
    return int(ok[k]) if d2[k] <= radius ** 2 else None
