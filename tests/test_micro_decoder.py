"""The micro model's decoder phase (``decoder_gan_steps``, preset ``crop-unit-gan``) and ``unet_from``: the phase
trains the decoder alone (the encoder, its latents, the UNet and the text encoder stay), resumes exactly after a stop,
and a run can take another folder's UNet instead of training one."""

import json
from dataclasses import replace

import pytest
import torch

from ddb_core.demo.micro_decoder import adaptive_weight, hinge_d_loss, patch_discriminator
from ddb_core.demo.micro_train import PRESETS, MicroTrainConfig, train_micro_inpainter
from ddb_core.project.errors import Cancelled, ConfigError
from ddb_core.project.progress import CancelToken


def _weights(folder, part):
    from safetensors.torch import load_file

    name = "model.safetensors" if part == "text_encoder" else "diffusion_pytorch_model.safetensors"
    return load_file(str(folder / part / name))


def test_the_discriminator_and_its_losses():
    disc = patch_discriminator()
    assert disc(torch.zeros(2, 3, 32, 40)).shape == (2, 1, 6, 8)  # one logit per patch, any window shape
    assert hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0  # both beyond their margins
    assert hinge_d_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(1.0)
    # the adaptive weight: the ratio of the two losses' gradient norms at the layer, times the scale
    w = torch.ones(3, requires_grad=True)
    assert adaptive_weight((2 * w).sum(), (4 * w).sum(), w, 0.5).item() == pytest.approx(0.25, rel=1e-3)
    with pytest.raises(ConfigError, match="decoder_gan"):
        MicroTrainConfig(decoder_gan_steps=-1)
    assert PRESETS["crop-unit-gan"]() == replace(PRESETS["crop-unit"](), decoder_gan_steps=3000)


def test_the_decoder_phase_trains_the_decoder_alone_and_resumes_exactly(tmp_path):
    base = replace(MicroTrainConfig.smoke(), checkpoint_every=1)
    cfg = replace(base, decoder_gan_steps=4)
    token = CancelToken()
    stop_at = cfg.vae_steps + cfg.unet_steps + 2

    def stop(p):
        if p.done == stop_at:
            token.cancel()

    with pytest.raises(Cancelled):  # stopped inside the decoder phase
        train_micro_inpainter(None, tmp_path / "gan", cfg, on_progress=stop, cancel=token)
    assert int(torch.load(tmp_path / "gan" / "checkpoints" / "state.pt", weights_only=True)["step"]) == stop_at
    out = train_micro_inpainter(None, tmp_path / "gan", cfg)
    whole = train_micro_inpainter(None, tmp_path / "whole", cfg)  # the same run, never stopped
    plain = train_micro_inpainter(None, tmp_path / "plain", base)  # no decoder phase
    vae, whole_vae, plain_vae = (_weights(f, "vae") for f in (out, whole, plain))
    for k, t in vae.items():
        assert torch.equal(t, whole_vae[k]), k  # a stop and resume changes nothing
        if k.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(t, plain_vae[k]), k  # the encoder and its latents stay
    assert any(not torch.equal(vae[k], plain_vae[k]) for k in vae if k.startswith("decoder."))
    assert any(not torch.equal(vae[k], plain_vae[k]) for k in vae if k.startswith("post_quant_conv."))
    for part in ("unet", "text_encoder"):  # the UNet phase is the plain run's
        mine, theirs = _weights(out, part), _weights(plain, part)
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), part
    info = json.loads((out / "training.json").read_text())
    assert info["steps"] == cfg.vae_steps + cfg.unet_steps + 4
    assert [e["phase"] for e in info["final_losses"]][-4:] == ["decoder"] * 4
    assert all({"g", "d", "w"} <= set(e) for e in info["final_losses"][-4:])


def test_a_run_takes_another_folders_unet_and_trains_only_its_decoder(tmp_path):
    base = MicroTrainConfig.smoke()
    first = train_micro_inpainter(None, tmp_path / "first", base)
    cfg = replace(base, vae_from=str(first), unet_from=str(first), decoder_gan_steps=2)
    out = train_micro_inpainter(None, tmp_path / "second", cfg)
    for part in ("unet", "text_encoder"):
        mine, theirs = _weights(out, part), _weights(first, part)
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), part
    vae, first_vae = _weights(out, "vae"), _weights(first, "vae")
    assert all(torch.equal(vae[k], first_vae[k]) for k in vae if k.startswith("encoder."))
    assert any(not torch.equal(vae[k], first_vae[k]) for k in vae if k.startswith("decoder."))
    info = json.loads((out / "training.json").read_text())
    assert info["unet_from"]["folder"] == str(first) and len(info["unet_from"]["weights_sha256"]) == 64
    assert info["latent_scale"] == json.loads((first / "vae" / "config.json").read_text())["scaling_factor"]
    assert [e["phase"] for e in info["final_losses"]] == ["decoder", "decoder"]  # no UNet step was taken
    with pytest.raises(ConfigError, match="unet_from needs vae_from"):
        replace(base, unet_from=str(first))
    other = replace(base, model=replace(base.model, unet_channels=(16, 32)), vae_from=str(first),
                    unet_from=str(first))
    with pytest.raises(ConfigError, match="--unet-from .*other sizes"):
        train_micro_inpainter(None, tmp_path / "third", other)
    assert not (tmp_path / "third" / "unet").exists()
