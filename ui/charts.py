"""The small charts of the review screen: the softmax bars of one candidate (source against result, with Ψ) and the
ψ and ρ histograms with their thresholds (numpy + PIL, as ``plots``)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image

from .plots import AXIS, BG, _draw, _title


def softmax_bars(probs_src: Sequence[float], probs_gen: Sequence[float], names: Sequence[str], source: int,
                 Psi: Optional[float], w: int = 320, h: int = 256) -> np.ndarray:
    """Class probabilities of source (grey) vs result (blue) as bars, with the Ψ_i line on class i."""
    im = Image.new("RGB", (w, h), BG)
    d = _draw(im)
    n = len(names)
    top, bottom, left = 56, h - 44, 12  # the page's panel label covers the top-left 40 px
    plot_h = bottom - top
    slot = (w - 2 * left) / max(1, n)
    d.line([(left, bottom), (w - left, bottom)], fill=AXIS)
    for c in range(n):
        x0 = left + c * slot + slot * 0.15
        bw = slot * 0.33
        for k, (p, col) in enumerate(((probs_src[c], (170, 170, 170)), (probs_gen[c], (33, 150, 243)))):
            y = bottom - float(p) * plot_h
            d.rectangle([x0 + k * bw, y, x0 + (k + 1) * bw - 2, bottom], fill=col)
            if bottom - y > 18:  # inside a tall bar, where no threshold line crosses the text
                d.text((x0 + k * bw + 2, y + 3), f"{float(p):.2f}", fill=(255, 255, 255) if k else (40, 40, 40))
            else:
                d.text((x0 + k * bw, y - 13), f"{float(p):.2f}", fill=AXIS)
        d.text((x0, bottom + 5), (names[c][:18]), fill=AXIS)
        if c == source and Psi is not None:
            y = bottom - float(Psi) * plot_h
            d.line([(x0 - 4, y), (x0 + 2 * bw + 2, y)], fill=(230, 81, 0), width=2)
            d.text((x0 + 2 * bw + 4, y - 7), f"Ψ {float(Psi):.4f}", fill=(230, 81, 0))
    d.text((left, h - 18), "P(class): grey = source, blue = result", fill=AXIS)
    return np.asarray(im)


KEPT_BAR, PRUNED_BAR = (129, 199, 132), (229, 115, 115)  # light green / light red: the kept and the pruned side


def histogram(counts: tuple[np.ndarray, np.ndarray], line: Optional[float], label: str, w: int = 300,
              h: int = 120, keep_below: bool = True, shown=lambda v: v) -> np.ndarray:
    """Bars of ``counts`` (``np.histogram``'s counts and edges) with the threshold ``line`` (both in the axis's units;
    ``shown`` turns them into the values written at its ends): bars on the kept side
    (below the line with ``keep_below``, else above) green, on the pruned side red, in every histogram alike."""
    im = Image.new("RGB", (w, h), BG)
    d = _draw(im)
    ml, mt, mb = 8, 22, 16
    pw, ph = w - 2 * ml, h - mt - mb
    _title(d, label, w, 4)
    if not counts[0].sum():
        d.text((ml, h // 2), "no scored candidates", fill=AXIS)
        return np.asarray(im)
    counts, edges = counts
    bins, lo, hi = len(counts), float(edges[0]), float(edges[-1])
    top = counts.max() or 1
    bw = pw / bins
    for k, c in enumerate(counts):
        x = ml + k * bw
        mid = (edges[k] + edges[k + 1]) / 2
        kept = line is None or (mid < line if keep_below else mid > line)
        d.rectangle([x, mt + ph - c / top * ph, x + bw - 1, mt + ph], fill=KEPT_BAR if kept else PRUNED_BAR)
    if line is not None:  # beyond the bins: on the edge it lies past, dashed
        x = ml + (min(max(line, lo), hi) - lo) / (hi - lo) * pw
        if lo <= line <= hi:
            d.line([(x, mt), (x, mt + ph)], fill=(230, 81, 0), width=2)
        else:
            for y0 in range(mt, mt + ph, 8):
                d.line([(x, y0), (x, min(y0 + 4, mt + ph))], fill=(230, 81, 0), width=2)
    d.text((ml, h - 14), f"{shown(lo):.4g}", fill=AXIS)  # ``shown``: the axis's values as the reader knows them
    right = f"{shown(hi):.4g}"
    d.text((w - ml - d.textlength(right), h - 14), right, fill=AXIS)
    return np.asarray(im)
