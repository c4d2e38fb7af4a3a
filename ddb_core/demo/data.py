"""The offline demo benchmark: a procedurally generated, Waterbirds-like dataset.

Consumes a ``DemoDataConfig`` (seed, sizes, correlation strength) and produces a folder in the
Waterbirds/WILDS layout:

    <out>/metadata.csv      img_filename, y, place, split, mask_filename
    <out>/images/<split>/<id>.png   RGB uint8, ``image_size`` square
    <out>/masks/<split>/<id>.png    single-channel uint8, 255 = foreground object (causal part)
    <out>/dataset.json      class and place names, the config, group counts

The *causal* feature is the foreground bird: class 0 ("landbird") is a compact songbird with a
short beak, a tail, legs and a spotted texture; class 1 ("waterbird") is a long-bodied swimming
bird with a long neck, a long flat bill and a striped texture. Pose, size, position, colour and
texture vary within a class, and the colour ranges of the two classes overlap. The *spurious*
feature is the background: place 0 ("land": ground, grass, trees) or place 1 ("water": waves).
Each class sits mostly on its own place (``correlation``), as in Waterbirds.

Every image is a pure function of ``(seed, split, index)``, so generation is deterministic and
can be split across processes.
"""

from __future__ import annotations

import colorsys
import csv
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..project.errors import ConfigError, DatasetError
from ..project.progress import ProgressFn, ProgressTracker

CLASS_NAMES = ("landbird", "waterbird")
PLACE_NAMES = ("land", "water")
GENERATOR_VERSION = 2
SPLITS = ("train", "val", "test")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}  # WILDS convention
# Data seeds from here up are never a benchmark's: they render the judges' training images (``bench.judges``) and
# the micro model's corpus (``demo.corpus``), so that neither has seen a benchmark image.
RESERVED_SEEDS_FROM = 1_000_000


@dataclass(frozen=True)
class DemoDataConfig:
    """How to generate the demo benchmark. Defaults: Waterbirds proportions at about half scale."""

    seed: int = 0  # every image is a function of (seed, split, index)
    image_size: int = 64  # side of the square RGB images, pixels
    n_train: int = 2378  # Waterbirds train has 4795; half scale
    n_val: int = 601  # Waterbirds val has 1199
    n_test: int = 1448  # Waterbirds test has 5794; quarter scale keeps generation fast
    class0_fraction: float = 0.774  # share of class 0 (landbird) in every split, as in Waterbirds
    correlation: float = 0.95  # train share of each class on its own place (Waterbirds: ~0.95)
    workers: int = 2  # processes used for rendering

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if not 16 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be in [16, 1024], got {self.image_size}")
        for name in ("n_train", "n_val", "n_test"):
            if getattr(self, name) < 4:
                raise ConfigError(f"{name} must be at least 4 (one image per group), got {getattr(self, name)}")
        if not 0.0 < self.class0_fraction < 1.0:
            raise ConfigError(f"class0_fraction must be in (0, 1), got {self.class0_fraction}")
        if not 0.5 <= self.correlation < 1.0:
            raise ConfigError(f"correlation must be in [0.5, 1), got {self.correlation}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")

    def group_counts(self) -> dict[str, list[int]]:
        """Counts per split of groups (y, place) in order c0-p0, c0-p1, c1-p0, c1-p1.

        Train is correlated (each class mostly on its own place); val and test are balanced
        within each class, as in Waterbirds.
        """
        out = {}
        for split, n in (("train", self.n_train), ("val", self.n_val), ("test", self.n_test)):
            n0 = max(2, round(n * self.class0_fraction))
            n1 = max(2, n - n0)
            if split == "train":
                c0_own = min(n0 - 1, round(n0 * self.correlation))
                c1_own = min(n1 - 1, round(n1 * self.correlation))
                out[split] = [c0_own, n0 - c0_own, n1 - c1_own, c1_own]
            else:
                out[split] = [n0 - n0 // 2, n0 // 2, n1 - n1 // 2, n1 // 2]
        return out


# ---------------------------------------------------------------------------------------------
# Rendering. Everything is drawn at twice the output size and downsampled (anti-aliasing).


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [-1, 1], HxW float32: a random ``cells`` grid upsampled bicubically."""
    grid = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    img = Image.fromarray(grid, "L").resize((size, size), Image.BICUBIC)
    return np.asarray(img, np.float32) / 127.5 - 1.0


def _background(rng: np.random.Generator, place: int, R: int) -> Image.Image:
    """A land (0) or water (1) scene, RGB, R x R."""
    horizon = int(R * rng.uniform(0.18, 0.38))
    sky_top = np.array(_hsv(rng.uniform(0.55, 0.62), rng.uniform(0.15, 0.45), rng.uniform(0.8, 1.0)), np.float32)
    sky_bottom = np.clip(sky_top + rng.uniform(10, 35), 0, 255)
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    sky = sky_top * (1 - t) + sky_bottom * t
    img = np.empty((R, R, 3), np.float32)
    img[:horizon] = sky
    low = R - horizon
    if place == 0:  # land: ground with blotches of grass and soil
        ground = np.array(_hsv(rng.uniform(0.16, 0.30), rng.uniform(0.45, 0.8), rng.uniform(0.35, 0.65)), np.float32)
        soil = np.array(_hsv(rng.uniform(0.06, 0.11), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.55)), np.float32)
        n = _smooth_noise(rng, R, int(rng.integers(4, 9)))[horizon:]
        mix = np.clip(0.5 + 0.8 * n, 0, 1)[..., None]
        fine = _smooth_noise(rng, R, 24)[horizon:, :, None] * 18
        img[horizon:] = ground * mix + soil * (1 - mix) + fine
    else:  # water: blue-green with horizontal wave streaks
        water = np.array(_hsv(rng.uniform(0.52, 0.62), rng.uniform(0.45, 0.85), rng.uniform(0.45, 0.8)), np.float32)
        y = np.arange(low, dtype=np.float32)[:, None]
        x = np.arange(R, dtype=np.float32)[None, :]
        freq = rng.uniform(0.25, 0.6)
        waves = np.sin(y * freq + 2.0 * np.sin(x * rng.uniform(0.03, 0.08) + rng.uniform(0, 6.3)))
        streaks = np.clip(waves, 0.6, 1.0) - 0.6  # thin bright crests
        depth = (y / max(low, 1)) * rng.uniform(-30, 10)
        img[horizon:] = water + depth[..., None] + streaks[..., None] * rng.uniform(90, 160) + _smooth_noise(rng, R, 6)[horizon:, :, None] * 12
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    if place == 0:  # trees on the horizon and grass strokes
        for _ in range(int(rng.integers(1, 5))):
            tx, r = rng.uniform(0, R), rng.uniform(0.05, 0.12) * R
            ty = horizon + rng.uniform(-0.02, 0.06) * R
            draw.rectangle([tx - r * 0.15, ty - r * 0.2, tx + r * 0.15, ty + r * 1.2], fill=_hsv(0.07, 0.6, 0.3))
            draw.ellipse([tx - r, ty - 1.8 * r, tx + r, ty + 0.2 * r], fill=_hsv(rng.uniform(0.22, 0.36), 0.7, rng.uniform(0.2, 0.45)))
        for _ in range(int(rng.integers(20, 50))):
            gx, gy = rng.uniform(0, R), rng.uniform(horizon + 4, R)
            h = rng.uniform(2, 6)
            draw.line([gx, gy, gx + rng.uniform(-2, 2), gy - h], fill=_hsv(rng.uniform(0.2, 0.33), 0.7, rng.uniform(0.3, 0.7)), width=1)
    else:  # a distant shore line on some water scenes
        if rng.uniform() < 0.5:
            draw.rectangle([0, horizon - 2, R, horizon + 1], fill=_hsv(rng.uniform(0.2, 0.33), 0.5, 0.35))
    return out


def _transform(points: np.ndarray, cx: float, cy: float, scale: float, angle: float, flip: bool) -> list[tuple[float, float]]:
    """Local object coordinates (x right, y down, unit = ``scale`` px) to image coordinates."""
    p = points.astype(np.float64).copy()
    if flip:
        p[:, 0] = -p[:, 0]
    c, s = math.cos(angle), math.sin(angle)
    x = (p[:, 0] * c - p[:, 1] * s) * scale + cx
    y = (p[:, 0] * s + p[:, 1] * c) * scale + cy
    return list(zip(x.tolist(), y.tolist()))


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28, rot: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + x * c - y * s, cy + x * s + y * c], 1)


def _thick_curve(points: np.ndarray, width: float) -> np.ndarray:
    """A polygon around a polyline, ``width`` wide (for necks and legs)."""
    d = np.gradient(points, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    normal = np.stack([-d[:, 1], d[:, 0]], 1) * width / 2
    return np.concatenate([points + normal, (points - normal)[::-1]])


def _bird_parts(cls: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(body parts, dark parts, eye position) of one bird, in local coordinates."""
    if cls == 0:  # landbird: compact round body, round head, short beak, fanned tail, legs
        bw, bh = rng.uniform(0.38, 0.48), rng.uniform(0.28, 0.36)
        hx, hy, hr = bw * 0.85, -bh * 0.95, rng.uniform(0.17, 0.23)
        beak_len = rng.uniform(0.12, 0.2)
        tail_up = rng.uniform(-0.3, 0.15)
        parts = [
            _ellipse(0, 0, bw, bh),
            _ellipse(hx, hy, hr, hr),
            np.array([[hx + hr * 0.8, hy - 0.06], [hx + hr + beak_len, hy + 0.01], [hx + hr * 0.8, hy + 0.07]]),
            np.array([[-bw * 0.8, -0.05], [-bw - 0.35, tail_up - 0.14], [-bw - 0.3, tail_up + 0.1]]),
        ]
        for lx in (-0.08, 0.08):
            parts.append(_thick_curve(np.array([[lx, bh * 0.8], [lx - 0.03, bh + 0.2], [lx - 0.05, bh + 0.3]]), 0.05))
        dark = [_ellipse(-0.05, -0.02, bw * 0.6, bh * 0.45, rot=rng.uniform(-0.3, 0.1))]
        eye = np.array([hx + hr * 0.35, hy - hr * 0.2])
    else:  # waterbird: long low body, long S-neck, small head, long flat bill
        bw, bh = rng.uniform(0.55, 0.7), rng.uniform(0.16, 0.22)
        neck_h = rng.uniform(0.45, 0.75)
        lean = rng.uniform(-0.1, 0.2)
        neck = np.array([[bw * 0.6, -bh * 0.3], [bw * 0.8 + lean * 0.3, -neck_h * 0.45],
                         [bw * 0.65 + lean, -neck_h * 0.8], [bw * 0.75 + lean, -neck_h]])
        hx, hy = bw * 0.8 + lean, -neck_h - 0.04
        bill = rng.uniform(0.28, 0.42)
        parts = [
            _ellipse(0, 0, bw, bh, n=32),
            _thick_curve(neck, rng.uniform(0.09, 0.13)),
            _ellipse(hx, hy, 0.13, 0.1),
            np.array([[hx + 0.08, hy - 0.04], [hx + 0.1 + bill, hy + 0.01], [hx + 0.08, hy + 0.05]]),
            np.array([[-bw * 0.85, -0.02], [-bw - 0.22, -bh - 0.08], [-bw - 0.05, 0.06]]),
        ]
        dark = [_ellipse(-0.1, -0.03, bw * 0.55, bh * 0.55)]
        eye = np.array([hx + 0.04, hy - 0.03])
    return parts, dark, eye


def _palette(cls: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Base (h, s, v) of a bird. The two class palettes overlap (brown, grey)."""
    if cls == 0:
        choices = [(0.08, 0.65, 0.6), (0.05, 0.75, 0.85), (0.13, 0.8, 0.9), (0.0, 0.7, 0.75), (0.6, 0.05, 0.6), (0.0, 0.02, 0.9)]
    else:
        choices = [(0.0, 0.02, 0.95), (0.6, 0.05, 0.6), (0.0, 0.0, 0.2), (0.08, 0.6, 0.6), (0.12, 0.15, 0.85), (0.05, 0.7, 0.8)]
    h, s, v = choices[int(rng.integers(len(choices)))]
    return h + rng.uniform(-0.03, 0.03), s + rng.uniform(-0.1, 0.1), v + rng.uniform(-0.12, 0.12)


def _bird(cls: int, rng: np.random.Generator, R: int, body_only: bool = False) -> tuple[Image.Image, Image.Image]:
    """(RGB layer, L alpha mask) of one bird at a random pose, size and position, R x R. With ``body_only`` the mask
    holds its body alone (no neck, head, bill, tail or legs); the random draws are the same either way."""
    scale = rng.uniform(0.17, 0.25) * R if cls == 0 else rng.uniform(0.12, 0.17) * R
    cx, cy = rng.uniform(0.32, 0.68) * R, rng.uniform(0.5, 0.7) * R
    angle, flip = rng.uniform(-0.25, 0.25), bool(rng.integers(2))
    parts, dark, eye = _bird_parts(cls, rng)
    h, s, v = _palette(cls, rng)
    base, shade = _hsv(h, s, v), _hsv(h, s, v * 0.6)
    mask = Image.new("L", (R, R), 0)
    md = ImageDraw.Draw(mask)
    layer = Image.new("RGB", (R, R), base)
    ld = ImageDraw.Draw(layer)
    for poly in parts[:1] if body_only else parts:
        md.polygon(_transform(poly, cx, cy, scale, angle, flip), fill=255)
    for poly in dark:
        ld.polygon(_transform(poly, cx, cy, scale, angle, flip), fill=shade)
    # Texture: spots (landbird) or stripes (waterbird), in a contrasting tone.
    tex = _hsv(h + rng.uniform(-0.05, 0.05), s * 0.5, 1.0 - v * 0.6 if v > 0.5 else 0.85)
    if cls == 0:
        for _ in range(int(rng.integers(6, 14))):
            p = _transform(np.array([[rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3)]]), cx, cy, scale, angle, flip)[0]
            r = rng.uniform(0.02, 0.045) * scale * 2
            ld.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=tex)
    else:
        gap = rng.uniform(0.07, 0.1)
        for k in range(-3, 4):
            yk = k * gap
            seg = _transform(np.array([[-0.7, yk], [0.7, yk]]), cx, cy, scale, angle, flip)
            ld.line(seg, fill=tex, width=max(1, int(scale * 0.035)))
    ex, ey = _transform(eye[None], cx, cy, scale, angle, flip)[0]
    er = max(1.0, scale * 0.035)
    ld.ellipse([ex - er, ey - er, ex + er, ey + er], fill=(10, 10, 10))
    beak_col = _hsv(rng.uniform(0.08, 0.14), 0.8, 0.85) if cls == 0 else _hsv(0.1, 0.3, rng.uniform(0.2, 0.6))
    beak = parts[2] if cls == 0 else parts[3]
    ld.polygon(_transform(beak, cx, cy, scale, angle, flip), fill=beak_col)
    return layer, mask


@dataclass
class Scene:
    """One rendered scene in layers, each ``size`` square: the image, the object mask (255 = bird), the same
    background without the bird, and the bird's own layer (its colours everywhere; valid where ``mask``)."""

    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray  # HxW uint8, 255 = bird
    background: np.ndarray  # HxWx3 uint8, the scene without the bird
    bird: np.ndarray  # HxWx3 uint8


def render_scene(rng: np.random.Generator, y: int, place: int, size: int, body_only: bool = False) -> Scene:
    """A bird of class ``y`` on a background of ``place``, drawn from ``rng`` (background first, then the bird); with
    ``body_only``, the same scene with the bird's body alone (the judges' "headless" negatives)."""
    R = size * 2
    bg = _background(rng, place, R)
    layer, mask = _bird(y, rng, R, body_only)
    background = np.asarray(bg.resize((size, size), Image.BOX))
    soft = mask.filter(ImageFilter.GaussianBlur(0.6))
    bg.paste(layer, (0, 0), soft)
    img = bg.resize((size, size), Image.BOX)
    m = mask.resize((size, size), Image.BOX)
    m_arr = np.where(np.asarray(m) >= 128, 255, 0).astype(np.uint8)
    return Scene(np.asarray(img), m_arr, background, np.asarray(layer.resize((size, size), Image.BOX)))


def render_background(rng: np.random.Generator, place: int, size: int) -> np.ndarray:
    """A scene of ``place`` with no bird, HxWx3 uint8."""
    return np.asarray(_background(rng, place, size * 2).resize((size, size), Image.BOX))


def check_seed(seed: int) -> None:
    """The benchmark's data seeds stay below ``RESERVED_SEEDS_FROM``: the seeds from there up render the images the
    judges and the micro model are trained on, which must never be the benchmark's."""
    if not 0 <= seed < RESERVED_SEEDS_FROM:
        raise ConfigError(f"seed must be in [0, {RESERVED_SEEDS_FROM}), got {seed}: seeds from {RESERVED_SEEDS_FROM} "
                          "up are reserved for the renders the judges and the micro model are trained on")


def render_sample(seed: int, split: str, index: int, y: int, place: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One demo image and its object mask: (HxWx3 uint8 RGB, HxW uint8 with 255 = object)."""
    scene = render_scene(np.random.default_rng([seed, SPLIT_CODES[split], index, GENERATOR_VERSION]), y, place, size)
    return scene.image, scene.mask


# ---------------------------------------------------------------------------------------------
# Whole dataset.


@dataclass
class DemoRow:
    img_filename: str
    y: int
    place: int
    split: int
    mask_filename: str


def plan_rows(cfg: DemoDataConfig) -> list[tuple[str, int, int, int]]:
    """(split, index, y, place) for every image, groups shuffled within a split (seeded)."""
    counts = cfg.group_counts()
    plan = []
    for split in SPLITS:
        labels = []
        for g, n in enumerate(counts[split]):
            labels += [(g // 2, g % 2)] * n
        order = np.random.default_rng([cfg.seed, SPLIT_CODES[split], 7]).permutation(len(labels))
        plan += [(split, i, *labels[j]) for i, j in enumerate(order)]
    return plan


def _render_chunk(args: tuple) -> list[tuple[str, str]]:
    seed, size, out, chunk = args
    out = Path(out)
    names = []
    for split, index, y, place in chunk:
        img, mask = render_sample(seed, split, index, y, place, size)
        name = f"{split}/{split}_{index:05d}.png"
        Image.fromarray(img, "RGB").save(out / "images" / name, compress_level=1)
        Image.fromarray(mask, "L").save(out / "masks" / name, compress_level=1)
        names.append((f"images/{name}", f"masks/{name}"))
    return names


def generate_demo_dataset(out_dir: str | os.PathLike, cfg: DemoDataConfig = DemoDataConfig(),
                          on_progress: Optional[ProgressFn] = None) -> Path:
    """Render the demo benchmark into ``out_dir`` and return the path of its ``metadata.csv``.

    Files are written first and ``metadata.csv`` last, so a folder with a metadata file is
    complete. An existing complete folder with the same config is reused as it is.
    """
    out = Path(out_dir)
    meta_path, info_path = out / "metadata.csv", out / "dataset.json"
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file, not a folder; nothing was written")
    ours = False
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
            ours = isinstance(info, dict) and "generator_version" in info
        except (OSError, ValueError):
            ours = False
        if ours and meta_path.exists() and info.get("config") == asdict(cfg) and \
                info.get("generator_version") == GENERATOR_VERSION:
            return meta_path
    if out.is_dir() and any(out.iterdir()) and not ours:
        # another dataset (a user's metadata.csv and images) is never written over
        raise DatasetError(f"--out {out} holds files that a demo-data run did not write (no dataset.json of this "
                           "generator); choose a new or empty folder. Nothing was written")
    for sub in ("images", "masks"):
        for split in SPLITS:
            (out / sub / split).mkdir(parents=True, exist_ok=True)
    plan = plan_rows(cfg)
    tracker = ProgressTracker("demo-data", len(plan), on_progress)
    chunk = 200
    jobs = [(cfg.seed, cfg.image_size, str(out), plan[i:i + chunk]) for i in range(0, len(plan), chunk)]
    names: list[tuple[str, str]] = []
    if cfg.workers > 1:
        with ProcessPoolExecutor(cfg.workers) as pool:
            for res in pool.map(_render_chunk, jobs):
                names += res
                tracker.update(len(names))
    else:
        for job in jobs:
            names += _render_chunk(job)
            tracker.update(len(names))
    tmp = meta_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["img_filename", "y", "place", "split", "mask_filename"])
        for (split, _i, y, place), (img_name, mask_name) in zip(plan, names):
            w.writerow([img_name, y, place, SPLIT_CODES[split], mask_name])
    info = {
        "name": "ddb-demo-birds",
        "generator_version": GENERATOR_VERSION,
        "class_names": list(CLASS_NAMES),
        "place_names": list(PLACE_NAMES),
        "object_prompt": "bird",
        "config": asdict(cfg),
        "group_counts": cfg.group_counts(),
    }
    info_path.write_text(json.dumps(info, indent=2))
    os.replace(tmp, meta_path)
    return meta_path
