"""What training the micro model costs on this machine (``ddb bench micro-cost``).

Times a few steps of each training phase at a preset's sizes and batch — a VAE step, a UNet + text-encoder step,
the frozen VAE's pass over the corpus — with the same code as ``train-micro-inpainter``, and projects the wall
time of the whole command from them (medians of the timed steps, after one warm-up step). A projection, not a
run: it says whether the command fits the 150 minutes a demo model may take on 2 CPU cores.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, replace
from typing import Optional

import numpy as np

from ..project.errors import ConfigError

LIMIT_MIN = 150.0


def _median_step(fn, steps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def micro_cost(preset: str = "corpus", steps: int = 5, device: str = "cpu", unet_steps: Optional[int] = None) -> dict:
    """Seconds per step of each phase at ``preset``'s sizes, and the projected wall time of the training command
    (with ``unet_steps`` UNet steps instead of the preset's, when given)."""
    import torch
    import torch.nn.functional as F

    from ..demo.corpus import render_corpus
    from ..demo.micro_sd import build_components
    from ..demo.micro_train import PRESETS, crop_corpus
    from ..project.device import resolve_device

    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    cfg = PRESETS[preset]()
    if unet_steps is not None:
        if unet_steps < 1:
            raise ConfigError(f"--unet-steps must be >= 1, got {unet_steps}")
        cfg = replace(cfg, unet_steps=unet_steps)
    dev = resolve_device(device)
    torch.manual_seed(0)
    parts = build_components(cfg.model)
    vae, unet, enc, tok = (parts[k].to(dev) if k != "tokenizer" else parts[k] for k in ("vae", "unet", "text_encoder", "tokenizer"))
    size = cfg.model.sample_size
    t0 = time.perf_counter()
    # the crop preset renders at the demo's size and cuts a window around each bird, as the training command does
    images, masks, _attrs = render_corpus(256, 0, cfg.render_size if cfg.crop_scale else size)
    if cfg.crop_scale:
        images, masks = crop_corpus(images, masks, size, cfg.crop_scale, np.random.default_rng(0))
    render_s = (time.perf_counter() - t0) / 256
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    vopt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)

    def vae_step():
        x = x_all[:cfg.vae_batch_size].to(dev)
        post = vae.encode(x).latent_dist
        loss = F.l1_loss(vae.decode(post.sample()).sample, x) + cfg.kl_weight * post.kl().mean()
        vopt.zero_grad(set_to_none=True)
        loss.backward()
        vopt.step()

    vae_s = _median_step(vae_step, steps)

    def encode_all():  # the frozen VAE over 64 images, twice (the posterior, and the object blanked)
        with torch.no_grad():
            for _ in range(2):
                vae.encode(x_all[:64].to(dev)).latent_dist.mode()

    encode_s = _median_step(encode_all, max(1, steps // 2)) / 64
    params = list(unet.parameters()) + list(enc.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr)
    ls = cfg.model.latent_size
    ids = tok(["a photo of a bird on water"] * cfg.batch_size, padding="max_length", max_length=tok.model_max_length,
              truncation=True, return_tensors="pt").input_ids.to(dev)
    g = torch.Generator().manual_seed(0)
    inp = torch.randn(cfg.batch_size, 2 * cfg.model.latent_channels + 1, ls, ls, generator=g).to(dev)
    t = torch.randint(0, 1000, (cfg.batch_size,), generator=g).to(dev)

    def unet_step():
        pred = unet(inp, t, encoder_hidden_states=enc(ids)[0]).sample
        loss = pred.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    unet_s = _median_step(unet_step, steps)
    n_images = cfg.corpus
    projected = (n_images * (render_s + encode_s) + cfg.vae_steps * vae_s + cfg.unet_steps * unet_s) / 60
    return {"preset": preset, "config": asdict(cfg), "device": str(dev), "timed_steps": steps,
            "seconds_per_vae_step": round(vae_s, 3), "seconds_per_unet_step": round(unet_s, 3),
            "seconds_per_corpus_image": round(render_s + encode_s, 5),
            "projected_minutes": round(projected, 1), "limit_minutes": LIMIT_MIN, "fits": projected <= LIMIT_MIN,
            "torch_threads": torch.get_num_threads(),
            "command": f"python -m ddb_core bench micro-cost --preset {preset}"
                       + (f" --unet-steps {unet_steps}" if unet_steps is not None else "")}


def micro_cost_markdown(res: dict) -> str:
    c = res["config"]
    return "\n".join([
        f"## What training the micro model costs ({res['preset']} preset)", "",
        f"Command: `{res['command']}` ({res['device']}, {res['torch_threads']} threads; medians of {res['timed_steps']} "
        "timed steps after a warm-up, with the training command's own code and sizes). A projection of "
        f"`train-micro-inpainter`'s wall time, not a run:", "",
        f"- VAE step (batch {c['vae_batch_size']}): {res['seconds_per_vae_step']} s × {c['vae_steps']} steps",
        f"- UNet + text-encoder step (batch {c['batch_size']}, latents {c['model']['sample_size'] // 2 ** (len(c['model']['vae_channels']) - 1)} px, "
        f"UNet blocks {c['model']['unet_channels']}): {res['seconds_per_unet_step']} s × {c['unet_steps']} steps",
        f"- rendering and encoding one corpus image: {res['seconds_per_corpus_image']} s × {c['corpus']}",
        f"- projected: **{res['projected_minutes']} min** (limit {res['limit_minutes']:.0f} min on this machine: "
        f"**{'fits' if res['fits'] else 'does not fit'}**)", ""])
