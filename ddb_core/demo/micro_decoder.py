"""The micro model's VAE decoder trained as latent diffusion trains its autoencoder's: an L1 reconstruction loss plus
a patch discriminator's hinge loss, weighted adaptively (Esser et al., 2021, "Taming transformers"; Rombach et al.,
2022, §3.1: the adversarial term "avoids blurriness introduced by relying solely on pixel-space losses"). The encoder
is frozen, so the latents, their scale and a UNet trained on them stay valid (docs/decisions/micro-decoder-gan.md).
No perceptual (LPIPS) term: it needs pretrained VGG weights.
"""

from __future__ import annotations

import numpy as np

from ..project.progress import check_cancel


def patch_discriminator(channels: int = 64, strided: int = 2):
    """Taming's ``NLayerDiscriminator`` with ``strided`` stride-2 layers (two for 32-px windows: 32 → 16 → 8, then two
    stride-1 layers: one logit per 6 x 6 patch), batch norm, LeakyReLU 0.2, weights drawn as theirs (N(0, 0.02))."""
    import torch.nn as nn

    layers = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, strided):
        prev, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(channels * prev, channels * mult, 4, 2, 1, bias=False), nn.BatchNorm2d(channels * mult),
                   nn.LeakyReLU(0.2, True)]
    prev, mult = mult, min(2 ** strided, 8)
    layers += [nn.Conv2d(channels * prev, channels * mult, 4, 1, 1, bias=False), nn.BatchNorm2d(channels * mult),
               nn.LeakyReLU(0.2, True), nn.Conv2d(channels * mult, 1, 4, 1, 1)]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return net


def hinge_d_loss(real_logits, fake_logits):
    """The discriminator's hinge loss: real images pushed above +1, decoded ones below -1."""
    import torch.nn.functional as F

    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def adaptive_weight(rec_loss, g_loss, last_layer, scale: float):
    """Taming's adaptive weight: the ratio of the reconstruction loss's gradient norm to the adversarial loss's at the
    decoder's last layer (clamped to [0, 1e4]), times ``scale``; so neither term swamps the other whatever their sizes."""
    import torch

    rg = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gg = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (torch.norm(rg) / (torch.norm(gg) + 1e-4)).clamp(0.0, 1e4).detach() * scale


def decoder_parameters(vae) -> list:
    """What the phase trains: the decoder and the convolution before it; the encoder (and its latents) stay."""
    return list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())


def decoder_gan_step(vae, disc, opt_g, opt_d, x, z, scale: float) -> dict:
    """One step on a batch of windows ``x`` (in [-1, 1]) and their posterior samples ``z`` (unscaled): the decoder on
    L1 + adaptive-weighted hinge generator loss, then the discriminator on real against decoded. Returns the losses."""
    import torch.nn.functional as F

    rec = vae.decode(z).sample
    rec_loss = F.l1_loss(rec, x)
    g_loss = -disc(rec).mean()
    w = adaptive_weight(rec_loss, g_loss, vae.decoder.conv_out.weight, scale)
    opt_g.zero_grad(set_to_none=True)
    (rec_loss + w * g_loss).backward()
    opt_g.step()
    d_loss = hinge_d_loss(disc(x), disc(rec.detach()))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return {"rec": rec_loss.item(), "g": g_loss.item(), "d": d_loss.item(), "w": float(w)}


def train_decoder_phase(cfg, vae, pixels, lat_mean, lat_std, device, step: int, unet_end: int, state,
                   log: list, tracker, save_state, cancel) -> int:
    """The third phase of ``micro_train.train_micro_inpainter`` (``cfg`` its ``MicroTrainConfig``, not imported here:
    that module imports this one). The VAE's decoder trained on L1 + a patch discriminator's loss (``micro_decoder``) from ``step`` to the run's
    last; resumes from the checkpoint's decoder, discriminator and both optimizers. Returns the step reached."""
    import torch

    from ..project.device import place

    total = unet_end + cfg.decoder_gan_steps
    torch.manual_seed(cfg.seed * 7919 + unet_end)  # the discriminator's first weights, the same on every resume
    disc = patch_discriminator()
    place(disc, device, what="micro model training (discriminator)")
    trained = decoder_parameters(vae)
    for p in trained:
        p.requires_grad_(True)
    opt_g = torch.optim.Adam(trained, lr=cfg.decoder_lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.decoder_lr, betas=(0.5, 0.9))
    if state is not None and int(state["step"]) > unet_end and state.get("disc") is not None:
        disc.load_state_dict(state["disc"])
        opt_g.load_state_dict(state["optimizer"]), opt_d.load_state_dict(state["disc_optimizer"])
    disc.train()
    while step < total:
        check_cancel(cancel, f"at decoder step {step - unet_end}")
        g = torch.Generator().manual_seed(cfg.seed * 7919 + step)
        idx = torch.randint(0, len(pixels), (cfg.vae_batch_size,), generator=g)
        z = (lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, generator=g)).to(device)
        losses = decoder_gan_step(vae, disc, opt_g, opt_d, pixels[idx].to(device), z, cfg.decoder_gan_weight)
        step += 1
        log.append({"step": step, "phase": "decoder", "loss": round(losses["rec"], 5),
                    **{k: round(v, 5) for k, v in losses.items() if k != "rec"}})
        tracker.update(step, f"decoder L1 {np.mean([e['loss'] for e in log[-50:]]):.4f}")
        if step % cfg.checkpoint_every == 0 or step == total:
            save_state(opt_g, {"disc": disc.state_dict(), "disc_optimizer": opt_d.state_dict()}, at=step)
    vae.requires_grad_(False)
    return step
