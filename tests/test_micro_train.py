"""The micro inpainting model's training script, in its smoke configuration."""

import json

import numpy as np
import pytest

from ddb_core.demo_data import DemoDataConfig, generate_demo_dataset
from ddb_core.errors import Cancelled, DatasetError
from ddb_core.inpainting import InpaintConfig, Inpainter
from ddb_core.micro_train import MicroTrainConfig, train_micro_inpainter
from ddb_core.progress import CancelToken


def test_smoke_training_saves_a_loadable_pipeline_and_resumes(tmp_path):
    data = tmp_path / "data"
    generate_demo_dataset(data, DemoDataConfig(image_size=32, n_train=16, n_val=4, n_test=4, workers=1))
    cfg = MicroTrainConfig.smoke()
    token = CancelToken()

    def stop(p):
        if p.done == 4:
            token.cancel()

    with pytest.raises(Cancelled):
        train_micro_inpainter(data, tmp_path / "model", cfg, on_progress=stop, cancel=token)
    assert (tmp_path / "model" / "checkpoints" / "state.pt").exists()
    out = train_micro_inpainter(data, tmp_path / "model", cfg)  # resumes from step 4
    info = json.loads((out / "training.json").read_text())
    assert info["steps"] == cfg.vae_steps + cfg.unet_steps and info["train_images"] == 16
    inp = Inpainter.load(str(out), device="cpu")  # the same loader as SD2-inpainting
    img = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    res = inp.inpaint([img], [mask], ["a photo of a bird on water"], [0], InpaintConfig(steps=2))[0]
    assert res.shape == (32, 32, 3) and np.array_equal(res[mask == 0], img[mask == 0])


def test_training_needs_the_demo_layout(tmp_path):
    with pytest.raises(DatasetError, match="metadata.csv not found"):
        train_micro_inpainter(tmp_path, tmp_path / "model", MicroTrainConfig.smoke())
