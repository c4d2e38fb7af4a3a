"""Thumbnails of the candidates, for the review gallery.

A gallery page shows 48 candidates. Decoding 48 full-size PNGs (500×375 at Waterbirds size) and
shrinking them takes longer than the page's time budget, so every candidate gets a small JPEG when
it is made: its longer side ``SIDE`` px (an image already that small is kept as it is), beside the
project's other derived files at ``thumbs/<the candidate's path>.jpg``. A candidate made before
thumbnails existed gets its thumbnail the first time a gallery page shows it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SIDE = 96  # longer side of a thumbnail, px (the gallery's tile)
QUALITY = 85


def thumb_path(project, rel_path: str) -> Path:
    """Where the thumbnail of the candidate stored at ``rel_path`` (relative to the project) lives."""
    return project.root / "thumbs" / Path(rel_path).with_suffix(".jpg")


def make_thumbnail(image: np.ndarray, side: int = SIDE) -> np.ndarray:
    """``image`` (HWC uint8) shrunk so that its longer side is at most ``side`` (aspect ratio kept)."""
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    f = side / max(h, w)
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS))


def write_thumbnail(project, rel_path: str, image: np.ndarray) -> Path:
    """Write the thumbnail of a candidate image atomically (temporary name, then rename)."""
    from PIL import Image

    path = thumb_path(project, rel_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(make_thumbnail(image)).save(tmp, format="JPEG", quality=QUALITY)
    os.replace(tmp, path)
    return path


def thumbnail_file(project, rel_path: str) -> Path:
    """The file of the candidate's thumbnail, made from the full image when it is missing or empty."""
    from .imaging import load_rgb

    path = thumb_path(project, rel_path)
    try:
        if path.stat().st_size > 0:  # written whole or not at all (``write_thumbnail`` renames it into place)
            return path
    except OSError:
        pass

    return write_thumbnail(project, rel_path, load_rgb(project.project_path(rel_path)))


def thumbnail(project, rel_path: str) -> np.ndarray:
    """The candidate's thumbnail: read, or made from the full image and stored when it is missing or damaged."""
    from .imaging import load_rgb

    try:
        return load_rgb(thumbnail_file(project, rel_path))
    except Exception:  # a damaged thumbnail is made again from the image
        image = load_rgb(project.project_path(rel_path))
        write_thumbnail(project, rel_path, image)
        return make_thumbnail(image)
