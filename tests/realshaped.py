"""Small datasets in the layouts users bring, with the properties of the real ones: non-square
images of mixed sizes, JPEG, CelebA's 178×218, grayscale / RGBA / palette / 16-bit PNGs.

Each image is a textured background (its spurious attribute) with an object (its class) drawn at
a random place; the object mask is written where the layout has masks. Deterministic per seed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZES = ((96, 64), (64, 80), (72, 72), (110, 70), (58, 92))  # (width, height): wide, tall, square
BACKGROUNDS = ((96, 140, 70), (60, 110, 190), (170, 150, 110), (120, 120, 120))  # per attribute value
OBJECTS = ((230, 140, 40), (245, 245, 235), (150, 60, 160))  # per class


def render(rng: np.random.Generator, size: tuple[int, int], label: int, attr: int) -> tuple[Image.Image, Image.Image]:
    """(RGB image, L mask with 255 on the object) of ``size`` (width, height)."""
    w, h = size
    bg = np.array(BACKGROUNDS[attr % len(BACKGROUNDS)], np.float32)
    noise = rng.normal(0, 14, (h, w, 3))
    stripes = 18 * np.sin(np.arange(h)[:, None, None] / (3 + attr))
    img = Image.fromarray(np.clip(bg + noise + stripes, 0, 255).astype(np.uint8))
    mask = Image.new("L", (w, h), 0)
    ow, oh = int(w * rng.uniform(0.3, 0.5)), int(h * rng.uniform(0.3, 0.5))
    if label == 1:
        ow, oh = int(ow * 1.3), max(4, int(oh * 0.6))  # long and flat
    x0, y0 = int(rng.integers(0, max(1, w - ow))), int(rng.integers(0, max(1, h - oh)))
    box = [x0, y0, min(w - 1, x0 + ow), min(h - 1, y0 + oh)]
    ImageDraw.Draw(img).ellipse(box, fill=OBJECTS[label % len(OBJECTS)])
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return img, mask


def _groups(n: int, rng: np.random.Generator, n_classes: int, n_attrs: int, correlation: float, balanced: bool):
    """(label, attr) pairs: classes alternate; attr = label (mod n_attrs) with probability ``correlation``."""
    out = []
    for k in range(n):
        y = k % n_classes
        if balanced:
            a = (k // n_classes) % n_attrs
        else:
            a = y % n_attrs if rng.uniform() < correlation else (y + 1) % n_attrs
        out.append((y, a))
    return out


def waterbirds(root: Path, n_train: int = 24, n_val: int = 8, n_test: int = 8, seed: int = 0) -> Path:
    """WILDS layout: metadata.csv (img_filename, y, place, split, mask_filename); JPEG images of mixed
    sizes and aspect ratios in species folders; PNG masks of the same sizes under segmentations/."""
    rng = np.random.default_rng(seed)
    rows = []
    k = 0
    for split_code, n in ((0, n_train), (1, n_val), (2, n_test)):
        for y, place in _groups(n, rng, 2, 2, 0.85, balanced=split_code != 0):
            size = SIZES[k % len(SIZES)]
            img, mask = render(rng, size, y, place)
            rel = f"{y:03d}.Species_{y}/img_{k:04d}.jpg"
            mrel = f"segmentations/{y:03d}.Species_{y}/img_{k:04d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / mrel).parent.mkdir(parents=True, exist_ok=True)
            img.save(root / rel, quality=90)
            mask.save(root / mrel)
            rows.append({"img_id": k, "img_filename": rel, "y": y, "split": split_code, "place": place,
                         "place_filename": f"/x/{k}.jpg", "mask_filename": mrel})
            k += 1
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


CELEBA_ATTRS = ("5_o_Clock_Shadow", "Blond_Hair", "Eyeglasses", "Male", "Smiling")


def celeba(root: Path, n_train: int = 24, n_val: int = 8, n_test: int = 8, seed: int = 0) -> Path:
    """CelebA layout: img_align_celeba/*.jpg at 178×218, list_attr_celeba.txt (a count line, a header
    of attribute names, then ±1 values) and list_eval_partition.txt."""
    rng = np.random.default_rng(seed)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    attr_lines, part_lines = [], []
    k = 0
    for split_code, n in ((0, n_train), (1, n_val), (2, n_test)):
        for y, male in _groups(n, rng, 2, 2, 0.85, balanced=split_code != 0):
            name = f"{k + 1:06d}.jpg"
            img, _ = render(rng, (178, 218), y, male)
            img.save(root / "img_align_celeba" / name, quality=92)
            vals = {a: int(rng.choice([-1, 1])) for a in CELEBA_ATTRS}
            vals["Blond_Hair"], vals["Male"] = (1 if y else -1), (1 if male else -1)
            attr_lines.append(name + "  " + " ".join(f"{vals[a]:2d}" for a in CELEBA_ATTRS))
            part_lines.append(f"{name} {split_code}")
            k += 1
    (root / "list_attr_celeba.txt").write_text(f"{k}\n" + " ".join(CELEBA_ATTRS) + " \n" + "\n".join(attr_lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(part_lines) + "\n")
    return root


def metashift(root: Path, per_context: int = 6, seed: int = 0) -> Path:
    """MetaShift cat/dog layout: train/{cat,dog}/<context>/ (cat: sofa, bed; dog: bench, bike) and
    test/{cat,dog}/shelf/, JPEGs of mixed sizes; no val/ folder (a share of train is held out)."""
    rng = np.random.default_rng(seed)
    layout = {("train", "cat"): ("sofa", "bed"), ("train", "dog"): ("bench", "bike"),
              ("test", "cat"): ("shelf",), ("test", "dog"): ("shelf",)}
    contexts = sorted({c for cs in layout.values() for c in cs})
    k = 0
    for (split, cls), ctxs in layout.items():
        for ctx in ctxs:
            folder = root / split / cls / ctx
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(per_context):
                img, _ = render(rng, SIZES[k % len(SIZES)], ("cat", "dog").index(cls), contexts.index(ctx))
                img.save(folder / f"{k:05d}.jpg", quality=88)
                k += 1
    return root


def imagefolder(root: Path, per_class: tuple[int, int, int] = (12, 4, 4), seed: int = 0) -> Path:
    """ImageFolder layout: {train,val,test}/<class>/ PNGs in grayscale (L), RGBA, palette (P) and
    16-bit grayscale modes, of mixed sizes, with groups.csv (path, attr) for every image."""
    rng = np.random.default_rng(seed)
    classes = ("three", "eight")
    groups = []
    k = 0
    for split, n in zip(("train", "val", "test"), per_class):
        for ci, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                attr = (ci if rng.uniform() < 0.85 else 1 - ci) if split == "train" else j % 2
                img, _ = render(rng, SIZES[k % len(SIZES)], ci, attr)
                mode = ("L", "RGBA", "P", "I;16", "RGB")[k % 5]
                path = folder / f"{k:05d}.png"
                if mode == "L":
                    img.convert("L").save(path)
                elif mode == "RGBA":
                    rgba = img.convert("RGBA")
                    rgba.putalpha(Image.fromarray(np.full(img.size[::-1], 255, np.uint8)))
                    rgba.save(path)
                elif mode == "P":
                    img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path)
                elif mode == "I;16":
                    grey = np.asarray(img.convert("L"), np.uint16) * 257  # full 16-bit range
                    Image.fromarray(grey).save(path)
                else:
                    img.save(path)
                groups.append({"path": path.relative_to(root).as_posix(), "attr": ("stripes", "dots")[attr]})
                k += 1
    with open(root / "groups.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "attr"])
        w.writeheader()
        w.writerows(groups)
    return root


WRITERS = {"waterbirds": waterbirds, "celeba": celeba, "metashift": metashift, "imagefolder": imagefolder}
