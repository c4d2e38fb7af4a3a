"""Training the demo's micro Stable Diffusion inpainting model.

Consumes the pretraining corpus that the renderer makes for it (``demo.corpus``: both kinds of bird on
both places in equal numbers, seeds no benchmark uses, captions that describe the bird's shape in half
of them) — or, with ``--data``, a demo benchmark's **train split** (images and ground-truth object
masks, class-agnostic captions; the model of the first releases) — and a ``MicroTrainConfig``; produces a diffusers folder (``model_index.json``, ``vae/``, ``unet/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``) that ``StableDiffusionInpaintPipeline.from_pretrained``
loads exactly as it loads SD2-inpainting.

Two phases, both seeded and resumable from ``<out>/checkpoints/``:

1. the VAE (``AutoencoderKL``) as an autoencoder: L1 + a small KL term;
2. the UNet (9 input channels: noisy latents, mask, masked-image latents) and the CLIP text
   encoder together, with the VAE frozen, on the inpainting objective, with a cosine learning
   rate. Captions never name the class: they say "bird", the background word, and the side of
   the image the bird is on (read from its mask), e.g. "a picture of a bird on the left on water";
   on the corpus half of them also describe the bird's shape ("a long necked bird"), as captions of
   real photographs do. (The bird's colour was tried as a caption attribute and rejected: on the
   demo it predicts the class — orange and white birds are all landbirds, blue ones nearly all
   waterbirds.) Masks: the object mask grown by 0-8 px (30%), its bounding box with a margin
   (25%), a random box (20%) or the whole image (25%, plain text-to-image), as SD inpainting was
   trained with a mix of object, random and full masks.

The ``crop`` preset (``MicroTrainConfig.crop()``, shipped until 2026-12-05) trains a model that repaints a **window
around the mask** instead of the whole image: each corpus scene is cut to a square of about twice the bird's
box (``crop_corpus``, the same ``crop_window`` that generation uses, jittered) and resized to 32 px, so the bird
is about ten latent pixels long instead of three to eight, and a UNet step costs a quarter. Its box masks take a
margin per side, so that the box's shape does not tell which bird was in it. The folder records the window
(``inpaint.json``); generation and textual inversion read it. ``crop-unit`` (shipped since 2026-12-05): unit-variance latents;
``crop-unit-48``: the same on 48-px windows (a finer latent grid).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from ..project.errors import ConfigError, DatasetError
from ..method.inpainting import crop_window
from .corpus import CORPUS_WORDS, caption, caption_attributes, render_corpus
from .micro_sd import BASE_WORDS, MicroSDConfig, build_components
from .micro_decoder import train_decoder_phase
from .micro_weights import WeightAverage, load_unet_from, load_vae_from, save_folder
from ..project.progress import CancelToken, ProgressFn, ProgressTracker, check_cancel


@dataclass(frozen=True)
class MicroTrainConfig:
    # latents at half the image side (32 px for the demo's 64): a bird is about 8 latent pixels long, enough for a
    # head, a neck and a bill (at a quarter, 16 px, it was 3 to 4 and came out as a blob)
    model: MicroSDConfig = field(default_factory=lambda: MicroSDConfig(
        vae_channels=(32, 64), unet_channels=(64, 128, 128), unet_layers_per_block=1, attention_head_dim=8,
        text_hidden=64, text_layers=2, text_heads=4, words=BASE_WORDS + CORPUS_WORDS))
    corpus: int = 12000  # corpus images rendered for training (``demo.corpus``); ignored with a dataset folder
    corpus_seed: int = 0
    # The model repaints a window around the mask (``method.inpainting.crop_window``) rather than the whole image:
    # None = whole images; a number = the window's side over the longer side of the mask's box. The corpus is then
    # rendered at ``render_size`` (the demo's image size) and cut into windows around each bird (scale and centre
    # jittered), resized to the model's side; the model folder records the scale (``inpaint.json``) so that
    # generation and textual inversion work in the same windows.
    crop_scale: Optional[float] = None
    # the window the finished model repaints (its ``inpaint.json``); None = ``crop_scale``. The crop preset's is
    # chosen on val by ``ddb bench window`` among windows of 1.25 to 2 times the mask's box.
    repaint_scale: Optional[float] = None
    render_size: int = 64
    shape_captions: float = 0.5  # share of corpus captions that describe the bird's shape ("a long necked bird")
    # training masks: shares of the object mask (grown by 0-8 px), its box, a random box; the rest is the whole image
    mask_shares: tuple[float, float, float] = (0.3, 0.25, 0.2)
    # loss weight of the latent cells outside the repaint mask (1 = the plain SD loss); what lies there is pasted
    # back after generation, so a lower weight spends the model's capacity where it draws
    outside_weight: float = 1.0
    # Min-SNR-γ loss weighting (Hang et al., 2023): each timestep's loss weighted by min(SNR, γ) / SNR; None = plain
    snr_gamma: Optional[float] = None
    # share of each image's loss given to the latent cells under the bird's silhouette (each cell by the share of it the
    # object mask covers), the rest to the other cells; None = every cell alike (docs/decisions/micro-bird-weight.md)
    bird_share: Optional[float] = None
    # the UNet and text encoder saved (and sampled) as an exponential moving average of their weights with this decay;
    # None = their last weights (docs/decisions/micro-ema.md)
    ema_decay: Optional[float] = None
    vae_steps: int = 1500
    unet_steps: int = 3000  # about 140 min on 2 CPU cores at these sizes (see docs/benchmarks.md)
    vae_batch_size: int = 16
    batch_size: int = 32  # UNet phase
    vae_lr: float = 1e-3
    unet_lr: float = 6e-4  # peak; cosine decay to 5% over the UNet phase after 100 warm-up steps
    # Warm restart: the first cosine ends at this UNet step; from there the learning rate follows the cosine
    # of the whole phase (back up to about half the peak). With 6500 steps this is, in one run, the schedule
    # the shipped model was trained with (a 3000-step run continued to 6500). It only applies when it lies
    # between the 100 warm-up steps and ``unet_steps``; otherwise (or None) the phase is one cosine.
    unet_restart_steps: Optional[int] = 3000
    kl_weight: float = 1e-6
    # a diffusers model folder whose VAE this run uses instead of training one (its VAE must have this recipe's sizes;
    # the VAE phase is then skipped). For a recipe that differs from another only after its VAE phase.
    vae_from: Optional[str] = None
    # a diffusers model folder whose UNet and text encoder this run uses instead of training them (the UNet phase is
    # then skipped); needs ``vae_from`` the same folder, so the latents are the ones that UNet was trained on
    unet_from: Optional[str] = None
    # a third phase: the VAE's decoder trained again with a patch discriminator, the encoder frozen (0 = none;
    # ``micro_decoder``, docs/decisions/micro-decoder-gan.md); its adversarial weight (latent diffusion's) and rate
    decoder_gan_steps: int = 0
    decoder_gan_weight: float = 0.5
    decoder_lr: float = 1e-4
    # latents scaled to unit std as Stable Diffusion's are (measured after the VAE phase; its 0.18215 suits its VAE only)
    unit_latents: bool = False
    checkpoint_every: int = 500  # steps
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if len(self.mask_shares) != 3 or min(self.mask_shares) < 0 or sum(self.mask_shares) > 1:
            raise ConfigError(f"mask_shares must be three shares >= 0 that sum to at most 1, got {self.mask_shares}")
        if not 0 <= self.outside_weight <= 1:
            raise ConfigError(f"outside_weight must be in [0, 1], got {self.outside_weight}")
        if self.snr_gamma is not None and not self.snr_gamma > 0:
            raise ConfigError(f"snr_gamma must be > 0 (or None), got {self.snr_gamma}")
        if self.bird_share is not None and not 0 < self.bird_share < 1:
            raise ConfigError(f"bird_share must be in (0, 1) (or None), got {self.bird_share}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1) (or None), got {self.ema_decay}")
        if not 0 <= self.shape_captions <= 1:
            raise ConfigError(f"shape_captions must be in [0, 1], got {self.shape_captions}")
        if self.crop_scale is not None and self.crop_scale < 1:
            raise ConfigError(f"crop_scale must be >= 1 (or None), got {self.crop_scale}")
        if self.repaint_scale is not None and (self.crop_scale is None or self.repaint_scale < 1):
            raise ConfigError(f"repaint_scale must be >= 1 and needs crop_scale, got {self.repaint_scale}")
        if self.unet_from is not None and self.vae_from != self.unet_from:
            raise ConfigError(f"unet_from needs vae_from the same folder (the UNet's own latents), got vae_from "
                              f"{self.vae_from} and unet_from {self.unet_from}")
        if self.decoder_gan_steps < 0 or not self.decoder_gan_weight > 0 or not self.decoder_lr > 0:
            raise ConfigError(f"decoder_gan_steps must be >= 0 and decoder_gan_weight, decoder_lr > 0, got "
                              f"{self.decoder_gan_steps}, {self.decoder_gan_weight}, {self.decoder_lr}")
        if self.corpus < 8:
            raise ConfigError(f"corpus must be at least 8 images, got {self.corpus}")
        for name in ("vae_steps", "unet_steps", "vae_batch_size", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.unet_restart_steps is not None and self.unet_restart_steps < 1:
            raise ConfigError(f"unet_restart_steps must be >= 1 (or None), got {self.unet_restart_steps}")

    @staticmethod
    def v1() -> "MicroTrainConfig":
        """The first micro model's recipe (the one shipped in data/models until the corpus): 16-px latents, trained
        on a demo benchmark's train split (``--data``) with class-agnostic captions, 6500 UNet steps with a warm
        restart at 3000."""
        return MicroTrainConfig(model=MicroSDConfig(vae_channels=(16, 32, 64), unet_channels=(64, 128, 128),
                                                    unet_layers_per_block=1, attention_head_dim=8, text_hidden=64,
                                                    text_layers=2, text_heads=4),
                                unet_steps=6500, unet_restart_steps=3000)

    @staticmethod
    def crop() -> "MicroTrainConfig":
        """The model that repaints a window around the mask: 32-px windows of twice the mask's box (a bird fills about
        half of it, ten latent pixels long), 16-px latents, so a UNet step costs a quarter of the corpus preset's and
        the same time buys four times the steps; min-SNR-γ 5 weighting; box masks with a margin per side. The VAE
        gets 6000 steps: at 1500 its loss was still falling and it decoded a grey bird as an orange smear."""
        return MicroTrainConfig(model=MicroSDConfig(
            sample_size=32, vae_channels=(32, 64), unet_channels=(64, 128, 128), unet_layers_per_block=1,
            attention_head_dim=8, text_hidden=64, text_layers=2, text_heads=4, words=BASE_WORDS + CORPUS_WORDS),
            crop_scale=2.0, repaint_scale=1.5, corpus=16000, mask_shares=(0.25, 0.45, 0.1), snr_gamma=5.0, vae_steps=6000,
            unet_steps=6000, unet_restart_steps=None, checkpoint_every=250)

    @staticmethod
    def crop_wide() -> "MicroTrainConfig":
        """The crop preset with its UNet's blocks 96, 192, 192 wide (14.7 M parameters, not 6.6 M; micro-unet-wide.md)."""
        base = MicroTrainConfig.crop()
        return replace(base, model=replace(base.model, unet_channels=(96, 192, 192)))

    @staticmethod
    def crop_unit() -> "MicroTrainConfig":
        """The crop preset with its latents scaled to unit standard deviation (docs/decisions/micro-unit-latents.md)."""
        return replace(MicroTrainConfig.crop(), unit_latents=True)

    @staticmethod
    def smoke() -> "MicroTrainConfig":
        """A few steps at tiny sizes: for tests (well under a minute on a CPU)."""
        return MicroTrainConfig(model=MicroSDConfig(sample_size=32, words=BASE_WORDS + CORPUS_WORDS), corpus=48,
                                vae_steps=3, unet_steps=3, vae_batch_size=4, batch_size=4, checkpoint_every=2)


PRESETS = {"corpus": MicroTrainConfig, "v1": MicroTrainConfig.v1, "crop": MicroTrainConfig.crop,
           "crop-wide": MicroTrainConfig.crop_wide, "crop-unit": MicroTrainConfig.crop_unit,
           "crop-wide-unit": lambda: replace(MicroTrainConfig.crop_wide(), unit_latents=True),  # both changes at once
           # a finer grid: 48-px windows, 24-px latents (docs/decisions/micro-fine-grid.md)
           "crop-unit-48": lambda: replace(MicroTrainConfig.crop_unit(),
                                           model=replace(MicroTrainConfig.crop_unit().model, sample_size=48)),
           # half of each image's loss on the bird's latent cells (docs/decisions/micro-bird-weight.md)
           "crop-unit-bird": lambda: replace(MicroTrainConfig.crop_unit(), bird_share=0.5),
           # sampled from an average of its weights over about the last 1000 steps (docs/decisions/micro-ema.md)
           "crop-unit-ema": lambda: replace(MicroTrainConfig.crop_unit(), ema_decay=0.999),
           # the decoder trained again with a patch discriminator (docs/decisions/micro-decoder-gan.md)
           "crop-unit-gan": lambda: replace(MicroTrainConfig.crop_unit(), decoder_gan_steps=3000),
           # SNR x 16 for 16-px latents, zero terminal SNR, v-prediction (docs/decisions/micro-noise-schedule.md)
           "crop-unit-schedule": lambda: replace(MicroTrainConfig.crop_unit(), model=replace(
               MicroTrainConfig.crop_unit().model, snr_shift=16.0, zero_terminal_snr=True))}


def _load_train_split(dataset_dir: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """(N x size x size x 3 uint8 images, N x size x size uint8 masks, caption attributes) of the train split."""
    import csv

    from ..data.imaging import classifier_view, load_mask, load_rgb

    meta = dataset_dir / "metadata.csv"
    if not meta.is_file():
        raise DatasetError(f"{meta} not found: train the micro model on the demo benchmark (ddb demo-data)")
    info = json.loads((dataset_dir / "dataset.json").read_text()) if (dataset_dir / "dataset.json").is_file() else {}
    places = info.get("place_names", ["land", "water"])
    rows = [r for r in csv.DictReader(open(meta)) if r["split"] == "0"]  # the train split only
    if not rows or not rows[0].get("mask_filename"):
        raise DatasetError(f"{meta}: the micro model trains on the train split's images and object masks (mask_filename)")
    # the demo's images are square: resizing them to ``size`` (a no-op at the demo's 64 px) distorts nothing
    images = np.stack([classifier_view(load_rgb(dataset_dir / r["img_filename"]), size) for r in rows])
    masks = np.stack([load_mask(dataset_dir / r["mask_filename"], (size, size)) for r in rows])
    attrs = [dict(caption_attributes(im, m), place=places[int(r["place"])]) for im, m, r in zip(images, masks, rows)]
    return images, masks, attrs


def _training_masks(rng: np.random.Generator, object_masks: np.ndarray,
                    shares: tuple[float, float, float] = (0.3, 0.25, 0.2),
                    side_margins: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(N x 1 x H x W float {0, 1} masks, N kinds): the object mask (kind 0) or the object mask grown by 1-8 px
    (kind 1) together ``shares[0]`` (30%), its box with a margin (kind 1, ``shares[1]``, 25%; the same margin on
    both sides of an axis, or with ``side_margins`` one per side, up to a fifth of the side), a random box
    (kind 2, ``shares[2]``, 20%), the whole image (kind 3, the rest)."""
    c1, c2, c3 = np.cumsum(shares)
    from ..method.masking import dilate

    n, h, w = object_masks.shape
    out = np.zeros((n, 1, h, w), np.float32)
    kinds = np.zeros(n, np.int64)
    for k in range(n):
        u = rng.uniform()
        fg = object_masks[k] >= 128
        if u < c1:
            r = int(rng.integers(0, 9))
            out[k, 0] = dilate(object_masks[k], r) >= 128 if r else fg
            kinds[k] = 0 if r == 0 else 1  # a grown silhouette needs its own masked latent, as a box does
        elif u < c2 and fg.any():
            kinds[k] = 1
            ys, xs = np.nonzero(fg)
            if side_margins:  # each side its own margin: the box's shape does not tell the bird's
                t, b, l, r = (int(v) for v in rng.integers(0, max(2, h // 5), 4))
                out[k, 0, max(0, ys.min() - t):ys.max() + b + 1, max(0, xs.min() - l):xs.max() + r + 1] = 1
            else:
                mh, mw = int(rng.integers(1, max(2, h // 8))), int(rng.integers(1, max(2, w // 8)))
                out[k, 0, max(0, ys.min() - mh):ys.max() + mh + 1, max(0, xs.min() - mw):xs.max() + mw + 1] = 1
        elif u < c3:
            kinds[k] = 2
            bh, bw = (rng.uniform(0.2, 0.7, 2) * (h, w)).astype(int)
            y, x = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
            out[k, 0, y:y + bh, x:x + bw] = 1
        else:
            kinds[k] = 3
            out[k, 0] = 1
    return out, kinds


def crop_corpus(images: np.ndarray, masks: np.ndarray, size: int, scale: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each image and its object mask cut to a window around the object (``crop_window``: ``scale`` times the
    box's longer side, jittered by ±15%, its centre moved by up to a tenth of the side) and resized to ``size``
    (images Lanczos, masks nearest), as generation cuts and resizes them."""
    from PIL import Image

    out_i = np.empty((len(images), size, size, 3), np.uint8)
    out_m = np.empty((len(images), size, size), np.uint8)
    for k, (im, m) in enumerate(zip(images, masks)):
        s = scale * rng.uniform(0.85, 1.15)
        top, left, wh, ww = crop_window(m, max(1.0, s), tuple(rng.uniform(-0.1, 0.1, 2)))
        out_i[k] = np.asarray(Image.fromarray(im[top:top + wh, left:left + ww]).resize((size, size), Image.LANCZOS))
        cm = np.asarray(Image.fromarray(m[top:top + wh, left:left + ww]).resize((size, size), Image.NEAREST))
        out_m[k] = np.where(cm >= 128, 255, 0)
    return out_i, out_m


def unet_lr_at(cfg: MicroTrainConfig, k: int) -> float:
    """Learning rate at UNet step ``k``: 100 warm-up steps, then cosine to 5% of the peak, with the optional
    warm restart at ``unet_restart_steps`` (the first cosine ends there; the rest follows the whole phase's)."""
    if k < 100:
        return cfg.unet_lr * (k + 1) / 100
    r = cfg.unet_restart_steps
    restart = r if r is not None and 100 < r < cfg.unet_steps else None
    end = restart if restart is not None and k < restart else cfg.unet_steps
    frac = (k - 100) / max(1, end - 100)
    return cfg.unet_lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def denoising_loss(pred, noise, lat_mask, alpha_bar, outside_weight: float = 1.0, snr_gamma: Optional[float] = None,
                   lat_object=None, bird_share: Optional[float] = None, v_prediction: bool = False):
    """The UNet's loss: squared error of the predicted noise, latent cells outside the repaint mask weighted by
    ``outside_weight``, each image's mean weighted by min(SNR, γ) / SNR when ``snr_gamma`` is set (SNR = ᾱ / (1 − ᾱ)
    of its timestep); the plain mean squared error with the defaults. With ``bird_share``, each image's mean is
    ``bird_share`` times its mean over the cells under the bird (``lat_object``, N x 1 x h x w: the share of each cell
    the object mask covers) plus the rest times its mean over the other cells (an image with no bird: the plain mean)."""
    import torch

    w = lat_mask + outside_weight * (1 - lat_mask)  # N x 1 x h x w
    se = ((pred.float() - noise.float()) ** 2).mean(1, keepdim=True)
    per_image = (se * w).sum((1, 2, 3)) / w.sum((1, 2, 3))
    if bird_share is not None:
        wb, wr = w * lat_object, w * (1 - lat_object)
        nb, nr = wb.sum((1, 2, 3)), wr.sum((1, 2, 3))
        split = bird_share * (se * wb).sum((1, 2, 3)) / nb.clamp(min=1e-8) + \
            (1 - bird_share) * (se * wr).sum((1, 2, 3)) / nr.clamp(min=1e-8)
        per_image = torch.where((nb > 0) & (nr > 0), split, per_image)
    if snr_gamma is not None:  # ε: min(SNR, γ) / SNR; v (``noise`` is then the velocity): min(SNR, γ) / (SNR + 1)
        snr = alpha_bar / (1 - alpha_bar)
        per_image = per_image * snr.clamp(max=snr_gamma) / (snr + 1 if v_prediction else snr)
    return per_image.mean()


def _frozen_vae_latents(vae, pixels, obj_masks: np.ndarray, device, batch: int = 64):
    """What the frozen VAE gives for the whole train split, on the CPU: posterior mean and std of every
    image, the latent (mode) of every image with its object mask blanked, and that of a fully blanked image."""
    import torch

    fg = torch.from_numpy(obj_masks >= 128).float().unsqueeze(1)
    means, stds, blanked = [], [], []
    with torch.no_grad():
        for i in range(0, len(pixels), batch):
            x = pixels[i:i + batch].to(device)
            post = vae.encode(x).latent_dist
            means.append(post.mean.cpu()), stds.append(post.std.cpu())
            blanked.append(vae.encode(x * (1 - fg[i:i + batch].to(device))).latent_dist.mode().cpu())
        full = vae.encode(torch.zeros_like(pixels[:1]).to(device)).latent_dist.mode().cpu()[0]
    return torch.cat(means), torch.cat(stds), torch.cat(blanked), full


def unit_scale(lat_mean, lat_std) -> float:
    """1 / std of the latents the VAE's posterior draws (means' spread and its own), 5 digits: unit variance."""
    var = lat_mean.double().var() + (lat_std.double() ** 2).mean()
    return float(f"{1.0 / var.sqrt().item():.5g}")


def export_checkpoint(run_dir: str | os.PathLike, dest: str | os.PathLike) -> tuple[Path, int]:
    """The last checkpoint of a training run (``run_dir/checkpoints/state.pt``) as a diffusers folder in ``dest``, to
    measure a run before it ends; returns (folder, UNet steps done)."""
    import torch

    from ..method.inpainting import check_model_folder

    state_file = Path(run_dir) / "checkpoints" / "state.pt"
    if not state_file.is_file():
        raise ConfigError(f"{state_file} not found: no checkpoint of a training run in {run_dir}")
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    raw = json.loads(state["config"])
    model = MicroSDConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.pop("model").items()})
    raw["mask_shares"] = tuple(raw["mask_shares"])
    known = set(MicroTrainConfig.__dataclass_fields__)
    cfg = MicroTrainConfig(model=model, **{k: v for k, v in raw.items() if k in known})
    if int(state["step"]) <= cfg.vae_steps:
        raise ConfigError(f"{state_file} is at step {int(state['step'])}, still in the VAE phase: no UNet to export yet")
    parts = build_components(cfg.model)
    parts["vae"].load_state_dict(state["vae"]), parts["unet"].load_state_dict(state["unet"])
    parts["text_encoder"].load_state_dict(state["text_encoder"])
    if state.get("ema") is not None:  # the weights the finished run would save: the average
        WeightAverage({"unet": parts["unet"], "text_encoder": parts["text_encoder"]}, cfg.ema_decay,
                      state["ema"]).copy_to_modules()
    save_folder(Path(dest), cfg, parts)
    check_model_folder(Path(dest))
    return Path(dest), int(state["step"]) - cfg.vae_steps


# Fields that do not change the weights a step makes: a run may be continued with other values.
_NOT_TRAINING = ("unet_steps", "checkpoint_every", "repaint_scale", "device")


def continues(old: dict, new: dict) -> bool:
    """Whether a run whose checkpoint was written with config ``old`` may go on under ``new`` (both as JSON dicts):
    the same recipe with at least as many UNet steps. A run that ended its one cosine at U steps and goes on to N
    follows, from U, the cosine of the whole N-step phase; that is the schedule of ``unet_restart_steps`` = U, so the
    continued run may name it either way (None, or U)."""
    old, new = dict(old), dict(new)
    old.setdefault("unet_restart_steps", None)  # checkpoints written before the options existed
    old.setdefault("unit_latents", False)
    old.setdefault("bird_share", None)
    old.setdefault("ema_decay", None)
    for k, v in (("unet_from", None), ("decoder_gan_steps", 0), ("decoder_gan_weight", 0.5), ("decoder_lr", 1e-4)):
        old.setdefault(k, v)
    old["model"] = {"snr_shift": 1.0, "zero_terminal_snr": False, **old.get("model", {})}
    if new["unet_steps"] < old["unet_steps"]:
        return False
    if old["unet_restart_steps"] is None and new.get("unet_restart_steps") == old["unet_steps"]:
        old["unet_restart_steps"] = old["unet_steps"]
    if new["unet_steps"] > old["unet_steps"] and new.get("unet_restart_steps") is None:
        new["unet_restart_steps"] = old["unet_restart_steps"]
    return {k: v for k, v in old.items() if k not in _NOT_TRAINING} == \
        {k: v for k, v in new.items() if k not in _NOT_TRAINING}


def train_micro_inpainter(dataset_dir: Optional[str | os.PathLike], out_dir: str | os.PathLike,
                          cfg: MicroTrainConfig = MicroTrainConfig(), on_progress: Optional[ProgressFn] = None,
                          cancel: Optional[CancelToken] = None) -> Path:
    """Train (or resume) the micro model and save it as a diffusers folder in ``out_dir``: on the rendered corpus
    (``cfg.corpus`` images) when ``dataset_dir`` is None, else on that demo benchmark's train split."""
    import torch
    import torch.nn.functional as F

    from ..project.device import place, resolve_device

    out, ckdir = Path(out_dir), Path(out_dir) / "checkpoints"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; nothing was written")
    if out.is_dir() and any(out.iterdir()) and not (ckdir.is_dir() or (out / "training.json").is_file()):
        # a folder this command did not make (no checkpoints, no training record): never written over
        raise ConfigError(f"--out {out} holds files that train-micro-inpainter did not write; choose a new or empty "
                          "folder (a folder it made resumes). Nothing was written")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    parts = build_components(cfg.model)
    vae, unet, enc, tok, sched = (parts[k] for k in ("vae", "unet", "text_encoder", "tokenizer", "scheduler"))
    # a VAE taken from another folder is checked before anything is written
    vae_from = load_vae_from(vae, Path(cfg.vae_from)) if cfg.vae_from else None
    unet_from = load_unet_from(unet, enc, Path(cfg.unet_from)) if cfg.unet_from else None
    ckdir.mkdir(parents=True, exist_ok=True)
    size = cfg.model.sample_size
    if dataset_dir is None:
        images, obj_masks, attrs = render_corpus(cfg.corpus, cfg.corpus_seed, cfg.render_size if cfg.crop_scale else size)
    else:
        images, obj_masks, attrs = _load_train_split(Path(dataset_dir), cfg.render_size if cfg.crop_scale else size)
    if cfg.crop_scale:
        images, obj_masks = crop_corpus(images, obj_masks, size, cfg.crop_scale, np.random.default_rng([cfg.corpus_seed, 17]))
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    for part, name in ((vae, "vae"), (unet, "unet"), (enc, "text encoder")):
        place(part, device, what=f"micro model training ({name})")
    state_file = ckdir / "state.pt"
    state = torch.load(state_file, map_location="cpu", weights_only=True) if state_file.exists() else None
    # the UNet steps of the run this one continued, if it continued one (kept in the checkpoint across resumes)
    extended_from = int(state["extended_from"]) if state is not None and state.get("extended_from", -1) >= 0 else None
    if state is not None and state.get("config") != json.dumps(asdict(cfg), sort_keys=True, default=str):
        # The same run may be continued with more UNet steps (the cosine schedule is stretched to the new end).
        old = json.loads(state["config"])
        if not continues(old, json.loads(json.dumps(asdict(cfg), default=str))):
            raise ConfigError(f"{state_file} was written with another config (only --unet-steps may grow to continue "
                              f"a run); remove {ckdir} to start over")
        if cfg.unet_steps > old["unet_steps"]:  # another device or checkpoint interval alone extends nothing
            extended_from = old["unet_steps"]
    unet_end = cfg.vae_steps + cfg.unet_steps
    total = unet_end + cfg.decoder_gan_steps
    step = int(state["step"]) if state else 0
    if state:
        vae.load_state_dict(state["vae"]), unet.load_state_dict(state["unet"]), enc.load_state_dict(state["text_encoder"])
    tracker = ProgressTracker("train micro inpainter", total, on_progress, step)
    t0 = time.monotonic()
    log = json.loads(state["log"]) if state else []
    seconds_before = float(state["seconds"]) if state and "seconds" in state else 0.0
    latent_scale = float(state["latent_scale"]) if state is not None and state.get("latent_scale") is not None else None
    if unet_from is not None:  # the borrowed UNet's latents: its folder's scale
        latent_scale = float(unet_from["latent_scale"])
    average = None  # the UNet phase's weight average (``ema_decay``), made when that phase starts

    def save_state(opt, extra: Optional[dict] = None, at: Optional[int] = None) -> None:
        """The checkpoint at step ``at`` (default: this function's ``step``; a phase run elsewhere passes its own)."""
        tmp = state_file.with_suffix(".tmp")
        torch.save({**(extra or {}), "step": step if at is None else at, "seconds": torch.tensor(seconds_before + time.monotonic() - t0), "vae": vae.state_dict(), "unet": unet.state_dict(), "text_encoder": enc.state_dict(),
                    "optimizer": opt.state_dict(), "log": json.dumps(log),
                    "extended_from": -1 if extended_from is None else extended_from, "latent_scale": latent_scale,
                    "ema": None if average is None else average.state_dict(),
                    "config": json.dumps(asdict(cfg), sort_keys=True, default=str)}, tmp)
        tmp.replace(state_file)

    # 1. VAE: trained, or taken from another model folder (loaded above).
    if vae_from is not None and step < cfg.vae_steps:
        step = cfg.vae_steps
        tracker.update(step, f"VAE taken from {cfg.vae_from}")
    if step < cfg.vae_steps:
        vae.train()
        opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)
        if state and "optimizer" in state and step > 0:
            opt.load_state_dict(state["optimizer"])
        while step < cfg.vae_steps:
            check_cancel(cancel, f"at VAE step {step}")
            g = torch.Generator().manual_seed(cfg.seed * 7919 + step)
            idx = torch.randint(0, len(pixels), (cfg.vae_batch_size,), generator=g)
            x = pixels[idx].to(device)
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample(generator=None)).sample
            loss = F.l1_loss(rec, x) + cfg.kl_weight * post.kl().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            log.append({"step": step, "phase": "vae", "loss": round(loss.item(), 5)})
            tracker.update(step, f"vae loss {np.mean([e['loss'] for e in log[-50:]]):.4f}")
            if step % cfg.checkpoint_every == 0 or step == cfg.vae_steps:
                save_state(opt)
    # 2. UNet + text encoder on the inpainting objective.
    vae.eval().requires_grad_(False)
    unet.train(), enc.train()
    params = list(unet.parameters()) + list(enc.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=1e-2)
    if state and "optimizer" in state and cfg.vae_steps < int(state["step"]) <= unet_end:
        opt.load_state_dict(state["optimizer"])

    def unet_lr(k: int) -> float:
        return unet_lr_at(cfg, k)

    if cfg.ema_decay is not None:  # from the checkpoint's average when the UNet phase had begun, else the weights now
        resumed = state.get("ema") if state and int(state["step"]) > cfg.vae_steps else None
        average = WeightAverage({"unet": unet, "text_encoder": enc}, cfg.ema_decay, resumed)

    if unet_from is not None and step < unet_end:
        step = unet_end
        tracker.update(step, f"UNet and text encoder taken from {cfg.unet_from}")
    alphas = sched.alphas_cumprod.to(device)
    if step < total:
        lat_mean, lat_std, obj_masked, full_masked = _frozen_vae_latents(vae, pixels, obj_masks, device)
        if cfg.unit_latents and latent_scale is None:  # measured once, kept in the checkpoint across resumes
            latent_scale = unit_scale(lat_mean, lat_std)
    if latent_scale is not None:
        vae.register_to_config(scaling_factor=latent_scale)
    scale = vae.config.scaling_factor
    while step < unet_end:
        check_cancel(cancel, f"at UNet step {step - cfg.vae_steps}")
        for group in opt.param_groups:
            group["lr"] = unet_lr(step - cfg.vae_steps)
        g = torch.Generator().manual_seed(cfg.seed * 7919 + step)
        rng = np.random.default_rng([cfg.seed, step])
        idx = torch.randint(0, len(pixels), (cfg.batch_size,), generator=g)
        x = pixels[idx].to(device)
        masks_np, kinds = _training_masks(rng, obj_masks[idx.numpy()], tuple(cfg.mask_shares),
                                          side_margins=cfg.crop_scale is not None)
        m = torch.from_numpy(masks_np).to(device)
        # The VAE is frozen: the posterior of every image, the latent of every image with its object masked
        # and the latent of a fully masked image are computed once (below); only box masks need the encoder.
        latents = (lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, generator=g)).to(device) * scale
        masked = torch.where(torch.from_numpy(kinds == 0).view(-1, 1, 1, 1), obj_masked[idx], full_masked).to(device)
        boxes = torch.from_numpy(np.flatnonzero((kinds == 1) | (kinds == 2)))
        if len(boxes):
            with torch.no_grad():
                masked[boxes] = vae.encode(x[boxes] * (1 - m[boxes])).latent_dist.mode()
        masked = masked * scale
        lat_mask = F.interpolate(m, size=latents.shape[-2:], mode="nearest")
        noise = torch.randn(latents.shape, generator=g).to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (cfg.batch_size,), generator=g).to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        captions = [caption(rng, attrs[k], cfg.shape_captions) for k in idx.tolist()]
        drop = rng.uniform(size=cfg.batch_size) < 0.1  # 10% empty captions: classifier-free guidance works
        captions = ["" if d else c for c, d in zip(captions, drop)]
        ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        cond = enc(ids.to(device))[0]
        pred = unet(torch.cat([noisy, lat_mask, masked], 1), t, encoder_hidden_states=cond).sample
        lat_object = None if cfg.bird_share is None else F.interpolate(  # the share of each latent cell under the bird
            torch.from_numpy(obj_masks[idx.numpy()] >= 128).float().unsqueeze(1), size=latents.shape[-2:], mode="area").to(device)
        v = sched.config.prediction_type == "v_prediction"  # the target: the noise, or the velocity
        target = sched.get_velocity(latents, noise, t) if v else noise
        loss = denoising_loss(pred, target, lat_mask, a.view(-1), cfg.outside_weight, cfg.snr_gamma, lat_object,
                              cfg.bird_share, v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if average is not None:
            average.update()
        step += 1
        log.append({"step": step, "phase": "unet", "loss": round(loss.item(), 5)})
        tracker.update(step, f"unet loss {np.mean([e['loss'] for e in log[-50:]]):.4f}")
        if step % cfg.checkpoint_every == 0 or step == unet_end:
            save_state(opt)
    # 3. The decoder again, with a patch discriminator (``decoder_gan_steps``); the encoder, the latents, stay.
    if step < total:
        step = train_decoder_phase(cfg, vae, pixels, lat_mean, lat_std, device, step, unet_end, state, log, tracker,
                              save_state, cancel)
    # 4. Save as a diffusers folder.
    with average.applied() if average is not None else nullcontext():  # the average, for a run with ``ema_decay``
        save_folder(out, cfg, {"vae": vae, "unet": unet, "text_encoder": enc, "tokenizer": tok, "scheduler": sched})
    (out / "training.json").write_text(json.dumps({
        "config": asdict(cfg), "dataset": str(dataset_dir) if dataset_dir is not None else None,
        "corpus": None if dataset_dir is not None else {"images": cfg.corpus, "seed": cfg.corpus_seed,
                                                        "module": "ddb_core.demo.corpus"},
        "device": str(device), "train_images": int(len(pixels)), "steps": step,
        "seconds_this_session": round(time.monotonic() - t0, 1),
        "seconds_total": round(seconds_before + time.monotonic() - t0, 1), "final_losses": log[-5:],
        "extended_from_unet_steps": extended_from, "vae_from": vae_from, "unet_from": unet_from,
        "latent_scale": vae.config.scaling_factor,
        "weights": "last" if average is None else f"exponential moving average, decay {cfg.ema_decay}, {average.updates} updates"},
        indent=2, default=str))
    return out

