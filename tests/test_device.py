"""Every model goes to the device the user chose.

CI has no GPU. The test stores ``cuda:1`` as the project's device and stands a CPU device with an index of its own
in for each GPU (``device.cuda_available`` answers True; ``device.cuda_device`` maps ``cuda:1`` to ``cpu:1`` and
any other CUDA name — ``auto``'s ``cuda`` among them — to ``cpu:9``). Models and tensors really go there, and
PyTorch runs them on the CPU; ``device.watch_placements`` lists every model each stage placed and on which device.
A stage that placed its model on the project's device shows ``cpu:1``; one that resolved ``auto`` or its own
default shows ``cpu:9`` or ``cpu``; one that never placed its model is missing from the list. The project's device
is never the CPU the models are built on, so "not moved" cannot pass for "moved".
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ddb_core import api
from ddb_core.project.device import watch_placements
from ddb_core.method.baselines import JTTConfig
from ddb_core.method.masking import LangSAMMasker
from ddb_core.method.retraining import RetrainConfig
from ddb_core.method.scgs import SCGSConfig, scgs_masker
from ddb_core.classifiers.training import TrainConfig

from tiny_langsam import build_tiny_dino, build_tiny_sam_predictor

SMALL = TrainConfig(image_size=32, epochs=1, batch_size=16, seed=0)


@pytest.fixture
def cuda_looks_available(monkeypatch):
    import ddb_core.project.device

    monkeypatch.setattr(ddb_core.project.device, "cuda_available", lambda: True)


@pytest.fixture
def stand_in_gpus(monkeypatch, cuda_looks_available):
    """``cuda:1`` is the CPU as ``cpu:1``; every other CUDA name ``cpu:9``."""
    import ddb_core.project.device

    monkeypatch.setattr(ddb_core.project.device, "cuda_device", lambda name: torch.device("cpu", 1 if name == "cuda:1" else 9))


# every stage that runs a model, by the name it gives its placement
STAGES = {"training (erm)", "training (oracle)", "erm load", "evaluation", "gradcam masker", "langsam detector",
          "langsam sam", "inpainting", "scoring", "candidate map", "scgs features", "training (jtt-id)",
          "jtt identification", "training (jtt)", "dfr features", "dfr evaluation", "report predictions"}


def misplaced(seen: list, expected: str = "cpu:1", stages=STAGES) -> list[str]:
    """What is wrong with the placements ``seen``: stages that never placed a model, and placements elsewhere than
    ``expected``."""
    names = {what for what, _dev in seen}
    wrong = [f"{what} on {dev}" for what, dev in seen if dev != expected]
    missing = [f"{what}: never placed" for what in sorted(stages - names)]
    if not any(w.startswith("training (ddb") or w == "training (retrain)" for w in names):
        missing.append("retraining: never placed")
    return missing + wrong


def run_every_stage(p, model_dir, tmp_path) -> tuple:
    from ddb_core.pipeline.generation import GenerationConfig
    from ddb_core.method.inpainting import InpaintConfig

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((40, 56), (52, 36))]  # not square, two sizes
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
    # generation loads its own inpainter, on the project's device
    api.generate(p, cfg=GenerationConfig(use_tokens=False, seed=5),
                 inpaint=InpaintConfig(model=str(model_dir), steps=1, batch_size=2, device="cuda:1", dtype="float32"),
                 masker=api.load_masker(p, "gradcam"))
    api.score(p, n_steps=4, rescore=True)
    api.compute_map(p)
    api.scgs_select(p, SCGSConfig(clusters=2))
    scgs_masker(p).mask(images, "bird")
    api.baseline(p, "jtt", jtt=JTTConfig(train=SMALL))  # with their reports: the report's predictions too
    api.baseline(p, "dfr", dfr_fits=2)
    api.retrain(p, RetrainConfig(train=replace(SMALL, evals_per_epoch=1)))
    return inpainter, langsam


def test_every_stage_moves_its_models_to_the_projects_device(candidates_project, tiny_pipe_factory, tmp_path,
                                                              stand_in_gpus):
    """How this test was checked to fail: with ``reporting.test_predictions`` loading the classifier with no device
    (as it did), it failed with "report predictions: never placed"; with ``test_predictions`` given ``device="auto"``,
    with "report predictions on cpu:9" (see ``test_a_stage_that_skips_the_placement_fails_the_check``)."""
    p = candidates_project
    api.set_pipeline_settings(p, device="cuda:1", dtype="float32")
    model_dir = tmp_path / "sd"
    tiny_pipe_factory().save_pretrained(model_dir)
    with watch_placements() as seen:
        inpainter, langsam = run_every_stage(p, model_dir, tmp_path)
    assert misplaced(seen) == []
    # the models really are there (inversion and generation run on the inpainter's own device)
    assert inpainter.pipe.unet.device == torch.device("cpu", 1) or inpainter.pipe.device.type == "cpu"
    assert p.db.execute("select count(*) from candidates where psi is not null").fetchone()[0] > 0


def test_a_stage_that_skips_the_placement_fails_the_check(candidates_project, stand_in_gpus, monkeypatch):
    """The check above fails when one stage leaves its model where it was built, or resolves ``auto`` itself."""
    import ddb_core.classifiers.models
    import ddb_core.curation.reporting as reporting

    p = candidates_project
    api.set_pipeline_settings(p, device="cuda:1")
    real = ddb_core.classifiers.models.load_classifier
    with watch_placements() as seen:
        monkeypatch.setattr(ddb_core.classifiers.models, "load_classifier", lambda path, arch, n, **kw: real(path, arch, n))
        reporting.test_predictions(p, p.active_erm_id)
    assert "report predictions: never placed" in misplaced(seen, stages={"report predictions"})
    with watch_placements() as seen:
        monkeypatch.setattr(ddb_core.classifiers.models, "load_classifier",
                            lambda path, arch, n, **kw: real(path, arch, n, device="auto", what=kw["what"]))
        reporting.test_predictions(p, p.active_erm_id)
    assert misplaced(seen, stages={"report predictions"})[-1] == "report predictions on cpu:9"


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
    from ddb_core.project.errors import ConfigError

    with pytest.raises(ConfigError, match="device must be"):
        api.set_pipeline_settings(candidates_project, device="gpu0")
    with pytest.raises(ConfigError, match="dtype must be"):
        api.set_pipeline_settings(candidates_project, dtype="half-ish")
    s = api.set_pipeline_settings(candidates_project, device="cuda:1")
    assert s["device"] == "cuda:1" and api.compute_device(candidates_project) == "cuda:1"
    assert api.compute_device(candidates_project, "cpu") == "cpu"  # a command's --device wins
    assert api.compute_device(candidates_project, "auto") == "cuda:1"  # auto defers to the project


def test_ray_workers_use_the_gpus_they_reserve():
    from ddb_core.pipeline.engines import EngineConfig, worker_device

    from ddb_core.project.errors import ConfigError

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
    import ddb_core.pipeline.generation as generation
    from ddb_core.project.errors import ConfigError
    from ddb_core.project.device import ig_half

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


def test_the_judges_and_the_micro_models_training_go_through_the_same_placement(tmp_path, stand_in_gpus):
    """The benchmark's judges (trained and loaded) and the micro model's training place their models on the device
    asked for, through ``device.place``, as every stage of the product does."""
    from dataclasses import replace as dc_replace

    from ddb_core.bench.judges import JudgeTrainConfig, load_judges, train_judges
    from ddb_core.demo.micro_train import MicroTrainConfig, train_micro_inpainter

    with watch_placements() as seen:
        train_judges(JudgeTrainConfig(n_train=32, n_check=16, epochs=1, batch_size=16), tmp_path / "judges", device="cuda:1")
        judges = load_judges(tmp_path / "judges", device="cuda:1")
        p, w = judges.probabilities(np.zeros((3, 32, 32, 3), np.uint8))
        assert p.shape == (3,) and w.shape == (3, 2)
        train_micro_inpainter(None, tmp_path / "model", dc_replace(MicroTrainConfig.smoke(), device="cuda:1"))
    stages = {"judge training (present)", "judge training (which)", "judge (present)", "judge (which)",
              "micro model training (vae)", "micro model training (unet)", "micro model training (text encoder)"}
    assert {what for what, _dev in seen} == stages and {dev for _what, dev in seen} == {"cpu:1"}, seen


def test_the_ig_precision_benchmark_compares_float16_autocast_with_float32(candidates_project):
    """``ddb bench ig-precision`` scores the same candidates in both precisions and reports what moved."""
    from ddb_core.bench.ig_precision import bench_ig_precision, ig_precision_markdown

    res = bench_ig_precision(str(candidates_project.root), limit=3, n_steps=4, device="cpu", doc=None, json_path=None)
    assert res["candidates"] == 3 and 0 <= res["rho_relative_change"]["median"] <= res["rho_relative_change"]["max"]
    assert res["rho_relative_change"]["max"] > 0  # float16 rounding moves ρ a little
    assert 0 <= res["decision_flips"] <= 3 and "relative change of ρ" in ig_precision_markdown(res)
