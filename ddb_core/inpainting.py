"""Inpainting: replace the masked (causal) part of an image with diffusers' SD inpainting pipeline.

Consumes RGB uint8 HWC images, masks (255 = repaint) and prompts; produces RGB uint8 images of the
same size. The model is any diffusers inpainting folder or hub id (default
``stabilityai/stable-diffusion-2-inpainting``; the demo's micro model is a local folder) loaded with
``StableDiffusionInpaintPipeline.from_pretrained``. Images are resized to the model's resolution
and back; with ``paste_back`` (default) the original pixels outside the mask are restored exactly,
so the spurious part is preserved. Each image has its own seed (a CPU ``torch.Generator``).
Precision is decided once: float16 on CUDA, float32 on CPU, set on the pipeline — never a
process-wide autocast.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from .errors import ConfigError, ModelError, WeightsUnavailableError

DEFAULT_MODEL = "stabilityai/stable-diffusion-2-inpainting"
DEFAULT_TEMPLATE = "a photo of a {token} {name}"
MICRO_MODEL = "data/models/micro-sd-inpainting"  # the demo's model, shipped in the repository
REPO_ROOT = Path(__file__).resolve().parent.parent


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

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 < self.strength <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {self.strength}")
        if self.guidance < 0:
            raise ConfigError(f"guidance must be >= 0, got {self.guidance}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if "{name}" not in self.template:
            raise ConfigError(f"template must contain {{name}}, got {self.template!r}")


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
        pipe.set_progress_bar_config(disable=True)

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "auto") -> "Inpainter":
        import torch
        from diffusers import StableDiffusionInpaintPipeline

        from .device import resolve_device, resolve_dtype

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
        pipe = pipe.to(dev)
        return cls(pipe, str(model), model_hash(str(model)))

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
        row = self.pipe.text_encoder.get_input_embeddings().weight[vocab[token]].detach().float().cpu()
        if not torch.allclose(row, self.tokens[token].reshape(-1), atol=1e-3, rtol=1e-3):
            raise ModelError(f"the embedding of {token} in the text encoder differs from the learned one")

    # -- generation ------------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        return int(self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor)

    def inpaint(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], prompts: Sequence[str],
                seeds: Sequence[int], cfg: InpaintConfig = InpaintConfig()) -> list[np.ndarray]:
        """One inpainted image per input (RGB uint8, the input's size), seeded per image."""
        import torch

        if not (len(images) == len(masks) == len(prompts) == len(seeds)):
            raise ConfigError("images, masks, prompts and seeds must have the same length")
        for t in self.tokens:
            if any(t in p for p in prompts):
                self.verify_token(t)
        res = self.resolution
        pil_images = [Image.fromarray(im).resize((res, res), Image.BICUBIC) for im in images]
        pil_masks = [Image.fromarray(m).resize((res, res), Image.NEAREST) for m in masks]
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        out = self.pipe(prompt=list(prompts), image=pil_images, mask_image=pil_masks, num_inference_steps=cfg.steps,
                        guidance_scale=cfg.guidance, strength=cfg.strength, generator=gens, height=res, width=res,
                        output_type="np").images  # N x res x res x 3 float in [0, 1]
        results = []
        for src, m, gen in zip(images, masks, out):
            g = Image.fromarray((np.clip(gen, 0, 1) * 255).round().astype(np.uint8))
            g = np.asarray(g.resize((src.shape[1], src.shape[0]), Image.BICUBIC))
            if cfg.paste_back:
                g = np.where((m == 255)[..., None], g, src)
            results.append(g.astype(np.uint8))
        return results
