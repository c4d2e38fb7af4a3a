"""Inpainting (Algorithm 1, step 4): x' = SD-inpainting(x, M, "a photo of a [C_i'] <class name>") —
the masked (causal) part of x repainted as class i' with diffusers' SD inpainting pipeline.

Consumes RGB uint8 HWC images of any sizes, masks (255 = repaint, each its image's size) and
prompts; produces RGB uint8 images of exactly the sources' sizes. The model is any diffusers
inpainting folder or hub id (default ``stabilityai/stable-diffusion-2-inpainting``; the demo's
micro model is a local folder) loaded with ``StableDiffusionInpaintPipeline.from_pretrained``.

Geometry (``ModelCanvas``): each image and its mask are scaled, aspect ratio kept, so that the
longer side is the model's resolution (512 for SD2, from its config, or ``InpaintConfig.resolution``),
then padded on the right and bottom (edge pixels repeated, mask 0 there) up to a multiple of 8 — the
model sees the whole scene undistorted. Its output is cropped back to the scaled image and resized
to the source's exact size; with ``paste_back`` (default) the original pixels outside the mask are
then restored exactly, so the spurious part is preserved at the source's own resolution. A batch
may mix sizes: images are grouped by canvas size, one pipeline call per group. Each image has its
own seed (a CPU ``torch.Generator``), so grouping does not change which noise an image gets.

A model may instead repaint a **window around the mask** (``InpaintConfig.crop_scale``, or the model folder's
``inpaint.json``): a square of ``crop_scale`` times the longer side of the mask's bounding box, centred on it
(``crop_window``), is cut out, put on the canvas as above, repainted and put back; the rest of the image is never
touched. This is how a small object gets the model's whole resolution (diffusers' ``padding_mask_crop`` does
the same); the demo's micro model is trained on such windows and says so in its folder.

Precision is decided once: float16 on CUDA, float32 on CPU, set on the pipeline — never a
process-wide autocast.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ..project.errors import ConfigError, ModelError, WeightsUnavailableError

DEFAULT_MODEL = "stabilityai/stable-diffusion-2-inpainting"
DEFAULT_TEMPLATE = "a photo of a {token} {name}"
MICRO_MODEL = "data/models/micro-sd-inpainting"  # the demo's model, shipped in the repository
# A model folder's own inpainting geometry (written by the demo's micro-model training): {"crop_scale": s} — the
# model repaints a window of s times the mask's box (``crop_window``), not the whole image
INPAINT_FILE = "inpaint.json"
REPO_ROOT = Path(__file__).resolve().parents[2]  # ddb_core/method/inpainting.py → the repository


REQUIRED_COMPONENTS = ("tokenizer", "text_encoder", "unet", "vae", "scheduler")
# Per component: groups of files, one of each group needed (the tokenizer: tokenizer.json, or vocab.json with
# merges.txt — without them transformers builds a 2-entry tokenizer that maps every prompt to the same tokens).
REQUIRED_FILES = {
    "tokenizer": [("tokenizer.json", "vocab.json"), ("tokenizer.json", "merges.txt")],
    "text_encoder": [("config.json",)], "unet": [("config.json",)], "vae": [("config.json",)],  # weights: below
    "scheduler": [("scheduler_config.json",)],
}


def resolve_model_ref(ref: str) -> str:
    """A relative folder that is not under the working directory is looked up in the repository
    (so projects that name ``data/models/micro-sd-inpainting`` work from any directory)."""
    p = Path(ref)
    if p.is_absolute() or p.exists():
        return ref
    in_repo = REPO_ROOT / p
    return str(in_repo) if in_repo.exists() else ref


def model_fingerprint(ref: str) -> Optional[str]:
    """The first 12 hex digits of a sha256 over a local diffusers folder's weight files (names and bytes),
    so that benchmark figures say which weights produced them; None for a hub name."""
    folder = Path(resolve_model_ref(ref))
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.safetensors")):
        if "checkpoints" in f.relative_to(folder).parts:
            continue
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def model_crop_scale(folder: Path) -> Optional[float]:
    """The window scale a model folder asks for (its ``inpaint.json``), or None (the whole image)."""
    f = Path(folder) / INPAINT_FILE
    if not f.is_file():
        return None
    try:
        value = json.loads(f.read_text()).get("crop_scale")
    except (ValueError, AttributeError) as e:
        raise ModelError(f"{f} is not a JSON object with crop_scale: {e}") from e
    if value is not None and not (isinstance(value, (int, float)) and value >= 1):
        raise ModelError(f"{f}: crop_scale must be a number >= 1, got {value!r}")
    return None if value is None else float(value)


def check_model_folder(folder: Path) -> None:
    """Raise a ModelError naming the first missing or unreadable file of a diffusers folder."""
    import json

    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelError(f"{folder} is not a diffusers model folder: {index} is missing")
    try:
        components = json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{index} is not valid JSON ({e}); the model folder is corrupt") from e
    if not isinstance(components, dict):
        raise ModelError(f"{index} must hold an object of components, got {type(components).__name__}")
    listed = {k for k, v in components.items() if not k.startswith("_") and isinstance(v, list) and v and v[0] is not None}
    absent = [c for c in REQUIRED_COMPONENTS if c not in listed]
    if absent:
        raise ModelError(f"{index} does not list the component(s) {', '.join(absent)}; an inpainting model needs "
                         f"{', '.join(REQUIRED_COMPONENTS)}")
    for name, files in REQUIRED_FILES.items():  # every file each needs, named with where it goes
        for options in files:
            if not any((folder / name / f).is_file() for f in options):
                raise ModelError(f"{folder / name / options[0]} is missing (the {name} needs "
                                 f"{' or '.join(options)} in {folder / name})")
    for name, spec in components.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        sub = folder / name
        if not sub.is_dir():
            raise ModelError(f"{sub} is missing (model_index.json lists the component {name!r})")
        configs = [f for f in ("config.json", "scheduler_config.json", "tokenizer_config.json") if (sub / f).is_file()]
        if not configs:
            raise ModelError(f"{sub} has no config file (config.json, scheduler_config.json or tokenizer_config.json)")
        for f in configs:
            try:
                json.loads((sub / f).read_text())
            except (OSError, ValueError) as e:
                raise ModelError(f"{sub / f} is not valid JSON ({e}); the model folder is corrupt") from e
        weights = sorted(sub.glob("*.safetensors")) + sorted(sub.glob("*.bin"))
        if name in ("unet", "vae", "text_encoder") and not weights:
            raise ModelError(f"{sub} has no weights file (diffusion_pytorch_model.safetensors or model.safetensors)")
        for w in weights:
            if w.suffix != ".safetensors":
                continue
            try:
                from safetensors import safe_open

                with safe_open(str(w), framework="pt") as fh:
                    for key in fh.keys():
                        fh.get_slice(key)
            except Exception as e:
                raise ModelError(f"{w} cannot be read ({type(e).__name__}: {e}); the file is corrupt or truncated — "
                                 f"restore it (git checkout {MICRO_MODEL} for the demo model) or re-download the model") from e


@dataclass(frozen=True)
class InpaintConfig:
    model: str = DEFAULT_MODEL  # hub id or local diffusers folder
    template: str = DEFAULT_TEMPLATE  # {token}: the class token (or nothing), {name}: the object word
    steps: int = 50  # denoising steps
    guidance: float = 7.5  # classifier-free guidance scale
    strength: float = 1.0  # 1.0 = the masked region starts from pure noise
    batch_size: int = 4
    paste_back: bool = True  # restore the original pixels outside the mask
    device: str = "auto"
    dtype: str = "auto"  # auto = float16 on CUDA, float32 on CPU
    resolution: Optional[int] = None  # longer side at the model; None = the model's own (512 for SD2)
    # repaint a window around each mask (``crop_window``: this many times the mask box's longer side) instead of the
    # whole image; None = the model's own choice (its folder's inpaint.json; the whole image when it has none),
    # 0 = the whole image
    crop_scale: Optional[float] = None

    def __post_init__(self) -> None:
        if self.resolution is not None and (self.resolution < 8 or self.resolution % 8):
            raise ConfigError(f"resolution must be a multiple of 8 (at least 8), got {self.resolution}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 < self.strength <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {self.strength}")
        if not (math.isfinite(self.guidance) and self.guidance >= 0):
            raise ConfigError(f"guidance must be a finite number >= 0, got {self.guidance}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crop_scale is not None and not (self.crop_scale == 0 or self.crop_scale >= 1):
            raise ConfigError(f"crop_scale must be 0 (the whole image) or >= 1, got {self.crop_scale}")
        if "{name}" not in self.template:
            raise ConfigError(f"template must contain {{name}}, got {self.template!r}")
        try:  # checked by writing a prompt now, not after the masks of every source are made
            prompt_for(self.template, "bird", "<bird>")
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            raise ConfigError(f"template {self.template!r} cannot be filled: it may use {{token}} and {{name}} only, "
                              f"with every brace paired ({type(e).__name__}: {e})") from None


def prompt_for(template: str, name: str, token: Optional[str]) -> str:
    return " ".join(template.format(token=token or "", name=name).split())


def model_hash(ref: str) -> str:
    """sha256 over a local model folder's weight files (names and bytes); ``hub:<id>`` otherwise."""
    p = Path(ref)
    if not p.is_dir():
        return f"hub:{ref}"
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt"):
            h.update(f.relative_to(p).as_posix().encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


class Inpainter:
    """A loaded inpainting pipeline, its identity, and the class tokens loaded into it."""

    def __init__(self, pipe, model_ref: str = "in-memory", model_sha: Optional[str] = None):
        self.pipe, self.model_ref = pipe, model_ref
        self.model_sha = model_sha or f"mem:{id(pipe)}"
        self.tokens: dict[str, object] = {}  # token -> learned embedding (CPU tensor)
        self.crop_scale: Optional[float] = None  # the model's own window around the mask (inpaint.json), if any
        pipe.set_progress_bar_config(disable=True)

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "auto") -> "Inpainter":
        from diffusers import StableDiffusionInpaintPipeline

        from ..project.device import resolve_device, resolve_dtype

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        model = resolve_model_ref(str(model))
        local = Path(model)
        if local.exists():
            check_model_folder(local)
        elif local.is_absolute() or str(model).startswith((".", "data/", "projects/")):
            raise ModelError(f"inpainting model folder {local} does not exist")
        try:
            pipe = StableDiffusionInpaintPipeline.from_pretrained(model, dtype=dt, safety_checker=None,
                                                                  requires_safety_checker=False)
        except OSError as e:
            if local.exists():
                raise ModelError(f"cannot load the inpainting model in {local}: {e}") from e
            raise WeightsUnavailableError(
                f"the inpainting model {model!r} is not available offline ({str(e).splitlines()[0]}). Download it on a "
                f"machine with internet (huggingface-cli download {model}) and copy the folder here, then pass its "
                f"path with --model, or use the demo's micro model (data/models/micro-sd-inpainting)") from e
        except Exception as e:  # corrupt weight files surface as safetensors/json errors
            raise ModelError(f"cannot load the inpainting model {model!r}: {type(e).__name__}: {e}") from e
        from ..project.device import place

        pipe = place(pipe, dev, what="inpainting")
        out = cls(pipe, str(model), model_hash(str(model)))
        out.crop_scale = model_crop_scale(local) if local.is_dir() else None
        return out

    # -- tokens ----------------------------------------------------------------------------
    def load_token(self, path: str | os.PathLike, token: str) -> None:
        """Load a textual-inversion embedding file (diffusers format) for ``token``, then verify it."""
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"textual-inversion embedding {path} for {token} does not exist")
        learned = load_file(str(path))
        if token not in learned:
            raise ModelError(f"{path} holds {', '.join(learned)}, not {token}")
        if token not in self.pipe.tokenizer.get_vocab():
            self.pipe.load_textual_inversion(str(path), token=token)
        self.tokens[token] = learned[token].float().cpu()
        self.verify_token(token)

    def verify_token(self, token: str) -> None:
        """Raise unless ``token`` is one tokenizer entry whose embedding is the learned one."""
        import torch

        tok = self.pipe.tokenizer
        ids = tok(token, add_special_tokens=False).input_ids
        vocab = tok.get_vocab()
        if token not in vocab or ids != [vocab[token]]:
            raise ModelError(f"token {token} is not in the tokenizer of {self.model_ref}: load its textual-inversion "
                             f"embedding first (ddb invert), or generate without a token")
        if token not in self.tokens:
            raise ModelError(f"token {token} is in the tokenizer but no learned embedding was loaded for it")
        row = self.pipe.text_encoder.get_input_embeddings().weight[vocab[token]].detach()
        # the learned float32 row as the text encoder holds it (rounded to its precision)
        learned = self.tokens[token].reshape(-1).to(row.dtype).float()
        if not torch.allclose(row.float().cpu(), learned, atol=1e-5, rtol=1e-3):
            raise ModelError(f"the embedding of {token} in the text encoder differs from the learned one")

    # -- generation ------------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        """The model's native resolution (its UNet's sample size times the VAE's scale factor)."""
        return int(self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor)

    def inpaint(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], prompts: Sequence[str],
                seeds: Sequence[int], cfg: InpaintConfig = InpaintConfig()) -> list[np.ndarray]:
        """One inpainted image per input (RGB uint8, the input's own size), seeded per image."""
        import torch

        # 1. Check inputs.
        if not (len(images) == len(masks) == len(prompts) == len(seeds)):
            raise ConfigError("images, masks, prompts and seeds must have the same length")
        for k, (im, m) in enumerate(zip(images, masks)):
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise ConfigError(f"image {k}: expected an RGB uint8 HWC array, got shape {im.shape} dtype {im.dtype}")
            if m.shape != im.shape[:2]:
                raise ConfigError(f"mask {k} is {m.shape[1]}x{m.shape[0]} but its image is {im.shape[1]}x{im.shape[0]}")
        for t in self.tokens:
            if any(t in p for p in prompts):
                self.verify_token(t)
        # 2. The window each image is repainted in: the whole image, or a square around its mask.
        scale = self.crop_scale if cfg.crop_scale is None else (cfg.crop_scale or None)
        sources, windows = images, [None] * len(images)
        if scale:
            windows = [crop_window(m, scale) for m in masks]
            images, masks = cut(images, windows), cut(masks, windows)
        # 3. Each image on its canvas at the model's resolution; group by canvas size.
        res = cfg.resolution or self.resolution
        canvases = [ModelCanvas.fit(im.shape[:2], res) for im in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for k, c in enumerate(canvases):
            groups.setdefault(c.canvas_hw, []).append(k)
        # 4. One pipeline call per canvas size.
        raw: list[Optional[np.ndarray]] = [None] * len(images)
        for (ch, cw), idx in groups.items():
            gens = [torch.Generator(device="cpu").manual_seed(int(seeds[k])) for k in idx]
            out = self.pipe(prompt=[prompts[k] for k in idx],
                            image=[Image.fromarray(canvases[k].to_canvas(images[k])) for k in idx],
                            mask_image=[Image.fromarray(canvases[k].to_canvas(masks[k], is_mask=True)) for k in idx],
                            num_inference_steps=cfg.steps, guidance_scale=cfg.guidance, strength=cfg.strength,
                            generator=gens, height=ch, width=cw, output_type="np").images  # n x ch x cw x 3 in [0, 1]
            for k, gen in zip(idx, out):
                raw[k] = (np.clip(np.nan_to_num(gen.astype(np.float32)), 0, 1) * 255).round().astype(np.uint8)
        # 5. Back to each source's (or window's) size; the original pixels outside the mask pasted back; a window
        #    put back in its image.
        results = []
        for src, m, c, g, full, win in zip(images, masks, canvases, raw, sources, windows):
            g = c.from_canvas(g)
            if cfg.paste_back:
                g = np.where((m == 255)[..., None], g, src)
            if win is not None:
                t, l, h, w = win
                whole = full.copy()
                whole[t:t + h, l:l + w] = g
                g = whole
            results.append(np.ascontiguousarray(g, dtype=np.uint8))
        return results


def crop_window(mask: np.ndarray, scale: float, centre_shift: tuple[float, float] = (0.0, 0.0)) -> tuple[int, int, int, int]:
    """The window (top, left, height, width) that the model repaints in when it works around the mask: a square of
    ``scale`` times the longer side of the mask's bounding box (``scale`` >= 1, so it holds the whole box), centred on
    the box (moved by ``centre_shift`` times the side, for training crops), moved to lie inside the image and cut to
    it where the image is smaller. An empty mask gives the whole image."""
    h, w = mask.shape[:2]
    ys, xs = np.nonzero(mask >= 128)
    if len(ys) == 0:
        return 0, 0, h, w
    if scale < 1:
        raise ConfigError(f"a crop scale must be >= 1 (the window holds the whole mask), got {scale}")
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    side = max(y1 - y0, x1 - x0) * scale
    wh, ww = min(h, max(y1 - y0, math.ceil(side))), min(w, max(x1 - x0, math.ceil(side)))
    cy, cx = (y0 + y1) / 2 + centre_shift[0] * side, (x0 + x1) / 2 + centre_shift[1] * side
    top = int(round(min(max(cy - wh / 2, 0), h - wh)))
    left = int(round(min(max(cx - ww / 2, 0), w - ww)))
    # a shifted window still holds the whole box
    top, left = min(max(top, y1 - wh), y0), min(max(left, x1 - ww), x0)
    return top, left, wh, ww


def cut(arrays: Sequence[np.ndarray], windows: Sequence[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """Each array (HxW or HxWxC) cut to its window (top, left, height, width) from ``crop_window``."""
    return [a[t:t + h, l:l + w] for a, (t, l, h, w) in zip(arrays, windows)]


@dataclass(frozen=True)
class ModelCanvas:
    """How an image of ``source_hw`` sits on the model's input: scaled to ``scaled_hw`` (aspect ratio
    kept, longer side = the resolution), padded right and bottom to ``canvas_hw`` (multiples of 8)."""

    source_hw: tuple[int, int]
    scaled_hw: tuple[int, int]
    canvas_hw: tuple[int, int]

    @classmethod
    def fit(cls, source_hw: tuple[int, int], resolution: int) -> "ModelCanvas":
        h, w = int(source_hw[0]), int(source_hw[1])
        if h < 1 or w < 1:
            raise ConfigError(f"cannot inpaint an empty image ({w}x{h})")
        scale = resolution / max(h, w)
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        return cls((h, w), (sh, sw), (-(-sh // 8) * 8, -(-sw // 8) * 8))

    def to_canvas(self, array: np.ndarray, is_mask: bool = False) -> np.ndarray:
        """An image (HWC) or mask (HW) of the source's size on the canvas: resized, then padded."""
        sh, sw = self.scaled_hw
        ch, cw = self.canvas_hw
        pil = Image.fromarray(array)
        if (array.shape[0], array.shape[1]) != (sh, sw):
            pil = pil.resize((sw, sh), Image.NEAREST if is_mask else Image.LANCZOS)
        a = np.asarray(pil)
        if is_mask:
            a = np.where(a >= 128, 255, 0).astype(np.uint8)
            return np.pad(a, ((0, ch - sh), (0, cw - sw)), constant_values=0)  # the padding is kept, never repainted
        return np.pad(a, ((0, ch - sh), (0, cw - sw), (0, 0)), mode="edge")

    def from_canvas(self, array: np.ndarray) -> np.ndarray:
        """The model's output (canvas size) cropped to the scaled image and resized to the source's size."""
        sh, sw = self.scaled_hw
        h, w = self.source_hw
        a = array[:sh, :sw]
        if (sh, sw) == (h, w):
            return a
        return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((w, h), Image.LANCZOS))
