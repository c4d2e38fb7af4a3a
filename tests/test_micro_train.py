"""The micro inpainting model's training script, in its smoke configuration."""

import json

import numpy as np
import pytest

from ddb_core.demo.data import DemoDataConfig, generate_demo_dataset
from ddb_core.project.errors import Cancelled, ConfigError, DatasetError
from ddb_core.method.inpainting import InpaintConfig, Inpainter
from dataclasses import replace

from ddb_core.demo.micro_sd import MicroSDConfig
from ddb_core.demo.micro_train import MicroTrainConfig, train_micro_inpainter
from ddb_core.project.progress import CancelToken


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
    # The same run continues with more UNet steps; any other change is refused.
    from dataclasses import replace

    from ddb_core.project.errors import ConfigError

    longer = train_micro_inpainter(data, tmp_path / "model", replace(cfg, unet_steps=cfg.unet_steps + 2))
    info2 = json.loads((longer / "training.json").read_text())
    assert info2["steps"] == info["steps"] + 2 and info2["extended_from_unet_steps"] == cfg.unet_steps
    # run again with only the checkpoint interval changed: nothing is extended, and the record of the extension stays
    again = train_micro_inpainter(data, tmp_path / "model", replace(cfg, unet_steps=cfg.unet_steps + 2, checkpoint_every=5))
    info3 = json.loads((again / "training.json").read_text())
    assert info3["steps"] == info2["steps"] and info3["extended_from_unet_steps"] == cfg.unet_steps
    with pytest.raises(ConfigError, match="only --unet-steps may grow"):
        train_micro_inpainter(data, tmp_path / "model", replace(cfg, vae_steps=cfg.vae_steps + 1, unet_steps=cfg.unet_steps + 2))
    inp = Inpainter.load(str(out), device="cpu")  # the same loader as SD2-inpainting
    img = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    res = inp.inpaint([img], [mask], ["a photo of a bird on water"], [0], InpaintConfig(steps=2))[0]
    assert res.shape == (32, 32, 3) and np.array_equal(res[mask == 0], img[mask == 0])


def test_training_needs_the_demo_layout(tmp_path):
    with pytest.raises(DatasetError, match="metadata.csv not found"):
        train_micro_inpainter(tmp_path, tmp_path / "model", MicroTrainConfig.smoke())


def test_captions_never_name_the_class(tmp_path):
    from ddb_core.demo.corpus import CAPTIONS, SHAPE_WORDS, caption
    from ddb_core.demo.corpus import caption_attributes

    words = {w for c in CAPTIONS for w in c.replace("{", " ").replace("}", " ").split()}
    words |= {w for ws in SHAPE_WORDS.values() for phrase in ws for w in phrase.split()}
    assert not words & {"landbird", "waterbird", "colour"}
    rng = np.random.default_rng(0)
    said = [caption(rng, {"kind": 1, "place": "land", "side": "left"}) for _ in range(200)]
    with_shape = [c for c in said if any(p in c for p in SHAPE_WORDS[1])]
    assert 60 < len(with_shape) < 140 and not any(p in c for c in said for p in SHAPE_WORDS[0] if p != "small round")
    # a benchmark's train split has no kind: its captions never describe the bird's shape
    assert not any(p in caption(rng, {"place": "water", "side": "right"}) for _ in range(50) for ws in SHAPE_WORDS.values() for p in ws)
    img = np.zeros((8, 8, 3), np.uint8)
    m = np.zeros((8, 8), np.uint8)
    m[2:4, 0:3] = 255
    assert caption_attributes(img, m)["side"] == "left"


def test_every_caption_word_is_one_token():
    from ddb_core.demo.corpus import CORPUS_WORDS
    from ddb_core.demo.micro_sd import BASE_WORDS, build_clip_tokenizer

    tok = build_clip_tokenizer(BASE_WORDS + CORPUS_WORDS)
    assert all(len(tok.tokenize(w)) == 1 for w in BASE_WORDS + CORPUS_WORDS), \
        [w for w in BASE_WORDS + CORPUS_WORDS if len(tok.tokenize(w)) > 1]
    assert tok.tokenize("zebra")  # any other word still tokenises


def test_the_corpus_is_balanced_and_never_a_benchmark(tmp_path):
    from ddb_core.demo.corpus import CORPUS_SEEDS_FROM, corpus_seed, render_corpus
    from ddb_core.demo.data import RESERVED_SEEDS_FROM, render_sample
    from ddb_core.bench.judges import JUDGE_SEEDS_FROM

    assert RESERVED_SEEDS_FROM <= corpus_seed(0) and corpus_seed(10_000) < JUDGE_SEEDS_FROM == CORPUS_SEEDS_FROM + 500_000
    images, masks, attrs = render_corpus(16, size=40, workers=1)
    assert images.shape == (16, 40, 40, 3) and masks.shape == (16, 40, 40)
    pairs = [(a["kind"], a["place"]) for a in attrs]
    assert len(set(pairs)) == 4 and all(pairs.count(p) == 4 for p in set(pairs))
    benchmark = render_sample(0, "train", 0, attrs[0]["kind"], 0, 40)[0]
    assert not np.array_equal(images[0], benchmark)


def test_smoke_training_on_the_corpus(tmp_path):
    out = train_micro_inpainter(None, tmp_path / "model", MicroTrainConfig.smoke())
    info = json.loads((out / "training.json").read_text())
    assert info["dataset"] is None and info["corpus"]["images"] == MicroTrainConfig.smoke().corpus
    assert info["train_images"] == MicroTrainConfig.smoke().corpus


def test_the_denoising_loss_weights():
    import torch

    from ddb_core.demo.micro_train import denoising_loss

    g = torch.Generator().manual_seed(0)
    pred, noise = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    mask = torch.zeros(3, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    a = torch.tensor([0.9, 0.5, 0.01])
    assert torch.allclose(denoising_loss(pred, noise, mask, a), torch.nn.functional.mse_loss(pred, noise))
    outside_only = pred.clone()
    outside_only[:, :, 0] += 5  # row 0 lies outside the mask
    assert torch.allclose(denoising_loss(outside_only, noise, mask, a, outside_weight=0.0),
                          denoising_loss(pred, noise, mask, a, outside_weight=0.0))
    # min-SNR: a timestep with SNR above γ weighs γ / SNR, one below weighs 1
    per = ((pred - noise) ** 2).mean((1, 2, 3))
    snr = a / (1 - a)
    expect = (per * snr.clamp(max=5.0) / snr).mean()
    assert torch.allclose(denoising_loss(pred, noise, mask, a, snr_gamma=5.0), expect)
    # bird_share: half of each image's loss on the cells under the bird, half on the rest, whatever their numbers
    bird = torch.zeros(3, 1, 8, 8)
    bird[:, :, 3:5, 3:6] = 1  # 6 cells of 64
    bird[2] = 0  # an image without a bird keeps the plain mean
    se = ((pred - noise) ** 2).mean(1, keepdim=True)
    on, off = (se * bird).sum((1, 2, 3)) / 6, (se * (1 - bird)).sum((1, 2, 3)) / 58
    expect = torch.stack([0.5 * on[0] + 0.5 * off[0], 0.5 * on[1] + 0.5 * off[1], se[2].mean()]).mean()
    assert torch.allclose(denoising_loss(pred, noise, mask, a, lat_object=bird, bird_share=0.5), expect)
    # from a perfect prediction, an error of 1 in one bird cell costs 0.5 / 6 of its image, in one ground cell 0.5 / 58
    moved, ground = noise.clone(), noise.clone()
    moved[:, :, 3, 3] += 1.0
    ground[:, :, 0, 0] += 1.0
    assert torch.allclose(denoising_loss(moved, noise, mask, a, lat_object=bird, bird_share=0.5),
                          torch.tensor((0.5 / 6 + 0.5 / 6 + 1 / 64) / 3))
    assert torch.allclose(denoising_loss(ground, noise, mask, a, lat_object=bird, bird_share=0.5),
                          torch.tensor((0.5 / 58 + 0.5 / 58 + 1 / 64) / 3))
    with pytest.raises(ConfigError, match="bird_share"):
        MicroTrainConfig(bird_share=1.0)


def test_the_noise_schedule_is_sds_shifted_by_the_snr_factor_and_ends_in_pure_noise(tmp_path):
    import torch

    from ddb_core.demo.micro_sd import build_components

    sd = build_components(MicroSDConfig(sample_size=32))["scheduler"]
    assert sd.config.prediction_type == "epsilon" and sd.config.trained_betas is None  # the default is SD's own
    ac = sd.alphas_cumprod.double()
    shifted = build_components(MicroSDConfig(sample_size=32, snr_shift=16.0))["scheduler"].alphas_cumprod.double()
    assert torch.allclose((shifted / (1 - shifted)) / (ac / (1 - ac)), torch.full_like(ac, 16.0), rtol=1e-3)
    zero = build_components(MicroSDConfig(sample_size=32, snr_shift=16.0, zero_terminal_snr=True))["scheduler"]
    assert zero.config.prediction_type == "v_prediction" and zero.config.timestep_spacing == "trailing"
    assert float(zero.alphas_cumprod[-1]) < 1e-6 < float(shifted[-1])  # the last timestep is pure noise
    # min-SNR-γ in its v form gives the pure-noise timestep no weight instead of dividing by zero
    from ddb_core.demo.micro_train import denoising_loss

    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 4, 4, 4, generator=g)
    per = ((pred - target) ** 2).mean((1, 2, 3))
    loss = denoising_loss(pred, target, torch.ones(2, 1, 4, 4), torch.tensor([0.0, 0.5]), snr_gamma=5.0, v_prediction=True)
    assert torch.allclose(loss, (per[0] * 0 + per[1] * 1.0 / 2.0) / 2)
    # a model trained with it saves the schedule, and the pipeline that loads the folder repaints with it
    cfg = replace(MicroTrainConfig.smoke(), model=replace(MicroTrainConfig.smoke().model, snr_shift=16.0,
                                                          zero_terminal_snr=True))
    out = train_micro_inpainter(None, tmp_path / "m", cfg)
    saved = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert saved["prediction_type"] == "v_prediction" and saved["rescale_betas_zero_snr"] and len(saved["trained_betas"]) == 1000
    inp = Inpainter.load(str(out), device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    m = np.zeros((40, 56), np.uint8)
    m[10:30, 20:40] = 255
    res = inp.inpaint([img], [m], ["a photo of a bird"], [0], InpaintConfig(model=str(out), steps=2))
    assert res[0].shape == img.shape and np.array_equal(res[0][m == 0], img[m == 0])
    assert isinstance(inp.pipe.scheduler.config.trained_betas, list)
    with pytest.raises(ValueError, match="snr_shift"):
        build_components(MicroSDConfig(sample_size=32, snr_shift=0.0))


@pytest.fixture
def saved_tiny_model(tmp_path):
    from ddb_core.demo.micro_sd import MicroSDConfig, build_pipeline

    out = tmp_path / "tiny-model"
    build_pipeline(MicroSDConfig(sample_size=32)).save_pretrained(out)
    return out


def test_missing_or_corrupt_model_files_are_named(saved_tiny_model):
    from ddb_core.project.errors import ModelError

    weights = next((saved_tiny_model / "unet").glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ModelError, match=str(weights)):
        Inpainter.load(str(saved_tiny_model), device="cpu")
    weights.write_bytes(data)
    Inpainter.load(str(saved_tiny_model), device="cpu")  # intact again
    index = saved_tiny_model / "model_index.json"
    text = index.read_text()
    index.write_text(text[:20])
    with pytest.raises(ModelError, match="model_index.json"):
        Inpainter.load(str(saved_tiny_model), device="cpu")
    index.write_text(text)
    import shutil

    shutil.rmtree(saved_tiny_model / "vae")
    with pytest.raises(ModelError, match=r"vae.* is missing"):
        Inpainter.load(str(saved_tiny_model), device="cpu")
    with pytest.raises(ModelError, match="does not exist"):
        Inpainter.load(str(saved_tiny_model.parent / "no-such-model"), device="cpu")


def test_demo_projects_use_the_shipped_micro_model_by_path(tmp_path):
    from ddb_core.api import create_project, pipeline_settings
    from ddb_core.method.inpainting import MICRO_MODEL, REPO_ROOT, resolve_model_ref

    p, _ = create_project(tmp_path / "p", "demo", demo=DemoDataConfig(image_size=32, n_train=8, n_val=4, n_test=4, workers=1))
    assert pipeline_settings(p)["inpaint_model"] == MICRO_MODEL
    assert resolve_model_ref(MICRO_MODEL) in (MICRO_MODEL, str(REPO_ROOT / MICRO_MODEL))


def test_cli_smoke_training(tmp_path):
    from ddb_core.cli import main

    data = tmp_path / "data"
    generate_demo_dataset(data, DemoDataConfig(image_size=32, n_train=8, n_val=4, n_test=4, workers=1))
    assert main(["train-micro-inpainter", "--data", str(data), "--out", str(tmp_path / "m"), "--smoke"]) == 0
    assert (tmp_path / "m" / "model_index.json").is_file() and (tmp_path / "m" / "unet").is_dir()


def test_one_run_with_a_restart_has_the_schedule_of_a_run_continued_with_more_steps():
    from ddb_core.demo.micro_train import unet_lr_at

    first = MicroTrainConfig(unet_steps=3000, unet_restart_steps=None)
    continued = MicroTrainConfig(unet_steps=6500, unet_restart_steps=None)
    one_run = MicroTrainConfig(unet_steps=6500, unet_restart_steps=3000)
    expected = [unet_lr_at(first, k) for k in range(3000)] + [unet_lr_at(continued, k) for k in range(3000, 6500)]
    assert [unet_lr_at(one_run, k) for k in range(6500)] == expected
    assert unet_lr_at(one_run, 3000) > 10 * unet_lr_at(one_run, 2999)  # the warm restart
    plain = MicroTrainConfig(unet_steps=6500, unet_restart_steps=None)
    assert unet_lr_at(plain, 3000) < unet_lr_at(plain, 2999)  # one cosine: no jump
    # a restart at or past the end is ignored: one cosine over the phase
    assert [unet_lr_at(MicroTrainConfig(unet_steps=3000), k) for k in range(3000)] == expected[:3000]


def test_a_run_continues_only_under_its_own_recipe_with_more_unet_steps():
    from dataclasses import asdict, replace

    from ddb_core.demo.micro_train import continues

    def js(cfg):
        return json.loads(json.dumps(asdict(cfg), default=str))

    first = replace(MicroTrainConfig.crop(), unet_steps=6000, unet_restart_steps=None)
    old = js(first)
    old.pop("repaint_scale")  # a checkpoint written before the option existed
    # more steps, named as a stretch (None) or as a restart where the first run ended: the same schedule
    assert continues(old, js(replace(first, unet_steps=12000)))
    assert continues(old, js(replace(first, unet_steps=12000, unet_restart_steps=6000)))
    # what does not change a step's weights may differ: the repaint window, the checkpoint interval, the device
    assert continues(old, js(replace(first, unet_steps=12000, repaint_scale=1.25, checkpoint_every=100, device="cpu")))
    # a restart anywhere else, fewer steps, or another recipe: refused
    assert not continues(old, js(replace(first, unet_steps=12000, unet_restart_steps=3000)))
    assert not continues(old, js(replace(first, unet_steps=5000)))
    assert not continues(old, js(replace(first, unet_steps=12000, batch_size=16)))
    assert not continues(old, js(replace(first, unet_steps=12000, unet_lr=1e-4)))


def test_inpainter_gate_report_gives_the_target_bird_rate_per_source_background():
    from ddb_core.bench.inpainter import inpainter_markdown

    def cell(rate, land, water):
        return {"target_bird": rate, "bird": 1.0, "background_mae": 0.03, "mask_area": 0.2,
                "by_background": {"land": land, "water": water}}

    dirs = {"0->1": {f"{k}/{p}": cell(0.5, 0.9, 0.1) for k in ("object+8px", "box") for p in ("token", "plain")},
            "1->0": {f"{k}/{p}": cell(0.7, 0.95, 0.45) for k in ("object+8px", "box") for p in ("token", "plain")}}
    check = {"shapes": {"box": {"target_bird": {"0": 0.99, "1": 1.0}, "background_called_bird": 0.0}}, "gate_met": True}
    res = {"command": "python -m ddb_core bench inpainter --seeds 0", "model": "m", "model_sha256": "abc",
           "n_per_direction": 8, "ti_size": 3, "ti_steps": 2, "ti_source": "high_loss", "ti_region": "mask",
           "ti_shape": "object+8px", "shapes": ["object+8px", "box"], "inpaint": {"steps": 2, "guidance": 7.5},
           "seeds": [0], "judge_check": check, "median": dirs, "per_seed": [{"seed": 0, "directions": dirs}],
           "gates": {k: {"target_bird_ge_80": False, "gain_ge_20_points": False, "background_mae_le_004": True}
                     for k in ("object+8px", "box")}, "seconds": 60}
    text = inpainter_markdown(res)
    line = next(x for x in text.splitlines() if "by the source image's background" in x)
    assert "0->1 box: land 90.0, water 10.0" in line and "1->0 object+8px: land 95.0, water 45.0" in line
    assert "real birds are target birds of their own class 99.0%, 100.0%" in text and "**met**" in text
    assert "| 1->0 | box | 20.0 | 70.0 | 70.0 | +0.0 | 100.0 | 0.0300 |" in text
    assert "target bird ≥ 80% in both directions: **not met**" in text


def test_a_result_measured_elsewhere_writes_its_docs_section_with_the_stored_figures(tmp_path, monkeypatch):
    import json

    from PIL import Image

    from ddb_core.bench.inpainter import result_to_docs

    def cell(rate):
        return {"target_bird": rate, "bird": 1.0, "background_mae": 0.03, "mask_area": 0.2}

    dirs = {"0->1": {f"box/{p}": cell(0.875 if p == "token" else 0.25) for p in ("token", "plain")},
            "1->0": {f"box/{p}": cell(0.625 if p == "token" else 0.25) for p in ("token", "plain")}}
    check = {"shapes": {"box": {"target_bird": {"0": 0.99, "1": 1.0}, "background_called_bird": 0.0}}, "gate_met": True}
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    Image.new("RGB", (30, 20), "red").save(elsewhere / "micro-inpainter-grid-vm.png")
    res = {"command": "python -m ddb_core bench inpainter --ti-source val_minority --section inpainter-vm", "model": "m",
           "n_per_direction": 8, "ti_size": 30, "ti_steps": 400, "ti_source": "val_minority", "ti_region": "mask",
           "ti_shape": "object", "shapes": ["box"], "inpaint": {"steps": 25, "guidance": 7.5}, "seeds": [0],
           "judge_check": check, "median": dirs, "per_seed": [{"seed": 0, "directions": dirs}], "section": "inpainter-vm",
           "gates": {"box": {"target_bird_ge_80": False, "gain_ge_20_points": True, "background_mae_le_004": True}},
           "seconds": 60, "device": "cuda (a card)", "grid_shape": "box", "grid": "/elsewhere/out/micro-inpainter-grid-vm.png"}
    (elsewhere / "inpainter-vm.json").write_text(json.dumps(res))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmarks.md").write_text("# Benchmarks\n")
    result_to_docs(elsewhere / "inpainter-vm.json", tmp_path / "docs" / "benchmarks.md")
    text = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "<!-- inpainter-vm:start -->" in text and "| 1->0 | box | 20.0 | 62.5 | 25.0 | +37.5 |" in text
    assert "30 val images per class of its minority group" in text and "run on cuda (a card)" in text
    assert "(images/micro-inpainter-grid-vm.png)" in text
    assert Image.open(tmp_path / "docs/images/micro-inpainter-grid-vm.png").size == (30, 20)
    assert json.loads((tmp_path / "docs/bench/inpainter-vm.json").read_text())["median"] == dirs
    # written again from the docs' own JSON: its grid stays where it is, linked
    result_to_docs(tmp_path / "docs/bench/inpainter-vm.json", tmp_path / "docs" / "benchmarks.md")
    assert "(images/micro-inpainter-grid-vm.png)" in (tmp_path / "docs" / "benchmarks.md").read_text()


def test_micro_cost_projects_the_command_from_its_timed_steps():
    from ddb_core.bench.micro_cost import micro_cost, micro_cost_markdown

    res = micro_cost("v1", steps=1)
    c = res["config"]
    expect = (c["corpus"] * res["seconds_per_corpus_image"] + c["vae_steps"] * res["seconds_per_vae_step"]
              + c["unet_steps"] * res["seconds_per_unet_step"]) / 60
    assert res["seconds_per_unet_step"] > 0 and abs(res["projected_minutes"] - expect) < 0.2
    assert res["fits"] == (res["projected_minutes"] <= 150) and c["unet_steps"] == 6500
    assert "projected: **" in micro_cost_markdown(res)
    # the window preset, projected with another number of UNet steps
    crop = micro_cost("crop", steps=1, unet_steps=12000)
    assert crop["config"]["crop_scale"] == 2.0 and crop["config"]["unet_steps"] == 12000
    assert crop["command"].endswith("--preset crop --unet-steps 12000")
    with pytest.raises(ConfigError, match="--preset must be one of"):
        micro_cost("other", steps=1)


def test_a_window_model_trains_on_crops_around_the_bird_and_says_so(tmp_path):
    from dataclasses import replace

    import torch

    from ddb_core.demo.corpus import render_corpus
    from ddb_core.demo.micro_train import crop_corpus, export_checkpoint
    from ddb_core.project.errors import ConfigError
    from ddb_core.method.inpainting import crop_window

    images, masks, _ = render_corpus(6, 0, 64, workers=1)
    ci, cm = crop_corpus(images, masks, 32, 2.0, np.random.default_rng(0))
    assert ci.shape == (6, 32, 32, 3) and cm.shape == (6, 32, 32)
    for m, c in zip(masks, cm):
        t, l, h, w = crop_window(m, 2.0)
        share = (m >= 128).sum() / (h * w)  # the bird's share of a window without jitter
        assert 0.5 * share < (c >= 128).mean() < 2.0 * share  # the crop keeps the bird, at about that share
    cfg = replace(MicroTrainConfig.smoke(), crop_scale=2.0, render_size=48, corpus=12)
    with pytest.raises(ConfigError, match="no checkpoint"):
        export_checkpoint(tmp_path / "model", tmp_path / "early")
    out = train_micro_inpainter(None, tmp_path / "model", cfg)
    assert json.loads((out / "inpaint.json").read_text()) == {"crop_scale": 2.0}
    assert MicroTrainConfig.crop().repaint_scale == 1.5  # the shipped model's window, chosen on val (bench window)
    inp = Inpainter.load(str(out), device="cpu")
    assert inp.crop_scale == 2.0
    early, steps = export_checkpoint(tmp_path / "model", tmp_path / "early")
    assert steps == cfg.unet_steps and Inpainter.load(str(early), device="cpu").crop_scale == 2.0
    a = inp.pipe.unet.state_dict()
    b = Inpainter.load(str(early), device="cpu").pipe.unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the last checkpoint is the saved model
    img = np.random.default_rng(2).integers(0, 255, (48, 72, 3), dtype=np.uint8)
    mask = np.zeros((48, 72), np.uint8)
    mask[20:30, 40:52] = 255
    res = inp.inpaint([img], [mask], ["a photo of a bird"], [0], InpaintConfig(steps=2, paste_back=False))[0]
    t, l, h, w = crop_window(mask, 2.0)
    assert res.shape == img.shape and np.array_equal(res[:t], img[:t]) and not np.array_equal(res[mask == 255], img[mask == 255])


def _window_result(scale, rate0, rate1, plain0, plain1, mae=0.02):
    med = {"0->1": {"box/token": {"target_bird": rate0}, "box/plain": {"target_bird": plain0}},
           "1->0": {"box/token": {"target_bird": rate1}, "box/plain": {"target_bird": plain1}}}
    gain = {"0->1": rate0 - plain0, "1->0": rate1 - plain1}
    met = min(rate0, rate1) >= 0.8 and min(gain.values()) >= 0.2 and mae <= 0.04
    return {"model": "m", "seeds": [0, 1, 2], "crop_scale": scale, "median": med, "command": f"cmd {scale}", "seconds": 60.0,
            "gates": {"box": {"met": met, "target_bird": {"0->1": rate0, "1->0": rate1}, "gain": gain,
                              "background_mae": {"0->1": mae, "1->0": mae}}}}


def test_the_repaint_window_is_chosen_by_its_stated_rule_from_stored_results(tmp_path):
    """`bench window` reads each window's stored result (a run resumes without measuring again) and picks, among
    the windows that meet every gate, the highest lower target-bird rate; a window whose plain prompt already draws
    the target class fails the gain gate and is not chosen, however high its rate."""
    import json

    from ddb_core.bench.window import bench_window, choose, window_markdown

    results = {1.25: _window_result(1.25, 0.98, 0.98, 0.12, 0.81), 1.5: _window_result(1.5, 1.0, 0.94, 0.17, 0.65),
               2.0: _window_result(2.0, 0.88, 0.83, 0.25, 0.27)}
    (tmp_path / "bench").mkdir()
    for s, r in results.items():
        tag = f"{s:g}".replace(".", "")
        (tmp_path / "bench" / f"inpainter-window-{tag}.json").write_text(json.dumps(r))
    res = bench_window("m", (1.25, 1.5, 2.0), (0, 1, 2), out=tmp_path, doc=tmp_path / "benchmarks.md")
    assert [r["met"] for r in res["rows"]] == [False, True, True] and res["chosen"] == 1.5
    text = (tmp_path / "benchmarks.md").read_text()
    assert "Chosen: **1.5**." in text and "| 1.25 | 98.0 | 98.0 | 12.0 | 81.0 | +17.0 |" in text
    head, sep = [line for line in text.splitlines() if line.startswith(("| window", "| ---:"))]
    assert head.count("|") == sep.count("|") and "[grid](images/micro-inpainter-grid-window-15.png)" in text
    assert choose([{**r, "met": False} for r in res["rows"]]) is None
    tie = [{"scale": 1.5, "met": True, "target_bird": {"a": 0.9}, "gain": {"a": 0.3}},
           {"scale": 2.0, "met": True, "target_bird": {"a": 0.9}, "gain": {"a": 0.3}}]
    assert choose(tie) == 2.0  # a tie goes to the wider window
    assert "not met" in window_markdown(res)


def test_a_run_may_take_its_vae_from_another_model_and_skip_that_phase(tmp_path):
    import torch
    from diffusers import AutoencoderKL

    first = train_micro_inpainter(None, tmp_path / "first", MicroTrainConfig.smoke())
    cfg = replace(MicroTrainConfig.smoke(), vae_from=str(first), seed=1)
    second = train_micro_inpainter(None, tmp_path / "second", cfg)
    info = json.loads((second / "training.json").read_text())
    assert info["vae_from"]["folder"] == str(first) and len(info["vae_from"]["vae_sha256"]) == 64
    assert info["vae_from"]["vae_recipe"]["vae_steps"] == MicroTrainConfig.smoke().vae_steps
    a, b = (AutoencoderKL.from_pretrained(f / "vae", torch_dtype=torch.float32).state_dict() for f in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the very VAE, not one trained again with seed 1
    assert info["steps"] == cfg.vae_steps + cfg.unet_steps
    # a VAE of other sizes, or no VAE, is refused, naming the folder, before anything is written to --out
    with pytest.raises(ConfigError, match="other sizes"):
        train_micro_inpainter(None, tmp_path / "third", replace(MicroTrainConfig.crop_wide(), vae_from=str(first), corpus=8))
    with pytest.raises(ConfigError, match="no vae/ folder"):
        train_micro_inpainter(None, tmp_path / "fourth", replace(cfg, vae_from=str(tmp_path)))
    assert not (tmp_path / "third").exists() and not (tmp_path / "fourth").exists()


def test_the_wide_preset_differs_from_crop_in_its_unet_alone():
    crop, wide = MicroTrainConfig.crop(), MicroTrainConfig.crop_wide()
    assert wide.model.unet_channels == (96, 192, 192) and crop.model.unet_channels == (64, 128, 128)
    assert replace(wide, model=crop.model) == crop


def test_unit_latents_scale_the_vaes_latents_to_unit_variance_and_keep_the_factor_across_a_resume(tmp_path):
    import torch
    from diffusers import AutoencoderKL

    from ddb_core.demo.corpus import render_corpus
    from ddb_core.demo.micro_train import PRESETS, crop_corpus, unit_scale

    assert PRESETS["crop-unit"]() == replace(MicroTrainConfig.crop(), unit_latents=True)
    wide_unit = PRESETS["crop-wide-unit"]()
    assert wide_unit.unit_latents and wide_unit.model.unet_channels == (96, 192, 192)
    assert replace(wide_unit, unit_latents=False) == MicroTrainConfig.crop_wide()
    fine = PRESETS["crop-unit-48"]()  # the finer grid: only the window's side differs
    assert fine.model.sample_size == 48 and fine.model.latent_size == 24
    assert replace(fine, model=replace(fine.model, sample_size=32)) == PRESETS["crop-unit"]()
    cfg = replace(MicroTrainConfig.smoke(), unit_latents=True, crop_scale=2.0, corpus=16)
    token = CancelToken()

    def stop(p):
        if p.done == cfg.vae_steps + 1:
            token.cancel()

    with pytest.raises(Cancelled):  # stopped inside the UNet phase, after the factor was measured
        train_micro_inpainter(None, tmp_path / "unit", cfg, on_progress=stop, cancel=token)
    saved = torch.load(tmp_path / "unit" / "checkpoints" / "state.pt", weights_only=True)["latent_scale"]
    out = train_micro_inpainter(None, tmp_path / "unit", cfg)
    vae = AutoencoderKL.from_pretrained(out / "vae", torch_dtype=torch.float32).eval()
    factor = vae.config.scaling_factor
    assert factor == saved == json.loads((out / "training.json").read_text())["latent_scale"]
    # the factor is one over the latents' standard deviation on the training windows, measured again here
    images, masks, _ = render_corpus(cfg.corpus, cfg.corpus_seed, cfg.render_size, workers=1)
    images, _ = crop_corpus(images, masks, cfg.model.sample_size, cfg.crop_scale, np.random.default_rng([cfg.corpus_seed, 17]))
    with torch.no_grad():
        post = vae.encode(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1).latent_dist
    assert factor == pytest.approx(unit_scale(post.mean, post.std), rel=2e-3)  # float16 weights on disk
    assert factor != pytest.approx(0.18215, rel=0.05)
    drawn = post.mean + post.std * torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(0))
    assert (drawn * factor).std().item() == pytest.approx(1.0, abs=0.1)
    # without the option the factor stays Stable Diffusion's, and the record says so
    plain = train_micro_inpainter(None, tmp_path / "plain", MicroTrainConfig.smoke())
    assert json.loads((plain / "vae" / "config.json").read_text())["scaling_factor"] == 0.18215
    assert json.loads((plain / "training.json").read_text())["latent_scale"] == 0.18215
    # the model card names the preset and the factor
    from ddb_core.bench.inpainter import write_model_card

    card = write_model_card(out).read_text()
    assert "--preset crop-unit" in card and f"latents scaled by {factor:g}" in card
    assert "latents scaled by" not in write_model_card(plain).read_text()


def test_bench_inpainter_command_passes_its_window(monkeypatch, tmp_path):
    """`bench inpainter --crop-scale S` measures the model repainting a window of S times the mask's box (the window
    sections print that command); without it the model folder's own window is used (None)."""
    import ddb_core.bench.inpainter as bench_module
    from ddb_core.cli import main

    seen = []
    monkeypatch.setattr(bench_module, "bench_inpainter", lambda model, seeds, **kw: seen.append(kw) or {})
    monkeypatch.setattr(bench_module, "inpainter_markdown", lambda res: "")
    assert main(["bench", "inpainter", "--crop-scale", "1.25", "--seeds", "1", "--no-docs", "--workdir", str(tmp_path)]) == 0
    assert main(["bench", "inpainter", "--seeds", "1", "--no-docs", "--workdir", str(tmp_path)]) == 0
    assert [kw["crop_scale"] for kw in seen] == [1.25, None]


def test_bench_inpainter_eye_sets_name_one_new_folder_per_seed_and_refuse_before_any_work(monkeypatch, tmp_path):
    import ddb_core.bench.inpainter as bench_module
    from ddb_core.cli import main

    seen = []
    monkeypatch.setattr(bench_module, "bench_inpainter", lambda model, seeds, **kw: seen.append(kw) or {})
    monkeypatch.setattr(bench_module, "inpainter_markdown", lambda res: "")
    prefix = str(tmp_path / "val-x")
    assert main(["bench", "inpainter", "--seeds", "0", "1", "--eye-sets", prefix, "--no-docs", "--workdir", str(tmp_path)]) == 0
    assert seen[-1]["eye_sets"] == prefix and seen[-1]["eye_set"] is None
    monkeypatch.undo()
    # both at once, or a seed's folder that holds something already: refused before the judges or the project load
    from ddb_core.bench.inpainter import bench_inpainter

    with pytest.raises(ConfigError, match="not both"):
        bench_inpainter("nowhere", [0], workdir=tmp_path / "w", eye_set=tmp_path / "a", eye_sets=prefix)
    (tmp_path / "val-x-seed1").mkdir()
    (tmp_path / "val-x-seed1" / "labels.csv").write_text("kept\n")
    with pytest.raises(ConfigError, match="val-x-seed1"):
        bench_inpainter("nowhere", [0, 1], workdir=tmp_path / "w", eye_sets=prefix)
    assert not (tmp_path / "w").exists() and (tmp_path / "val-x-seed1" / "labels.csv").read_text() == "kept\n"
