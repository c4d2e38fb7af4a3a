"""Judges that look where the bird was repainted, as a person does (``ddb bench judges``).

A judge that reads the whole image is fooled by colour and texture: it calls a pasted square of waves
"waterbird". These two judges read only a crop around the repaint mask (its bounding box with a margin,
made square, ``CROP`` px):

- *bird present*: bird / no bird. "No bird" holds what a person calls no bird and a texture-reading
  classifier may call one: the background alone, the mask's region filled with the other place's
  background (a pasted square of waves or of grass), the region blurred until the shape is gone, the
  bird's own pixels scattered in random order over the region (its colours, no shape), the region's
  pixels in random order (a mottled blob of the bird's and the background's colours), a smooth blob of
  the bird's colour where the bird was (no head, bill or tail), an irregular polygon of the bird's size
  filled with its colours in random order, two to four overlapping ellipses in its colours (a lumpy blob
  with no head, bill, neck or tail), and the bird as a faint ghost (10-35% of its opacity, softened); and, as
  options (``--negatives``), the bird's body alone with no neck, head, bill, tail or legs (``headless``), and the
  region blurred by 1.5 to 3 px, its thin parts gone (``smeared``);
- *which bird*: landbird / waterbird, trained on birds over every background in equal numbers, so that
  the background cannot decide.

A result is a **target bird** when the first says "bird" and the second names the target class.

Both are trained only on scenes rendered for them, with data seeds from ``JUDGE_SEEDS_FROM`` up, which no
benchmark uses (``demo.data.check_seed`` refuses them for a benchmark); ``ddb bench judges`` trains them,
checks them on held-out judge renders and on the benchmark's real val renders (a target-bird rate of at
least 97% on real birds), and writes them to ``data/judges/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..demo.data import GENERATOR_VERSION, RESERVED_SEEDS_FROM, render_background, render_scene
from ..project.errors import ConfigError, ModelError
from ..project.progress import ProgressFn, ProgressTracker

CROP = 32  # side of the judges' input, pixels
JUDGE_SEEDS_FROM = RESERVED_SEEDS_FROM + 500_000  # the judges' renders; the micro model's corpus is below this
JUDGES_DIR = Path(__file__).resolve().parents[2] / "data" / "judges"  # shipped in the repository
NEGATIVE_KINDS = ("background", "other_place", "blurred", "bird_shuffled", "region_shuffled", "colour_blob",
                  "mottled_blob", "lumpy_blob", "faint")
# kinds a judge may also be trained with (``JudgeTrainConfig.negatives``); see docs/decisions/judges-ghosts.md
OPTIONAL_NEGATIVE_KINDS = ("headless", "smeared")
REAL_RENDER_GATE = 0.97


def judge_seed(seed: int) -> int:
    """The data seed of the judges' renders number ``seed``: never a benchmark's."""
    return JUDGE_SEEDS_FROM + seed


def crop_box(mask: np.ndarray, margin: float = 0.2, min_margin: int = 2) -> tuple[int, int, int, int]:
    """(top, left, side, side) of the square crop around a mask: its bounding box grown by ``margin`` of its
    longer side on every side, centred on the box, moved inside the image (the whole image's shorter side at
    most). An empty mask gives the centre square."""
    h, w = mask.shape[:2]
    ys, xs = np.nonzero(mask >= 128)
    if len(ys) == 0:
        side = min(h, w)
        return (h - side) // 2, (w - side) // 2, side, side
    bh, bw = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    side = int(min(min(h, w), max(bh, bw) + 2 * max(min_margin, round(margin * max(bh, bw)))))
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    top = int(min(max(0, round(cy - side / 2)), h - side))
    left = int(min(max(0, round(cx - side / 2)), w - side))
    return top, left, side, side


def mask_of(shape: str, obj: np.ndarray) -> np.ndarray:
    """The repaint mask of ``shape`` ("object", "object+Npx", "box") around an object mask."""
    from ..method.masking import box_of, dilate

    if shape == "box":
        return box_of(obj)
    if shape == "object":
        return obj
    if shape.startswith("object+") and shape.endswith("px") and shape[7:-2].isdigit():
        return dilate(obj, int(shape[7:-2]))
    raise ConfigError(f"mask shape must be object, object+Npx or box, got {shape!r}")


def judge_crop(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The judges' view of ``image`` (HxWx3 uint8, any size) around ``mask`` (HxW uint8, 255 = repainted):
    CROP x CROP x 3 uint8."""
    from PIL import Image

    top, left, sh, sw = crop_box(mask)
    patch = Image.fromarray(np.ascontiguousarray(image[top:top + sh, left:left + sw]))
    return np.asarray(patch.resize((CROP, CROP), Image.BILINEAR))


# ---------------------------------------------------------------------------------------------
# The judges' training renders.


def _repaint_region(rng: np.random.Generator, obj: np.ndarray) -> np.ndarray:
    """A repaint mask like the pipeline's around an object mask: the box with a margin, or the silhouette
    grown by 4-8 px (a silhouette grown less keeps its shape when filled with texture)."""
    from ..method.masking import box_of, dilate

    if rng.uniform() < 0.5:
        return box_of(obj, margin=float(rng.uniform(0.04, 0.14)))
    return dilate(obj, int(rng.integers(4, 9)))


def _soften(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A little blur and noise, as a decoder leaves them (the shape stays)."""
    from PIL import Image, ImageFilter

    r = float(rng.uniform(0, 0.8))
    out = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(r)), np.float32) if r > 0.05 else image.astype(np.float32)
    out = out + rng.normal(0, rng.uniform(0, 5), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def negative(rng: np.random.Generator, kind: str, scene, region: np.ndarray, place: int, body=None) -> np.ndarray:
    """A scene with no bird in ``region`` (255 = the repainted region), of one of ``NEGATIVE_KINDS`` or
    ``OPTIONAL_NEGATIVE_KINDS`` (``headless`` needs ``body``: the same scene rendered with the bird's body alone)."""
    from PIL import Image, ImageFilter

    inside = (region >= 128)[..., None]
    image = scene.image
    if kind == "background":
        return scene.background.copy()
    if kind == "other_place":
        other = render_background(rng, 1 - place, image.shape[0])
        return np.where(inside, other, image)
    if kind == "blurred":
        blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(rng.uniform(3, 6)))))
        return np.where(inside, blurred, image)
    if kind == "bird_shuffled":  # the bird's own pixels scattered over its region: its colours, no shape
        out = np.where(inside, scene.background, image)
        pix = image[scene.mask >= 128]
        spots = np.flatnonzero((region >= 128).ravel())
        at = rng.choice(spots, size=min(len(pix), len(spots)), replace=False)
        out.reshape(-1, 3)[at] = pix[:len(at)]
        return out
    if kind == "region_shuffled":  # every pixel of the region in random order: a mottled blob
        out = image.copy()
        where = region >= 128
        pix = out[where]
        out[where] = pix[rng.permutation(len(pix))]
        return out
    if kind == "colour_blob":  # a smooth blob of the bird's colours where the bird was, no head, bill or tail
        from PIL import ImageDraw

        ys, xs = np.nonzero(scene.mask >= 128)
        pix = image[scene.mask >= 128]
        layer = Image.new("L", image.shape[1::-1], 0)
        cy, cx, ry, rx = ys.mean(), xs.mean(), (np.ptp(ys) + 1) * rng.uniform(0.3, 0.6), (np.ptp(xs) + 1) * rng.uniform(0.3, 0.6)
        ImageDraw.Draw(layer).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        alpha = np.asarray(layer.filter(ImageFilter.GaussianBlur(1.5)), np.float32)[..., None] / 255
        colour = np.median(pix, axis=0) + rng.normal(0, 25, image.shape)
        out = np.where(inside, scene.background, image).astype(np.float32)
        return np.clip(out * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    if kind == "mottled_blob":  # an irregular polygon of the bird's size filled with its colours in random order
        from PIL import ImageDraw

        ys, xs = np.nonzero(scene.mask >= 128)
        cy, cx = ys.mean(), xs.mean()
        radius = max(np.ptp(ys), np.ptp(xs)) * rng.uniform(0.3, 0.55) + 1
        k = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        pts = [(cx + radius * rng.uniform(0.5, 1.0) * np.cos(t), cy + radius * rng.uniform(0.5, 1.0) * np.sin(t)) for t in angles]
        layer = Image.new("L", image.shape[1::-1], 0)
        ImageDraw.Draw(layer).polygon(pts, fill=255)
        alpha = np.asarray(layer.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2)))), np.float32)[..., None] / 255
        pix = image[scene.mask >= 128].astype(np.float32)
        fill = pix[rng.integers(0, len(pix), image.shape[:2])]  # the bird's colours, scattered
        out = np.where(inside, scene.background, image).astype(np.float32)
        return np.clip(out * (1 - alpha) + fill * alpha, 0, 255).astype(np.uint8)
    if kind == "lumpy_blob":  # two to four overlapping ellipses of the bird's extent in its colours: a shape with
        # lumps (a heart, a bean) but no head, bill, neck, tail or legs
        from PIL import ImageDraw

        ys, xs = np.nonzero(scene.mask >= 128)
        cy, cx = ys.mean(), xs.mean()
        ext = max(np.ptp(ys), np.ptp(xs)) + 1
        layer = Image.new("L", image.shape[1::-1], 0)
        d = ImageDraw.Draw(layer)
        for _ in range(int(rng.integers(2, 5))):
            oy, ox = rng.normal(0, ext * 0.15, 2)
            ry, rx = ext * rng.uniform(0.15, 0.35), ext * rng.uniform(0.15, 0.4)
            d.ellipse([cx + ox - rx, cy + oy - ry, cx + ox + rx, cy + oy + ry], fill=255)
        alpha = np.asarray(layer.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0)))), np.float32)[..., None] / 255
        pix = image[scene.mask >= 128].astype(np.float32)
        fill = pix[rng.integers(0, len(pix), image.shape[:2])]
        fill = np.asarray(Image.fromarray(fill.astype(np.uint8)).filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.0)))),
                          np.float32)
        out = np.where(inside, scene.background, image).astype(np.float32)
        return np.clip(out * (1 - alpha) + fill * alpha, 0, 255).astype(np.uint8)
    if kind == "faint":  # the bird as a ghost: a fraction of its opacity, softened
        ghost = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 2.0)))), np.float32)
        a = float(rng.uniform(0.1, 0.35))
        bg = np.where(inside, scene.background, image).astype(np.float32)
        return np.clip(np.where(inside, bg * (1 - a) + ghost * a, bg), 0, 255).astype(np.uint8)
    if kind == "headless":  # the bird's body alone, over its background or over that background blurred
        if body is None:
            raise ValueError("the headless kind needs the scene rendered with body_only=True")
        bg = scene.background
        if rng.uniform() < 0.5:
            bg = np.asarray(Image.fromarray(bg).filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 2.5)))))
        alpha = np.asarray(Image.fromarray(body.mask).filter(ImageFilter.GaussianBlur(0.6)), np.float32)[..., None] / 255
        drawn = bg.astype(np.float32) * (1 - alpha) + body.bird.astype(np.float32) * alpha
        return np.where(inside, np.clip(drawn, 0, 255).astype(np.uint8), image)
    if kind == "smeared":  # blurred until the thin parts (neck, bill, legs) are gone, a blurred body left
        smeared = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 3.0)))))
        return np.where(inside, smeared, image)
    raise ValueError(f"unknown negative kind {kind!r}")


def negative_kind_of(index: int, kinds: Sequence[str]) -> Optional[str]:
    """The negative kind of judge example ``index`` (None: a bird)."""
    return None if (index // 4) % 2 == 0 else kinds[(index // 8) % len(kinds)]


def render_judge_set(seed: int, n: int, size: int = 64, kinds: Sequence[str] = NEGATIVE_KINDS) -> dict[str, np.ndarray]:
    """``n`` judge examples from the judges' data seed ``seed``: crops (n x CROP x CROP x 3), ``present``
    (1 = bird), ``which`` (the bird's class; -1 without one), ``place``. Half are birds, balanced over class
    and place; half are negatives of ``kinds``, balanced over kind, place and the class of the bird they replace."""
    import copy

    unknown = sorted(set(kinds) - set(NEGATIVE_KINDS) - set(OPTIONAL_NEGATIVE_KINDS))
    if unknown or not kinds:
        raise ConfigError(f"negative kinds must be among {', '.join(NEGATIVE_KINDS + OPTIONAL_NEGATIVE_KINDS)}, "
                          f"got {', '.join(unknown) or 'none'}")
    crops, present, which, place_of = [], [], [], []
    for index in range(n):
        rng = np.random.default_rng([judge_seed(seed), index, GENERATOR_VERSION])
        y, place = index % 2, (index // 2) % 2
        kind = negative_kind_of(index, kinds)
        # the body-only twin draws the same background and bird from a copy of the same generator
        body = render_scene(copy.deepcopy(rng), y, place, size, body_only=True) if kind == "headless" else None
        scene = render_scene(rng, y, place, size)
        region = _repaint_region(rng, scene.mask)
        is_bird = kind is None
        if is_bird:
            image = scene.image
        else:
            image = negative(rng, kind, scene, region, place, body)
        crops.append(judge_crop(_soften(rng, image), region))
        present.append(int(is_bird)), which.append(y if is_bird else -1), place_of.append(place)
    return {"crops": np.stack(crops), "present": np.array(present), "which": np.array(which), "place": np.array(place_of)}


# ---------------------------------------------------------------------------------------------
# The judges.


def _net():
    import torch.nn as nn

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 96), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(96, 2))


def _tensor(crops: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@dataclass(frozen=True)
class JudgeTrainConfig:
    n_train: int = 12000  # renders per training seed (half birds)
    negatives: tuple[str, ...] = NEGATIVE_KINDS  # the kinds of "no bird" (``OPTIONAL_NEGATIVE_KINDS`` may be added)
    train_seeds: tuple[int, ...] = (0,)  # judge data seeds of the training renders
    check_seed: int = 1  # judge data seed of the held-out check renders
    n_check: int = 2000
    epochs: int = 12
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0


@dataclass
class Judges:
    """The two judges, in eval mode, on the device ``load_judges`` placed them on (the CPU by default)."""

    present: object  # crop -> logits (no bird, bird)
    which: object  # crop -> logits (landbird, waterbird)

    def probabilities(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(bird), P(class) as N x 2) for CROP x CROP crops."""
        import torch

        if len(crops) == 0:
            return np.zeros(0), np.zeros((0, 2))
        from ..project.device import module_device

        with torch.no_grad():
            x = _tensor(crops).to(module_device(self.present))
            p = torch.cat([self.present(x[i:i + 256]).softmax(1)[:, 1] for i in range(0, len(x), 256)]).cpu().numpy()
            w = torch.cat([self.which(x[i:i + 256]).softmax(1) for i in range(0, len(x), 256)]).cpu().numpy()
        return p, w

    def judge(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], targets: Sequence[int]) -> dict:
        """Each result's verdict: ``bird`` (the present judge says bird), ``which`` (the class the second judge
        names), ``target_bird`` (both: a bird, of its target class) and the two probabilities."""
        crops = np.stack([judge_crop(im, m) for im, m in zip(images, masks)]) if len(images) else np.zeros((0, CROP, CROP, 3), np.uint8)
        p, w = self.probabilities(crops)
        bird = p >= 0.5
        which = w.argmax(1) if len(w) else np.zeros(0, int)
        return {"bird": bird, "which": which, "target_bird": bird & (which == np.asarray(targets, int)),
                "p_bird": p, "p_which": w}

    def count_target_birds(self, images, masks, targets) -> int:
        return int(self.judge(images, masks, targets)["target_bird"].sum())


def load_judges(folder: str | Path = JUDGES_DIR, device: str = "cpu") -> Judges:
    """The judges stored in ``folder`` (``present.pt``, ``which.pt``; state dicts, loaded with weights_only), placed on
    ``device`` (the CPU by default: they are small)."""
    import torch

    from ..project.device import place

    folder = Path(folder)
    nets = {}
    for name in ("present", "which"):
        path = folder / f"{name}.pt"
        if not path.is_file():
            raise ModelError(f"{path} not found: train the judges with `python -m ddb_core bench judges`")
        net = _net()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        nets[name] = place(net, device, what=f"judge ({name})").eval()
    return Judges(**nets)


def _fit(net, x, y, cfg: JudgeTrainConfig, tracker, done: int, total: int):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * ((len(x) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)
    net.train()
    for _epoch in range(cfg.epochs):
        order = torch.randperm(len(x), generator=g).to(x.device)
        for b in range(0, len(x), cfg.batch_size):
            idx = order[b:b + cfg.batch_size]
            xb = x[idx]
            flip = (torch.rand(len(idx), generator=g) < 0.5).to(x.device)  # a bird faces either way
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        done += 1
        tracker.update(done, f"loss {loss.item():.3f}")
    return net.eval()


def train_judges(cfg: JudgeTrainConfig = JudgeTrainConfig(), out: str | Path = JUDGES_DIR,
                 on_progress: Optional[ProgressFn] = None, device: str = "cpu") -> dict:
    """Render the judges' training set, train both judges on ``device`` (the CPU by default), check them on
    held-out judge renders, write them to ``out``; returns the training record (also ``out/judges.json``)."""
    import torch

    from ..project.device import place, resolve_device

    t0 = time.monotonic()
    dev = resolve_device(device)
    torch.manual_seed(cfg.seed)
    sets = [render_judge_set(s, cfg.n_train, kinds=cfg.negatives) for s in cfg.train_seeds]
    data = {k: np.concatenate([s[k] for s in sets]) for k in sets[0]}
    x = _tensor(data["crops"]).to(dev)
    tracker = ProgressTracker("train judges", 2 * cfg.epochs, on_progress)
    present = _fit(place(_net(), dev, what="judge training (present)"), x, torch.from_numpy(data["present"]).to(dev),
                   cfg, tracker, 0, 2 * cfg.epochs)
    birds = torch.from_numpy(data["present"] == 1).to(dev)
    which = _fit(place(_net(), dev, what="judge training (which)"), x[birds],
                 torch.from_numpy(data["which"]).to(dev)[birds], cfg, tracker, cfg.epochs, 2 * cfg.epochs)
    judges = Judges(present, which)
    check = render_judge_set(cfg.check_seed, cfg.n_check, kinds=cfg.negatives)
    p, w = judges.probabilities(check["crops"])
    is_bird = check["present"] == 1
    kind_of = np.array([negative_kind_of(i, cfg.negatives) or "" for i in range(cfg.n_check)])
    record = {
        "config": asdict(cfg), "judge_seeds": {"train": [judge_seed(s) for s in cfg.train_seeds],
                                               "check": judge_seed(cfg.check_seed)},
        "crop": CROP, "seconds": round(time.monotonic() - t0, 1),
        "check": {
            "bird_called_bird": float((p[is_bird] >= 0.5).mean()),
            "which_correct_on_birds": float((w[is_bird].argmax(1) == check["which"][is_bird]).mean()),
            "no_bird_called_bird": {k: float((p[~is_bird & (kind_of == k)] >= 0.5).mean()) for k in cfg.negatives},
            "n": cfg.n_check},
        "command": "python -m ddb_core bench judges" + (f" --negatives {' '.join(cfg.negatives)}"
                                                        if cfg.negatives != NEGATIVE_KINDS else ""),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, net in (("present", present), ("which", which)):
        tmp = out / f"{name}.pt.tmp"
        torch.save(net.state_dict(), tmp)
        tmp.replace(out / f"{name}.pt")
    (out / "judges.json").write_text(json.dumps(record, indent=2))
    return record


def check_on_real_renders(judges: Judges, dataset_dir: str | Path, split: str = "val", shapes=("box", "object+8px")) -> dict:
    """The judges on a benchmark's own renders: the target-bird rate of its real birds (target = their own
    class), cropped around each repaint mask shape, per class; and the bird rate of the same scenes with the
    bird replaced by its background (which must be near 0). The gate: every real-bird rate ≥ 97%."""
    import csv

    from ..demo.data import SPLIT_CODES
    from ..data.imaging import load_mask, load_rgb

    root = Path(dataset_dir)
    info = json.loads((root / "dataset.json").read_text())
    rows = [r for r in csv.DictReader(open(root / "metadata.csv")) if r["split"] == str(SPLIT_CODES[split])]
    images = [load_rgb(root / r["img_filename"]) for r in rows]
    objs = [load_mask(root / r["mask_filename"]) for r in rows]
    labels = np.array([int(r["y"]) for r in rows])
    out: dict = {"split": split, "data_seed": info["config"]["seed"], "n": len(rows), "shapes": {}}
    for shape in shapes:
        masks = [mask_of(shape, m) for m in objs]
        v = judges.judge(images, masks, labels)
        bg = []
        for r, im in zip(rows, images):
            # the same scene without its bird: the background the renderer drew before the bird
            idx = int(Path(r["img_filename"]).stem.split("_")[-1])
            rng = np.random.default_rng([info["config"]["seed"], SPLIT_CODES[split], idx, GENERATOR_VERSION])
            bg.append(render_scene(rng, int(r["y"]), int(r["place"]), im.shape[0]).background)
        vb = judges.judge(bg, masks, labels)
        out["shapes"][shape] = {
            "target_bird": {str(c): float(v["target_bird"][labels == c].mean()) for c in sorted(set(labels.tolist()))},
            "background_called_bird": float(vb["bird"].mean())}
    rates = [x for s in out["shapes"].values() for x in s["target_bird"].values()]
    out["gate_met"] = bool(min(rates) >= REAL_RENDER_GATE)
    return out


def judges_markdown(record: dict, real: Optional[dict] = None) -> str:
    """The docs section of the judges: how they were trained and how they do on held-out renders and real ones."""
    c = record["check"]
    lines = ["## The judges: what a person sees in a repainted region", "",
             f"Command: `{record['command']}`. Two small CNNs read a square crop around the repaint mask ({record['crop']} "
             "px), never the whole image: *bird present* (bird / no bird) and *which bird* (landbird / waterbird, trained "
             "on birds over every background in equal numbers). A candidate is a **target bird** when the first says bird "
             "and the second names its target class. Trained on "
             f"{record['config']['n_train']} scenes rendered for them with data seed(s) "
             f"{', '.join(map(str, record['judge_seeds']['train']))} (no benchmark may use a seed from "
             f"{RESERVED_SEEDS_FROM:,} up), half birds, half \"no bird\" of these kinds: "
             + ", ".join(record["config"].get("negatives", NEGATIVE_KINDS))
             + f"; {record['seconds'] / 60:.1f} min on this machine's CPU.", "",
             f"On {c['n']} held-out judge renders (data seed {record['judge_seeds']['check']}): birds called birds "
             f"{100 * c['bird_called_bird']:.1f}%, the right class named for {100 * c['which_correct_on_birds']:.1f}% of "
             "them; \"no bird\" called a bird: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in c["no_bird_called_bird"].items())
             + "."]
    if real:
        lines += ["", f"On the benchmark's own {real['split']} renders (data seed {real['data_seed']}, {real['n']} images): "
                  + "; ".join(f"{shape} crops: real birds are target birds of their own class "
                              + ", ".join(f"{100 * v:.1f}% (class {k})" for k, v in sh["target_bird"].items())
                              + f", the same scenes without their bird are called a bird {100 * sh['background_called_bird']:.1f}%"
                              for shape, sh in real["shapes"].items())
                  + f" (gate ≥ 97%: **{'met' if real['gate_met'] else 'not met'}**)."]
    lines += ["", "**Where they and a person part.** On the corpus model's boxes filled with an orange, mottled texture "
              "(the section with tokens learned inside the tight object mask, below), the judges call about half of "
              "them landbirds; a person sees blobs, not birds (look at its grid). The same held for the orange lumpy "
              "blobs of a half-trained corpus model. The judges do not yet tell a box-sized blob in a bird's colours "
              "from a bird: their figures are an upper bound of what a person would call a target bird, and every "
              "figure here comes with its grid. How often they agree with the eyes on every labelled set: "
              "`bench eye-agreement` (\"Which judges agree with the eyes?\")."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# A project's candidates, judged.


def tally(out: dict, rows: list[dict], hits, kept: dict[int, bool], key: str) -> None:
    """Count each row in ``out[direction][kept|pruned]``: ``n``, and ``key`` where its hit is true."""
    for r, hit in zip(rows, hits):
        d = out.setdefault(f"{r['source_label']}->{r['target_label']}",
                           {"kept": {"n": 0, key: 0}, "pruned": {"n": 0, key: 0}})
        part = d["kept" if kept[r["id"]] else "pruned"]
        part["n"] += 1
        part[key] += int(hit)


def judged_target_birds(project, method: str = "ddb", judges=None) -> dict[str, dict[str, dict[str, int]]]:
    """Per direction "i->i'", for the kept and the pruned candidates at the project's current decisions: how many,
    and how many the judges of ``bench.judges`` call a target bird (a bird of class i' in the repainted region).

    What a person sees, not what a classifier of the whole image reads: a square of the target's background pasted
    where the bird was is not a target bird here."""
    from ..curation.decisions import decisions
    from ..data.imaging import load_mask, load_rgb

    judges = judges or load_judges()
    kept = {d.candidate_id: d.kept for d in decisions(project, "c.method = ?", [method])}
    rows = [r for r in project.db.query("select c.id, c.source_label, c.target_label, c.path, m.path as mask_path "
                                        "from candidates c join masks m on m.id = c.mask_id where c.method = ? "
                                        "order by c.id", [method]) if r["id"] in kept]
    out: dict[str, dict[str, dict[str, int]]] = {}
    for b in range(0, len(rows), 256):
        batch = rows[b:b + 256]
        verdict = judges.judge([load_rgb(project.project_path(r["path"])) for r in batch],
                               [load_mask(project.project_path(r["mask_path"])) for r in batch],
                               [r["target_label"] for r in batch])["target_bird"]
        tally(out, batch, verdict, kept, "target_bird")
    return dict(sorted(out.items()))


def target_bird_lines(judged: dict) -> list[str]:
    """The table of ``judged_target_birds``, with the two shares a user needs: of the kept candidates, how many are
    target birds; of the target birds, how many are kept."""
    lines = ["| direction | kept | kept: target birds | pruned | pruned: target birds | kept that are target birds | "
             "target birds that are kept |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for d, v in judged.items():
        k, p = v["kept"], v["pruned"]
        birds = k["target_bird"] + p["target_bird"]
        lines.append(f"| {d} | {k['n']} | {k['target_bird']} | {p['n']} | {p['target_bird']} | "
                     + (f"{100 * k['target_bird'] / k['n']:.0f}%" if k["n"] else "—") + " | "
                     + (f"{100 * k['target_bird'] / birds:.0f}%" if birds else "— (none)") + " |")
    return lines
