"""Every model goes to the device the user chose.

CI has no GPU, so the test makes ``auto`` mean CUDA (``device.cuda_available`` answers True) and
stores ``cpu`` as the project's device: a stage that ignored the setting would resolve ``auto`` to
CUDA and fail when it moves its model there (this torch has no CUDA), and ``device.watch_placements``
lists every model each stage moved, and where.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ddb_core import api
from ddb_core.device import watch_placements
from ddb_core.method.baselines import JTTConfig
from ddb_core.method.masking import LangSAMMasker
from ddb_core.method.retraining import RetrainConfig
from ddb_core.method.scgs import SCGSConfig, scgs_masker
from ddb_core.training import TrainConfig

from tiny_langsam import build_tiny_dino, build_tiny_sam_predictor

SMALL = TrainConfig(image_size=32, epochs=1, batch_size=16, seed=0)


@pytest.fixture
def cuda_looks_available(monkeypatch):
    import ddb_core.device

    monkeypatch.setattr(ddb_core.device, "cuda_available", lambda: True)


def test_every_stage_moves_its_models_to_the_projects_device(candidates_project, tiny_pipe_factory, tmp_path,
                                                              cuda_looks_available):
    p = candidates_project
    api.set_pipeline_settings(p, device="cpu", dtype="float32")
    model_dir = tmp_path / "sd"
    tiny_pipe_factory().save_pretrained(model_dir)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((40, 56), (52, 36))]  # not square, two sizes
    with watch_placements() as seen:
        erm_ckpt = p.project_path(p.active_erm()["path"])
        api.train_erm(p, SMALL)
        api.train_erm(p, SMALL, oracle=True)
        api.load_erm(p, str(erm_ckpt), image_size=32)
        api.select(p)
        api.evaluate(p, recompute=True)
        api.compute_masks(p, masker=api.load_masker(p, "gradcam"))
        langsam = api.load_masker(p, "langsam", {"dino": str(build_tiny_dino(tmp_path / "dino")),
                                                 "sam": build_tiny_sam_predictor(), "box_threshold": 0.0})
        assert len(langsam.mask(images, "bird")) == 2
        inpainter = api.load_inpainter(p, str(model_dir))
        api.invert(p, [0], replace_steps(), inpainter=inpainter)
        api.score(p, n_steps=4, rescore=True)
        api.compute_map(p)
        api.scgs_select(p, SCGSConfig(clusters=2))
        scgs_masker(p).mask(images, "bird")
        api.baseline(p, "jtt", jtt=JTTConfig(train=SMALL), report=False)
        api.baseline(p, "dfr", dfr_fits=2, report=False)
        api.retrain(p, RetrainConfig(train=replace(SMALL, evals_per_epoch=1)), report=False)
    stages = {what for what, _dev in seen}
    assert {"training (erm)", "training (oracle)", "erm load", "evaluation", "gradcam masker", "langsam detector",
            "langsam sam", "inpainting", "scoring", "candidate map", "scgs features", "training (jtt-id)",
            "jtt identification", "training (jtt)", "dfr features", "dfr evaluation"} <= stages, stages
    assert any(w.startswith("training (ddb") or w == "training (retrain)" for w in stages), stages
    assert {dev for _what, dev in seen} == {"cpu"}, [s for s in seen if s[1] != "cpu"]
    # the models really are there (inversion and generation run on the inpainter's own device)
    assert inpainter.pipe.unet.device.type == "cpu" and langsam.detector.device.type == "cpu"


def replace_steps():
    from ddb_core.method.inversion import InversionConfig

    return InversionConfig(steps=1, batch_size=1)


def test_auto_means_cuda_when_present(candidates_project, cuda_looks_available):
    """The default setting (auto) sends the scoring model to CUDA when CUDA is there: here, where it only
    looks available, the move is attempted and fails, after the placement named CUDA."""
    assert api.pipeline_settings(candidates_project)["device"] == "auto"
    candidates_project.db.execute("update candidates set psi = null")
    candidates_project.db.conn.commit()
    with watch_placements() as seen, pytest.raises((AssertionError, RuntimeError)):
        api.score(candidates_project, n_steps=2, device=None)
    assert seen == [("scoring", "cuda")]


def test_device_setting_is_validated_and_kept(candidates_project):
    from ddb_core.errors import ConfigError

    with pytest.raises(ConfigError, match="device must be"):
        api.set_pipeline_settings(candidates_project, device="gpu0")
    with pytest.raises(ConfigError, match="dtype must be"):
        api.set_pipeline_settings(candidates_project, dtype="half-ish")
    s = api.set_pipeline_settings(candidates_project, device="cuda:1")
    assert s["device"] == "cuda:1" and api.compute_device(candidates_project) == "cuda:1"
    assert api.compute_device(candidates_project, "cpu") == "cpu"  # a command's --device wins
    assert api.compute_device(candidates_project, "auto") == "cuda:1"  # auto defers to the project


def test_ray_workers_use_the_gpus_they_reserve():
    from ddb_core.engines import EngineConfig, worker_device

    from ddb_core.errors import ConfigError

    gpu, none = EngineConfig(kind="ray", gpus_per_worker=1), EngineConfig(kind="ray")
    # a worker sees only its reserved GPU, as cuda:0: every CUDA name is that one
    assert [worker_device(gpu, d) for d in ("auto", "cuda", "cuda:0", "cuda:1", "cpu")] == ["cuda"] * 4 + ["cpu"]
    assert worker_device(none, "auto") == "cpu" and worker_device(none, "cpu") == "cpu"  # reserved none: never takes one
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match="needs --gpus-per-worker above 0"):
            worker_device(none, name)
    with pytest.raises(ConfigError, match="choose auto, cpu or cuda"):
        worker_device(gpu, "tpu")


def test_integrated_gradients_is_float32_unless_float16_is_asked_for_on_cuda(candidates_project, monkeypatch):
    """Scoring never runs the classifier under float16 autocast by default, on any device (the project's dtype is
    the inpainting model's); ``--ig-dtype float16`` is refused without CUDA, with a message naming the option."""
    import ddb_core.generation as generation
    from ddb_core.errors import ConfigError
    from ddb_core.generation import ig_half

    assert ig_half("float32", "cuda") is False and ig_half("float32", "cpu") is False
    with pytest.raises(ConfigError, match="--ig-dtype float16 needs a CUDA device"):
        ig_half("float16", "cpu")
    with pytest.raises(ConfigError, match="choose one of float32, float16"):
        ig_half("half", "cpu")
    halves = []
    real = generation.score_batch
    monkeypatch.setattr(generation, "score_batch", lambda *a: halves.append(a[-1]) or real(*a))
    api.set_pipeline_settings(candidates_project, dtype="float16")  # the inpainting model's precision, not scoring's
    candidates_project.db.execute("update candidates set psi = null")
    candidates_project.db.conn.commit()
    assert api.score(candidates_project, n_steps=2) > 0
    assert halves and not any(halves)
    with pytest.raises(ConfigError, match="--ig-dtype float16 needs a CUDA device"):
        api.score(candidates_project, n_steps=2, rescore=True, ig_dtype="float16")
