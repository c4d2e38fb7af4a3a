"""The micro model's weight average (``ema_decay``, preset ``crop-unit-ema``): its arithmetic, and a training run that
saves the average, keeps it across a stop, and trains exactly as a run without it."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from ddb_core.demo.micro_train import PRESETS, MicroTrainConfig, export_checkpoint, train_micro_inpainter
from ddb_core.demo.micro_weights import WeightAverage, weights_diff
from ddb_core.project.errors import Cancelled, ConfigError
from ddb_core.project.progress import CancelToken


def test_the_average_follows_the_warm_up_decay_and_gives_the_weights_back():
    lin = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    avg = WeightAverage({"lin": lin}, decay=0.9)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            lin.weight.fill_(value)
        d = avg.update()
        assert d == pytest.approx(min(0.9, (1 + n) / (10 + n)))
        expected = d * expected + (1 - d) * value
    assert avg.shadow["lin"]["weight"] == pytest.approx(torch.full((1, 2), expected))
    with avg.applied():
        assert lin.weight.detach() == pytest.approx(torch.full((1, 2), expected))
    assert torch.equal(lin.weight.detach(), torch.full((1, 2), 4.0))  # its own weights again after the block
    again = WeightAverage({"lin": lin}, 0.9, avg.state_dict())  # a checkpoint's average resumes exactly
    assert again.updates == 4 and torch.equal(again.shadow["lin"]["weight"], avg.shadow["lin"]["weight"])
    with pytest.raises(ConfigError, match="ema_decay"):
        WeightAverage({"lin": lin}, 1.0)
    with pytest.raises(ConfigError, match="ema_decay"):
        MicroTrainConfig(ema_decay=0.0)


def _unet(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


def test_a_run_with_the_average_saves_it_resumes_it_and_trains_like_a_run_without(tmp_path):
    assert PRESETS["crop-unit-ema"]() == replace(PRESETS["crop-unit"](), ema_decay=0.999)
    cfg = replace(MicroTrainConfig.smoke(), ema_decay=0.5, unet_steps=6, checkpoint_every=1)
    token = CancelToken()

    def stop(p):
        if p.done == cfg.vae_steps + 3:
            token.cancel()

    with pytest.raises(Cancelled):  # stopped inside the UNet phase, with an average of three updates
        train_micro_inpainter(None, tmp_path / "ema", cfg, on_progress=stop, cancel=token)
    out = train_micro_inpainter(None, tmp_path / "ema", cfg)
    whole = train_micro_inpainter(None, tmp_path / "whole", cfg)  # the same run, never stopped
    plain = train_micro_inpainter(None, tmp_path / "plain", replace(cfg, ema_decay=None))
    state = torch.load(out / "checkpoints" / "state.pt", weights_only=True)
    saved, whole_saved, plain_saved = _unet(out), _unet(whole), _unet(plain)
    assert int(state["ema"]["updates"]) == cfg.unet_steps
    for k, t in saved.items():
        # the folder holds the average (float16 on disk), not the last weights
        assert torch.allclose(t.float(), state["ema"]["unet"][k].half().float())
        assert torch.equal(t, whole_saved[k])  # a stop and resume changes nothing
        # the last weights are those of the same run without the average: the average does not change training
        assert torch.equal(state["unet"][k].half(), plain_saved[k])
    assert any(not torch.equal(saved[k], plain_saved[k]) for k in saved)
    info = json.loads((out / "training.json").read_text())
    assert info["weights"] == f"exponential moving average, decay 0.5, {cfg.unet_steps} updates"
    assert json.loads((plain / "training.json").read_text())["weights"] == "last"
    assert torch.load(plain / "checkpoints" / "state.pt", weights_only=True)["ema"] is None
    exported, steps = export_checkpoint(out, tmp_path / "exported")  # a checkpoint exports the average too
    assert steps == cfg.unet_steps
    assert all(np.array_equal(v.numpy(), saved[k].numpy()) for k, v in _unet(exported).items())
    # what `ddb bench weights-diff` reports of them: the run's last weights are the plain run's, its folder the average
    diff = weights_diff(out, plain)["parts"]
    assert set(diff) == {"unet", "text_encoder"}
    assert diff["unet"]["last_equals_reference"] and diff["unet"]["last_vs_reference"] == 0
    assert diff["unet"]["saved_vs_last"] > 0 and diff["unet"]["saved_vs_reference"] == diff["unet"]["saved_vs_last"]
    same = weights_diff(plain, plain)["parts"]["unet"]
    assert same["last_equals_reference"] and same["saved_vs_last"] == 0
    other = weights_diff(out, whole)["parts"]["unet"]  # a folder whose saved weights are the average, not the last
    assert not other["last_equals_reference"] and other["last_vs_reference"] > 0
    with pytest.raises(ConfigError, match="no checkpoint"):
        weights_diff(tmp_path / "exported", plain)
