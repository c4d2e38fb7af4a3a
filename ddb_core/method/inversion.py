"""Textual inversion (Eq. 1): learn one token embedding [C_i] per class.

Consumes an SD inpainting pipeline (real SD2-inpainting or the demo's micro model) and a class's
inversion images (RGB uint8 HWC, from ``selection``); produces ``learned_embeds.safetensors`` in the
diffusers format (``{token: embedding}``, loadable with ``pipe.load_textual_inversion``) and the
loss curve. Only the new token's embedding row is trained; the UNet, the VAE and the rest of the
text encoder stay frozen. The objective is the inpainting denoising loss: the UNet sees the noisy
latents, the mask and the masked-image latents (its 9 input channels), and prompts from a few
templates. Where the loss is counted (``InversionConfig.region``):

- ``"mask"`` (the default): each image's object mask (the object's own silhouette from the
  project's masker, ``generation.inversion_masker``, not the box or grown region that generation
  repaints) is the inpainting mask, and the loss is counted inside it only
  (``masked_denoising_loss``). The background is given to the UNet as the masked image, so the token
  has nothing to gain from encoding it: it learns the object, not the place the object was seen in.
  (The paper's supplement, §8.2, warns that whatever the token sees besides the object, the
  inpainting paints. Counted in a region grown around the object, most of the loss fell on the
  background there, and on the demo's corpus model the token learned to paint background.)
  With ``repaint_masks`` (what ``generation.invert_classes`` passes: the project's masker output,
  e.g. the object's box) the UNet is given that mask instead, as generation will give it, and the
  loss is still counted inside the silhouette: given the silhouette itself, its shape told the
  demo's model which bird to draw, and the token learned too little to change the bird. Given the box
  alone, the demo's landbird token learned too little to draw a landbird over water; so for three samples
  in four (``object_mask_share``) the UNet is given the silhouette, for the fourth the repaint mask: the
  token carries the bird either way.
- ``"image"``: masks that are the whole image half of the time and a random box otherwise, the loss
  over the whole latent (textual inversion as it is usually run; the token also learns the scene).

Images of any size are scaled so that the shorter side is the model's resolution and centre-cropped
to a square (Stable Diffusion's own training geometry; masks here are random, not the object's).

Precision: when the pipeline runs in half precision (float16 on CUDA, bfloat16 on request), the
text encoder is moved to float32 for the inversion and back afterwards, so the learned row and
AdamW's moment estimates are float32 (in float16 the second moment and eps underflow); the UNet
and the VAE stay in half precision, with a gradient scaler for float16. A non-finite loss stops
the job with an error that says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..project.errors import ConfigError, ModelError
from ..project.progress import CancelToken, ProgressFn, ProgressTracker, check_cancel

REGIONS = ("mask", "image")
TEMPLATES = ("a photo of a {token} {name}", "a picture of a {token} {name}", "an image of the {token} {name}",
             "a photo of the {token} {name}")


@dataclass(frozen=True)
class InversionConfig:
    steps: int = 400  # optimisation steps
    lr: float = 5e-3
    batch_size: int = 4
    seed: int = 0
    templates: tuple[str, ...] = TEMPLATES
    full_mask_share: float = 0.5  # region "image": share of steps whose mask is the whole image (else a random box)
    # where the loss is counted: "mask" (inside each image's object mask, which is also the inpainting mask) or
    # "image" (the whole latent, with whole-image and random-box masks)
    region: str = "mask"
    # with repaint masks: the share of samples for which the UNet is given the object's own mask instead, so that
    # the token has to carry the object both when the mask's shape shows it and when it does not (chosen on val
    # among 0, 0.5 and 0.75, the one that met the gates in both directions: docs/benchmarks.md, "does it draw the
    # bird?")
    object_mask_share: float = 0.75

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.full_mask_share <= 1:
            raise ConfigError(f"full_mask_share must be in [0, 1], got {self.full_mask_share}")
        if not 0 <= self.object_mask_share <= 1:
            raise ConfigError(f"object_mask_share must be in [0, 1], got {self.object_mask_share}")
        if self.region not in REGIONS:
            raise ConfigError(f"region must be one of {', '.join(REGIONS)}, got {self.region!r}")
        for t in self.templates:
            if "{token}" not in t or "{name}" not in t:
                raise ConfigError(f"every template needs {{token}} and {{name}}, got {t!r}")


@dataclass
class InversionResult:
    token: str
    embedding: "torch.Tensor"  # float32, on the CPU
    loss_curve: list[float]
    seconds: float
    train_dtype: str = "float32"  # dtype of the trained row and of AdamW's moment estimates
    model_dtype: str = "float32"  # dtype the UNet and the VAE ran in


def _square(arrays: Sequence[np.ndarray], res: int, resample) -> np.ndarray:
    """Arrays of any sizes → N x res x res (x C): shorter side scaled to ``res`` with ``resample``, centre crop."""
    from PIL import Image

    out = []
    for a in arrays:
        h, w = a.shape[:2]
        scale = res / min(h, w)
        nh, nw = max(res, round(h * scale)), max(res, round(w * scale))
        pil = Image.fromarray(np.ascontiguousarray(a))
        if (nh, nw) != (h, w):
            pil = pil.resize((nw, nh), resample)
        top, left = (nh - res) // 2, (nw - res) // 2
        out.append(np.asarray(pil)[top:top + res, left:left + res])
    return np.stack(out)


def square_pixels(images: Sequence[np.ndarray], res: int):
    """Images of any sizes → N x 3 x res x res float in [-1, 1]: shorter side scaled to ``res``,
    centre crop."""
    import torch
    from PIL import Image

    return torch.from_numpy(_square(images, res, Image.BICUBIC)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def add_token(pipe, token: str, init_word: str) -> int:
    """Add ``token`` to the tokenizer (or take its existing row, e.g. after a failed inversion in the same
    pipeline), initialised from the mean embedding of ``init_word``'s tokens."""
    import torch

    tok, enc = pipe.tokenizer, pipe.text_encoder
    init_ids = tok(init_word, add_special_tokens=False).input_ids
    if not init_ids:
        raise ConfigError(f"init word {init_word!r} tokenises to nothing")
    if token not in tok.get_vocab():
        tok.add_tokens([token])
    token_id = tok.convert_tokens_to_ids(token)
    if tok(token, add_special_tokens=False).input_ids != [token_id]:
        raise ModelError(f"token {token} does not tokenise to one entry of the tokenizer; choose another placeholder")
    if enc.get_input_embeddings().weight.shape[0] < len(tok):
        enc.resize_token_embeddings(len(tok), mean_resizing=False)
    emb = enc.get_input_embeddings().weight
    with torch.no_grad():
        emb[token_id] = emb[init_ids].mean(0)
    return token_id


def square_masks(masks: Sequence[np.ndarray], res: int):
    """Masks (HxW uint8, 255 = object) in the geometry of ``square_pixels``: N x 1 x res x res float {0, 1}."""
    import torch
    from PIL import Image

    return torch.from_numpy(_square(masks, res, Image.NEAREST) >= 128).unsqueeze(1).float()


def latent_mask(masks, size):
    """Pixel masks (N x 1 x H x W, {0, 1}) at the latent ``size``: a latent cell counts when any of its pixels does
    (a thin object still has cells)."""
    import torch.nn.functional as F

    return F.adaptive_max_pool2d(masks, size)


def masked_denoising_loss(pred, target, weight):
    """Eq. 1 counted inside the mask: the mean squared error over the latent cells where ``weight`` (N x 1 x h x w,
    {0, 1}) is 1, every channel. Pixels outside the mask do not enter it. Images whose mask is empty add nothing."""
    err = (pred.float() - target.float()) ** 2 * weight.float()
    cells = weight.float().sum() * pred.shape[1]
    return err.sum() / cells.clamp_min(1.0)


def _random_masks(rng: np.random.Generator, n: int, size: int, full_share: float) -> np.ndarray:
    masks = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        if rng.uniform() < full_share:
            masks[i] = 1
        else:
            h, w = (rng.uniform(0.3, 0.8, 2) * size).astype(int)
            y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
            masks[i, :, y:y + h, x:x + w] = 1
    return masks


def learn_token(pipe, images: Sequence[np.ndarray], token: str, name: str, init_word: Optional[str] = None,
                cfg: InversionConfig = InversionConfig(), on_progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelToken] = None, masks: Optional[Sequence[np.ndarray]] = None,
                crop_scale: Optional[float] = None,
                repaint_masks: Optional[Sequence[np.ndarray]] = None) -> InversionResult:
    """Learn the embedding of ``token`` from ``images`` (adds the token to ``pipe``). ``masks``: one per image
    (HxW uint8 at the image's size, 255 = the object), needed when ``cfg.region`` is "mask" or with ``crop_scale``:
    a model that repaints a window around the mask (``inpainting.crop_window``) learns its token in the same
    windows, each image cut to the window around its object. ``repaint_masks`` (region "mask"): the masks the UNet is
    given as its inpainting mask, one per image, each holding its object — the region generation repaints (the
    object's box, a grown silhouette); the loss still counts inside ``masks``. Without them the UNet is given the
    object's own silhouette, whose shape alone can tell the model which object to draw, so the token has less to
    learn."""
    import torch
    import torch.nn.functional as F

    if len(images) == 0:
        raise ConfigError(f"textual inversion of {token} needs at least one image")
    if crop_scale and masks is None:
        raise ConfigError(f"textual inversion of {token}: this model repaints a window around the mask, so its token is "
                          "learned in the windows around each image's object: give the object masks")
    if cfg.region == "mask" or crop_scale:
        if masks is None:
            raise ConfigError(f"textual inversion of {token} with region 'mask' needs one object mask per image "
                              "(or region 'image')")
        if len(masks) != len(images):
            raise ConfigError(f"textual inversion of {token}: {len(masks)} masks for {len(images)} images")
        for k, (im, m) in enumerate(zip(images, masks)):
            if m.shape[:2] != im.shape[:2]:
                raise ConfigError(f"textual inversion of {token}: mask {k} is {m.shape[:2]}, its image {im.shape[:2]}")
            if not (m >= 128).any():
                raise ConfigError(f"textual inversion of {token}: mask {k} is empty (leave that image out)")
    if repaint_masks is not None:
        if masks is None or len(repaint_masks) != len(masks):
            raise ConfigError(f"textual inversion of {token}: give one repaint mask per object mask")
        for k, (r, m) in enumerate(zip(repaint_masks, masks)):
            if r.shape != m.shape:
                raise ConfigError(f"textual inversion of {token}: repaint mask {k} is {r.shape}, its object mask {m.shape}")
    if crop_scale:
        from .inpainting import crop_window, cut

        # the window around the region generation repaints (the same window generation cuts)
        windows = [crop_window(m, crop_scale) for m in (repaint_masks if repaint_masks is not None else masks)]
        images, masks = cut(images, windows), cut(masks, windows)
        if repaint_masks is not None:
            repaint_masks = cut(repaint_masks, windows)
    t0 = time.monotonic()
    vae, unet, enc, tok, sched = pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer, pipe.scheduler
    device = unet.device
    dtype = unet.dtype  # the UNet and the VAE run in the pipeline's precision
    enc_dtype = enc.dtype
    enc.to(torch.float32)  # the trained row and the optimiser's state in float32 (see the module docstring)
    try:
        token_id = add_token(pipe, token, init_word or name.split()[-1])
        for module in (vae, unet, enc):
            module.requires_grad_(False)
        emb = enc.get_input_embeddings()
        emb.weight.requires_grad_(True)
        frozen_rows = emb.weight.detach().clone()
        opt = torch.optim.AdamW([emb.weight], lr=cfg.lr, weight_decay=0.0)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        res = int(unet.config.sample_size * pipe.vae_scale_factor)
        pixels = square_pixels(images, res)  # N x 3 x res x res in [-1, 1]
        object_masks = square_masks(masks, res) if cfg.region == "mask" else None  # N x 1 x res x res
        given_masks = square_masks(repaint_masks, res) if cfg.region == "mask" and repaint_masks is not None \
            else object_masks  # what the UNet is told to repaint
        rng = np.random.default_rng(cfg.seed)
        mask_rng = np.random.default_rng([cfg.seed, 1])  # its own stream: the other draws do not depend on the share
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        n_train_steps = sched.config.num_train_timesteps
        alphas = sched.alphas_cumprod.to(device)
        prediction = sched.config.get("prediction_type", "epsilon")
        scale = vae.config.scaling_factor
        curve: list[float] = []
        tracker = ProgressTracker(f"invert {token}", cfg.steps, on_progress)
        vae.eval(), unet.eval(), enc.train()
        for step in range(cfg.steps):
            check_cancel(cancel, f"at step {step} of textual inversion for {token}")
            idx = rng.integers(0, len(pixels), cfg.batch_size)
            x = pixels[idx].to(device, dtype)
            if object_masks is not None:
                m = given_masks[idx]
                if cfg.object_mask_share > 0 and given_masks is not object_masks:
                    own = torch.from_numpy(mask_rng.random(len(idx)) < cfg.object_mask_share).view(-1, 1, 1, 1)
                    m = torch.where(own, object_masks[idx], m)
                m = m.to(device, dtype)
            else:
                m = torch.from_numpy(_random_masks(rng, cfg.batch_size, res, cfg.full_mask_share)).to(device, dtype)
            with torch.no_grad():
                latents = vae.encode(x).latent_dist.sample(generator=gen) * scale  # seeded: a rerun learns the same token
                masked = vae.encode(x * (1 - m)).latent_dist.mode() * scale
            lat_mask = F.interpolate(m, size=latents.shape[-2:], mode="nearest")  # as the pipeline resizes it
            noise = torch.randn(latents.shape, generator=gen).to(device, dtype)
            t = torch.randint(0, n_train_steps, (cfg.batch_size,), generator=gen).to(device)
            a = alphas[t].view(-1, 1, 1, 1).to(dtype)
            noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
            prompts = [cfg.templates[int(rng.integers(len(cfg.templates)))].format(token=token, name=name) for _ in range(cfg.batch_size)]
            ids = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
            cond = enc(ids.to(device))[0].to(dtype)
            pred = unet(torch.cat([noisy, lat_mask, masked], 1), t, encoder_hidden_states=cond).sample
            target = noise if prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * latents
            if object_masks is not None:  # Eq. 1, inside the object's mask
                loss = masked_denoising_loss(pred, target, latent_mask(object_masks[idx].to(device).float(),
                                                                        latents.shape[-2:]))
            else:
                loss = F.mse_loss(pred.float(), target.float())  # Eq. 1
            if not torch.isfinite(loss):
                raise ModelError(f"textual inversion of {token} stopped at step {step + 1} of {cfg.steps}: the loss is "
                                 f"{float(loss)} (the model ran in {str(dtype).removeprefix('torch.')}). Nothing was "
                                 f"stored; try a smaller learning rate (now {cfg.lr}), or --dtype float32")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            with torch.no_grad():  # only the new token's row may change
                keep = torch.ones(emb.weight.shape[0], dtype=torch.bool, device=emb.weight.device)
                keep[token_id] = False
                emb.weight[keep] = frozen_rows[keep]
            curve.append(float(loss.item()))
            tracker.update(step + 1, f"loss {np.mean(curve[-20:]):.4f}")
        learned = emb.weight[token_id].detach().float().cpu().clone()
        if not torch.isfinite(learned).all():
            raise ModelError(f"textual inversion of {token} produced a non-finite embedding; nothing was stored")
        state_dtypes = {str(v.dtype).removeprefix("torch.") for st in opt.state.values() for v in st.values()
                        if torch.is_tensor(v) and v.dim() > 0}
        train_dtype = state_dtypes.pop() if len(state_dtypes) == 1 else ",".join(sorted(state_dtypes)) or "float32"
    finally:
        emb = enc.get_input_embeddings()
        emb.weight.requires_grad_(False)
        enc.eval()
        enc.to(enc_dtype)  # back to the pipeline's precision for generation
    return InversionResult(token, learned, curve, time.monotonic() - t0, train_dtype=train_dtype,
                           model_dtype=str(dtype).removeprefix("torch."))


def save_embedding(path: str | Path, token: str, embedding) -> Path:
    """Write ``{token: embedding}`` as safetensors (the diffusers textual-inversion format)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({token: embedding.contiguous()}, str(tmp))
    tmp.replace(path)
    return path


def class_token(name: str) -> str:
    """The placeholder token of a class, e.g. ``<waterbird>``."""
    return "<" + "-".join(name.lower().split()) + ">"
