"""Images of any size: one classifier view, inpainting that keeps the aspect ratio and returns the
source's exact size, half-precision textual inversion, scores tied to their model, named classes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from ddb_core import api
from ddb_core.project.errors import ConfigError, DatasetError, ModelError, ProjectError
from ddb_core.data.imaging import ImageSet, classifier_view, load_rgb
from ddb_core.method.inpainting import InpaintConfig, Inpainter, ModelCanvas
from ddb_core.method.inversion import InversionConfig, learn_token

FAST = InpaintConfig(steps=2, guidance=2.0, batch_size=8)


# -- the classifier's view -----------------------------------------------------------------------

def test_psi_of_an_unchanged_image_equals_its_stored_softmax(scored_project):
    """Training's evaluation transform and scoring see an image the same way: ψ of x' = x is the
    softmax stored for x by the ERM model."""
    from ddb_core.classifiers.models import load_classifier
    from ddb_core.method.scoring import score_candidates

    erm = scored_project.active_erm()
    model, _, _ = load_classifier(scored_project.project_path(erm["path"]), erm["arch"], erm["num_classes"])
    rows = scored_project.samples("train")[:6]
    imgs = [load_rgb(scored_project.dataset_path(r["path"])) for r in rows]
    masks = [np.full(im.shape[:2], 255, np.uint8) for im in imgs]
    scores = score_candidates(model, imgs, imgs, masks, [r["label"] for r in rows], [1 - r["label"] for r in rows],
                              erm["image_size"], n_steps=2)
    for r, sc in zip(rows, scores):
        stored = json.loads(r["erm_probs"])
        assert sc.probs_generated == pytest.approx(stored, abs=2e-5)
        assert sc.psi == pytest.approx(stored[r["label"]], abs=2e-5)
        assert sc.rho == pytest.approx(0.0, abs=1e-6)  # nothing changed, nothing attributed


def test_classifier_view_of_non_square_images_and_masks():
    img = np.zeros((40, 100, 3), np.uint8)
    img[:, 50:] = 200
    mask = np.zeros((40, 100), np.uint8)
    mask[10:30, 60:90] = 255
    view, m = classifier_view(img, 32, mask)
    assert view.shape == (32, 32, 3) and m.shape == (32, 32) and set(np.unique(m)) <= {0.0, 1.0}
    assert m[:, :16].sum() == 0 and m[:, 16:].sum() > 0  # the mask moved with the image
    with pytest.raises(ConfigError, match="100x40"):
        classifier_view(img, 32, mask[:, :50])


def test_streaming_images_equal_preloaded_ones(tmp_path, monkeypatch):
    paths = []
    for k, (w, h) in enumerate([(30, 20), (17, 41), (25, 25)]):
        p = tmp_path / f"{k}.jpg"
        Image.fromarray(np.random.default_rng(k).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    pre = ImageSet(paths, 16)
    monkeypatch.setenv("DDB_PRELOAD_GB", "0")  # below what three images need: they stream
    streamed = ImageSet(paths, 16)
    assert pre._data is not None and streamed._data is None
    for k in range(3):
        assert torch.equal(pre[k], streamed[k]) and tuple(streamed[k].shape) == (3, 16, 16)
    monkeypatch.setenv("DDB_PRELOAD_GB", "lots")
    with pytest.raises(ConfigError, match="DDB_PRELOAD_GB"):
        ImageSet(paths, 16)


def test_sixteen_bit_png_is_scaled_not_saturated(tmp_path):
    grey = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")
    rgb = load_rgb(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert np.array_equal(rgb[..., 0], np.round(grey / 65535 * 255).astype(np.uint8))
    assert (rgb == 255).mean() < 0.05  # PIL's own conversion makes almost every pixel 255


# -- inpainting geometry -------------------------------------------------------------------------

@pytest.mark.parametrize("hw,res", [((218, 178), 512), ((375, 500), 512), ((64, 96), 64), ((64, 64), 64), ((33, 7), 64)])
def test_model_canvas_keeps_the_aspect_ratio(hw, res):
    c = ModelCanvas.fit(hw, res)
    sh, sw = c.scaled_hw
    assert max(sh, sw) == res and abs((sh / sw) / (hw[0] / hw[1]) - 1) <= 0.5 / min(sh, sw) + 1e-9  # rounding only
    assert c.canvas_hw[0] % 8 == 0 and c.canvas_hw[1] % 8 == 0
    assert 0 <= c.canvas_hw[0] - sh < 8 and 0 <= c.canvas_hw[1] - sw < 8
    img = np.random.default_rng(0).integers(0, 255, (*hw, 3), dtype=np.uint8)
    canvas = c.to_canvas(img)
    assert canvas.shape == (*c.canvas_hw, 3)
    assert c.from_canvas(canvas).shape == img.shape
    m = c.to_canvas(np.full(hw, 255, np.uint8), is_mask=True)
    assert m[:sh, :sw].all() and not m[sh:].any() and not m[:, sw:].any()  # the padding is never repainted


def test_a_batch_of_mixed_sizes_comes_back_at_each_source_size(tiny_pipe_factory):
    inp = Inpainter(tiny_pipe_factory())  # a 64 px model
    rng = np.random.default_rng(0)
    shapes = [(40, 90), (90, 40), (64, 64), (31, 47), (40, 90)]
    imgs = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    masks = []
    for h, w in shapes:
        m = np.zeros((h, w), np.uint8)
        m[h // 4:3 * h // 4, w // 3:2 * w // 3] = 255
        masks.append(m)
    out = inp.inpaint(imgs, masks, ["a photo of a bird"] * 5, [1, 2, 3, 4, 1], FAST)
    for src, m, o in zip(imgs, masks, out):
        assert o.shape == src.shape and o.dtype == np.uint8
        assert np.array_equal(o[m == 0], src[m == 0])
        assert (o[m == 255] != src[m == 255]).mean() > 0.5
    alone = inp.inpaint(imgs[1:2], masks[1:2], ["a photo of a bird"], [2], FAST)[0]
    assert np.array_equal(alone, out[1])  # grouping by size does not change an image's noise
    raw = inp.inpaint(imgs[:1], masks[:1], ["a photo of a bird"], [1], replace(FAST, paste_back=False))[0]
    assert raw.shape == imgs[0].shape
    bigger = inp.inpaint(imgs[:1], masks[:1], ["a photo of a bird"], [1], replace(FAST, resolution=96))[0]
    assert bigger.shape == imgs[0].shape
    with pytest.raises(ConfigError, match="multiple of 8"):
        InpaintConfig(resolution=100)
    with pytest.raises(ConfigError, match="mask 0 is 90x40 but its image is 40x90"):
        inp.inpaint(imgs[1:2], masks[:1], ["x"], [0], FAST)


# -- half precision ------------------------------------------------------------------------------

def test_textual_inversion_in_bfloat16_trains_a_float32_row(tiny_pipe_factory):
    """The same code path as float16 on CUDA: the UNet and VAE in half precision, the text encoder
    moved to float32 for the inversion, the optimiser's state float32, the loss finite."""
    pipe = tiny_pipe_factory().to(torch.bfloat16)
    before = pipe.text_encoder.get_input_embeddings().weight.detach().float().clone()
    imgs = [np.random.default_rng(i).integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8) for i in range(3)]
    res = learn_token(pipe, imgs, "<eight>", "digit", cfg=InversionConfig(steps=4, batch_size=2, lr=0.05, region="image"))
    assert res.model_dtype == "bfloat16" and res.train_dtype == "float32"
    assert all(np.isfinite(res.loss_curve)) and len(res.loss_curve) == 4
    assert res.embedding.dtype == torch.float32
    assert pipe.text_encoder.dtype == torch.bfloat16 and pipe.unet.dtype == torch.bfloat16  # restored for generation
    tid = pipe.tokenizer.convert_tokens_to_ids("<eight>")
    row = pipe.text_encoder.get_input_embeddings().weight[tid].float()
    init = before[pipe.tokenizer("digit", add_special_tokens=False).input_ids].mean(0)
    assert not torch.allclose(res.embedding, init)  # the row was trained
    assert torch.equal(row, res.embedding.to(torch.bfloat16).float())
    inp = Inpainter(pipe)
    inp.tokens["<eight>"] = res.embedding
    inp.verify_token("<eight>")  # the bfloat16 row is the learned float32 row, rounded
    out = inp.inpaint([imgs[0]], [np.full(imgs[0].shape[:2], 255, np.uint8)], ["a photo of a <eight> digit"], [0], FAST)
    assert out[0].shape == imgs[0].shape


def test_a_non_finite_loss_stops_inversion_with_a_clear_error(tiny_pipe_factory):
    pipe = tiny_pipe_factory()
    with torch.no_grad():
        pipe.unet.conv_out.bias.fill_(float("nan"))
    imgs = [np.zeros((32, 48, 3), np.uint8)]
    with pytest.raises(ModelError, match=r"stopped at step 1 of 3: the loss is nan"):
        learn_token(pipe, imgs, "<three>", "digit", cfg=InversionConfig(steps=3, batch_size=1, region="image"))
    assert pipe.text_encoder.dtype == torch.float32
    with pytest.raises(ConfigError, match="finite"):
        InversionConfig(lr=float("inf"))


# -- scores belong to a model --------------------------------------------------------------------

def test_changing_the_erm_model_makes_scores_stale_until_rescored(candidates_project, capsys):
    from ddb_core.cli import main
    from ddb_core.curation.decisions import decisions, stale_scores, thresholds
    from ddb_core.classifiers.training import TrainConfig

    project = candidates_project
    n = project.db.execute("select count(*) from candidates").fetchone()[0]
    first = project.active_erm_id
    assert stale_scores(project) == 0
    assert {r[0] for r in project.db.execute("select score_model_id from candidates")} == {first}
    before = thresholds(project)
    api.train_erm(project, TrainConfig(image_size=32, epochs=1, batch_size=16, seed=5))
    assert project.active_erm_id != first
    assert stale_scores(project) == n
    assert all(d.auto is None for d in decisions(project))  # stale scores count as not scored
    assert main(["status", "-p", str(project.root)]) == 0
    assert f"{n} candidates were scored by another ERM model" in capsys.readouterr().out
    assert main(["prune", "-p", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "--rescore" in out and "0 scored" in out
    assert main(["score", "-p", str(project.root), "--n-steps", "4"]) == 0
    assert "scored 0 candidates" in capsys.readouterr().out  # plain score leaves stale scores alone
    assert main(["score", "-p", str(project.root), "--n-steps", "4", "--rescore"]) == 0
    assert f"scored {n} candidates" in capsys.readouterr().out
    assert stale_scores(project) == 0
    assert {r[0] for r in project.db.execute("select score_model_id from candidates")} == {project.active_erm_id}
    after = thresholds(project)
    assert after["erm_model_id"] != before["erm_model_id"] and after["Psi"] != before["Psi"]  # Ψ of the new model


def test_a_missing_Psi_names_the_command_instead_of_pruning_everything(candidates_project):
    from ddb_core.curation.decisions import decisions

    project = candidates_project
    project.db.execute("delete from class_stats")
    project.db.conn.commit()
    with pytest.raises(ProjectError, match="run `ddb select`"):
        decisions(project)
    index = api.review_index(project)  # the app still opens, and says why
    assert "ddb select" in index.problem


def test_default_P_comes_from_the_same_method_and_does_not_drift(candidates_project):
    from ddb_core.method.pruning import DEFAULT_P_QUANTILE
    from ddb_core.curation.decisions import reset_thresholds, set_method_pruning, thresholds

    project = candidates_project
    th = thresholds(project)
    for c in (0, 1):
        rhos = [r[0] for r in project.db.execute("select rho from candidates where method = 'ddb' and target_label = ?", [c])]
        assert th["P"][c] == pytest.approx(float(np.quantile(rhos, DEFAULT_P_QUANTILE)))
        assert th["P_default"]["ddb"][c]["n"] == len(rhos)
    # candidates of another method with extreme ρ change nothing of DDB's P; nor do new DDB candidates
    first = project.db.execute("select * from candidates order by id limit 1").fetchone()
    cols = [d[0] for d in project.db.execute("select * from candidates limit 0").description]
    row = dict(zip(cols, first))
    for k in range(5):
        project.db["candidates"].insert({**row, "id": None, "key": f"scgs-fake-{k}", "method": "scgs", "rho": 1e6 + k})
        project.db["candidates"].insert({**row, "id": None, "key": f"ddb-new-{k}", "rho": -1e6 - k})
    set_method_pruning(project, "scgs", True)
    again = thresholds(project)
    assert again["P"] == th["P"]
    assert again["P_method"]["scgs"][row["target_label"]] >= 1e6  # SCGS's own default, from its own candidates
    reset = reset_thresholds(project)  # computed again from every candidate scored now
    assert reset["P"][row["target_label"]] < th["P"][row["target_label"]]


# -- naming the classes --------------------------------------------------------------------------

def test_init_names_classes_attributes_and_the_object_word(tiny_dataset, tmp_path, capsys):
    from ddb_core.cli import main

    root = tmp_path / "named"
    assert main(["init", "-p", str(root), "--format", "waterbirds", "--source", str(tiny_dataset),
                 "--class-names", "three", "eight", "--attr-names", "stripes", "dots", "--object-prompt", "digit"]) == 0
    p = api.open_project(root)
    assert p.class_names == ["three", "eight"] and p.attr_names == ["stripes", "dots"]
    assert p.get_meta("object_prompt") == {"three": "digit", "eight": "digit"}
    st = api.status(p)
    assert "three/stripes" in st["groups"]["train"]
    capsys.readouterr()
    assert main(["init", "-p", str(tmp_path / "bad"), "--format", "waterbirds", "--source", str(tiny_dataset),
                 "--class-names", "a", "b", "c"]) == 2
    err = capsys.readouterr().err
    assert "class 2 'c'" in err and "nothing was imported" in err
    assert not (tmp_path / "bad" / "project.db").exists()
    assert main(["init", "-p", str(tmp_path / "per"), "--format", "waterbirds", "--source", str(tiny_dataset),
                 "--object-prompt", "landbird=songbird", "waterbird=duck"]) == 0
    assert api.open_project(tmp_path / "per").get_meta("object_prompt") == {"landbird": "songbird", "waterbird": "duck"}
    with pytest.raises(DatasetError, match="unknown class"):
        api.create_project(tmp_path / "x", "waterbirds", tiny_dataset, object_prompt={"cat": "cat"})


# -- repainting a window around the mask ---------------------------------------------------------

@pytest.mark.parametrize("hw,box", [((64, 64), (20, 30, 10, 24)), ((48, 90), (0, 10, 80, 90)), ((90, 40), (30, 80, 5, 35)),
                                    ((37, 53), (0, 37, 0, 53))])
def test_the_crop_window_holds_the_mask_and_lies_in_the_image(hw, box):
    from ddb_core.method.inpainting import crop_window

    m = np.zeros(hw, np.uint8)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = 255
    for scale in (1.0, 1.5, 2.0, 3.5):
        for shift in ((0.0, 0.0), (0.1, -0.1), (-0.3, 0.3)):
            t, l, h, w = crop_window(m, scale, shift)
            assert 0 <= t and 0 <= l and t + h <= hw[0] and l + w <= hw[1]
            assert t <= y0 and y1 <= t + h and l <= x0 and x1 <= l + w  # the whole mask is inside
            side = max(y1 - y0, x1 - x0) * scale
            assert h == min(hw[0], max(y1 - y0, int(np.ceil(side)))) and w == min(hw[1], max(x1 - x0, int(np.ceil(side))))
    assert crop_window(np.zeros(hw, np.uint8), 2.0) == (0, 0, *hw)  # nothing to repaint: the whole image
    with pytest.raises(ConfigError, match="crop scale must be >= 1"):
        crop_window(m, 0.5)


def test_a_window_model_repaints_only_its_window_of_images_of_any_size(tiny_pipe_factory, tmp_path):
    from ddb_core.method.inpainting import INPAINT_FILE, crop_window, model_crop_scale

    inp = Inpainter(tiny_pipe_factory())
    inp.crop_scale = 2.0
    rng = np.random.default_rng(1)
    shapes = [(70, 110), (120, 64), (64, 64)]
    imgs = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    masks = []
    for h, w in shapes:
        m = np.zeros((h, w), np.uint8)
        m[h // 3:h // 3 + 12, w // 2:w // 2 + 9] = 255
        masks.append(m)
    raw = inp.inpaint(imgs, masks, ["a photo of a bird"] * 3, [5, 6, 7], replace(FAST, paste_back=False))
    for src, m, o in zip(imgs, masks, raw):
        t, l, h, w = crop_window(m, 2.0)
        assert o.shape == src.shape
        outside = np.ones(m.shape, bool)
        outside[t:t + h, l:l + w] = False
        assert np.array_equal(o[outside], src[outside])  # beyond the window nothing changes, even without paste-back
        assert (o[m == 255] != src[m == 255]).mean() > 0.5
    whole = inp.inpaint(imgs[:1], masks[:1], ["a photo of a bird"], [5], replace(FAST, paste_back=False, crop_scale=0))[0]
    assert (whole[:5, :5] != imgs[0][:5, :5]).any()  # crop_scale 0: the whole image is the model's again
    # the model folder says how it repaints
    (tmp_path / INPAINT_FILE).write_text(json.dumps({"crop_scale": 1.75}))
    assert model_crop_scale(tmp_path) == 1.75
    (tmp_path / INPAINT_FILE).write_text(json.dumps({"crop_scale": 0.5}))
    with pytest.raises(ModelError, match="inpaint.json: crop_scale must be a number >= 1"):
        model_crop_scale(tmp_path)
    with pytest.raises(ConfigError, match="crop_scale must be 0"):
        InpaintConfig(crop_scale=0.5)


def test_a_window_models_token_is_learned_in_the_windows(tiny_pipe_factory):
    """The inversion cuts each image to the window around its object: what lies outside the windows cannot change
    the learned token."""
    imgs, masks = [], []
    for k, (h, w) in enumerate([(60, 90), (80, 50)]):
        rng = np.random.default_rng(k)
        imgs.append(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        m = np.zeros((h, w), np.uint8)
        m[20:32, 20:30] = 255
        masks.append(m)
    cfg = InversionConfig(steps=2, batch_size=2, region="mask")
    a = learn_token(tiny_pipe_factory(), imgs, "<b>", "bird", cfg=cfg, masks=masks, crop_scale=2.0)
    changed = [im.copy() for im in imgs]
    for im in changed:
        im[40:50, 40:48] = 0  # outside each window (rows and columns 14-37), inside the whole image's square
    b = learn_token(tiny_pipe_factory(), changed, "<b>", "bird", cfg=cfg, masks=masks, crop_scale=2.0)
    assert torch.equal(a.embedding, b.embedding)
    whole = replace(cfg, region="image")  # on whole images the same change counts
    c1 = learn_token(tiny_pipe_factory(), imgs, "<b>", "bird", cfg=whole)
    c2 = learn_token(tiny_pipe_factory(), changed, "<b>", "bird", cfg=whole)
    assert not torch.equal(c1.embedding, c2.embedding)
    with pytest.raises(ConfigError, match="give the object masks"):
        learn_token(tiny_pipe_factory(), imgs, "<b>", "bird", cfg=replace(cfg, region="image"), crop_scale=2.0)


def test_the_token_learns_the_object_inside_the_region_generation_repaints(tiny_pipe_factory):
    """With the repaint masks (the object's box) the UNet sees nothing of the box, and the loss counts inside the object:
    pixels inside the box but off the object change nothing. Given only the silhouette, the UNet sees them."""
    imgs, objs, boxes = [], [], []
    for k, (h, w) in enumerate([(60, 72), (72, 64)]):
        imgs.append(np.random.default_rng(k).integers(0, 255, (h, w, 3), dtype=np.uint8))
        obj = np.zeros((h, w), np.uint8)
        obj[20:34, 8:14] = 255  # a thin object at one end of a wide box
        box = np.zeros((h, w), np.uint8)
        box[20:34, 4:62] = 255
        objs.append(obj), boxes.append(box)
    changed = [im.copy() for im in imgs]
    for im in changed:
        im[20:34, 44:62] = 0  # inside the box, off the object and beyond the encoder's reach of it
    cfg = InversionConfig(steps=2, batch_size=2, region="mask", object_mask_share=0.0)
    a = learn_token(tiny_pipe_factory(), imgs, "<b>", "bird", cfg=cfg, masks=objs, repaint_masks=boxes)
    b = learn_token(tiny_pipe_factory(), changed, "<b>", "bird", cfg=cfg, masks=objs, repaint_masks=boxes)
    c = learn_token(tiny_pipe_factory(), imgs, "<b>", "bird", cfg=cfg, masks=objs)
    d = learn_token(tiny_pipe_factory(), changed, "<b>", "bird", cfg=cfg, masks=objs)
    # (the VAE encoder's attention lets every pixel reach every latent a little: not exactly nothing)
    assert (a.embedding - b.embedding).abs().max() < 0.1 * (c.embedding - d.embedding).abs().max()
    with pytest.raises(ConfigError, match="one repaint mask per object mask"):
        learn_token(tiny_pipe_factory(), imgs, "<b>", "bird", cfg=cfg, masks=objs, repaint_masks=boxes[:1])
    # object_mask_share: the share of samples given the silhouette instead of the box (all: as with no box at all)
    e = learn_token(tiny_pipe_factory(), imgs, "<b>", "bird", cfg=replace(cfg, object_mask_share=1.0), masks=objs,
                    repaint_masks=boxes)
    assert torch.equal(e.embedding, c.embedding)
    runs = {share: learn_token(tiny_pipe_factory(), imgs, "<b>", "bird", masks=objs, repaint_masks=boxes,
                               cfg=replace(cfg, steps=8, object_mask_share=share)).embedding for share in (0.0, 0.5, 1.0)}
    assert not torch.equal(runs[0.5], runs[0.0]) and not torch.equal(runs[0.5], runs[1.0])  # some of each
    with pytest.raises(ConfigError, match="object_mask_share must be in"):
        InversionConfig(object_mask_share=1.5)
