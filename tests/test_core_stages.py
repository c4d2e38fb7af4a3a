"""Selection, inpainting, textual inversion, masking, scoring, pruning and resumable jobs."""

import json
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from ddb_core.pipeline.igmaps import load_ig
from ddb_core.project.errors import ConfigError, ModelError, WeightsUnavailableError
from ddb_core.pipeline.generation import GenerationConfig, compute_masks, generate, invert_classes, score
from ddb_core.method.inpainting import InpaintConfig, Inpainter
from ddb_core.method.inversion import InversionConfig, learn_token, save_embedding
from ddb_core.method.masking import GrabCutMasker, LangSAMMasker, ProvidedMasker, build_masker
from ddb_core.method.pruning import auto_keep
from ddb_core.curation.decisions import decisions, set_decision, set_thresholds, summary, thresholds, undo
from ddb_core.method.scoring import score_candidates
from ddb_core.method.selection import SelectionConfig, class_softmax_means, select, selected

FAST = InpaintConfig(steps=2, guidance=2.0, batch_size=4)


# -- selection ----------------------------------------------------------------------------------

def test_selection_takes_the_lowest_per_sample_losses_and_computes_Psi(scored_project):
    summary_ = select(scored_project, SelectionConfig(k=0.25, ti_size=3))
    for label in (0, 1):
        train = [r for r in scored_project.samples("train") if r["label"] == label]
        by_loss = sorted(train, key=lambda r: (r["erm_loss"], r["id"]))
        chosen = selected(scored_project, "source", label)
        assert [r["id"] for r in chosen] == [r["id"] for r in by_loss[:round(0.25 * len(train))]]
        assert [r["id"] for r in selected(scored_project, "inversion", label)] == [r["id"] for r in by_loss[::-1][:3]]
        hand = sum(json.loads(r["erm_probs"])[label] for r in train) / len(train)  # Eq. 3
        assert class_softmax_means(scored_project)[label] == pytest.approx(hand)
        assert summary_.Psi[label] == pytest.approx(hand)
    with pytest.raises(ConfigError, match="whole number"):
        SelectionConfig(k=2.5)


def test_k_per_class_and_a_balanced_total(scored_project):
    """K per class as given (capped at the class's size); a total split as evenly as the class sizes allow, as a
    CelebA recipe needs (24,267 blond training images against 138,503 others: 120,000 in all is 95,733 + 24,267)."""
    from ddb_core.method.selection import balanced_counts, class_counts

    assert balanced_counts(120_000, [138_503, 24_267]) == [95_733, 24_267]
    assert balanced_counts(10, [3, 3, 100]) == [3, 3, 4] and balanced_counts(7, [5, 5]) == [4, 3]
    assert balanced_counts(50, [10, 20]) == [10, 20] and balanced_counts(0, [4, 4]) == [0, 0]
    assert class_counts(SelectionConfig(k_per_class=(5, 500)), [10, 20]) == [5, 20]
    assert class_counts(SelectionConfig(k=0.5), [10, 21]) == [5, 10] and class_counts(SelectionConfig(k=4), [10, 2]) == [4, 2]
    with pytest.raises(ConfigError, match="2 counts for 3 classes"):
        class_counts(SelectionConfig(k_per_class=(1, 2)), [4, 4, 4])
    with pytest.raises(ConfigError, match="not both"):
        SelectionConfig(k_per_class=(1, 2), k_total=3)
    sizes = [sum(1 for r in scored_project.samples("train") if r["label"] == c) for c in (0, 1)]
    res = select(scored_project, SelectionConfig(k_per_class=(2, 5), ti_size=2))
    assert res.sources == {0: min(2, sizes[0]), 1: min(5, sizes[1])}
    res = select(scored_project, SelectionConfig(k_total=9, ti_size=2))
    assert sum(res.sources.values()) == min(9, sum(sizes)) and abs(res.sources[0] - res.sources[1]) <= 1


def test_val_minority_inversion_set_uses_the_rarest_group(scored_project):
    select(scored_project, SelectionConfig(k=2, ti_size=50, ti_source="val_minority"))
    rows = selected(scored_project, "inversion", 1)
    assert rows and all(r["split"] == "val" and r["label"] == 1 and r["attr"] == 0 for r in rows)  # waterbird on land



def test_random_inversion_set_is_a_seeded_sample_of_the_class(scored_project):
    def ti_ids(seed):
        select(scored_project, SelectionConfig(k=2, ti_size=5, ti_source="random", seed=seed))
        return {label: [r["id"] for r in selected(scored_project, "inversion", label)] for label in (0, 1)}

    first, again, other = ti_ids(0), ti_ids(0), ti_ids(1)
    assert first == again and first != other
    for label, ids in first.items():
        train = {r["id"]: r for r in scored_project.samples("train") if r["label"] == label}
        assert len(ids) == 5 == len(set(ids)) and all(i in train for i in ids)
        assert ids != [r["id"] for r in sorted(train.values(), key=lambda r: (r["erm_loss"], r["id"]))[::-1][:5]]
    with pytest.raises(ConfigError, match="ti_source must be one of high_loss, random, val_minority"):
        SelectionConfig(ti_source="lowest")


# -- inpainting and textual inversion --------------------------------------------------------

def test_tiny_pipeline_inpaints_and_keeps_pixels_outside_the_mask(tiny_pipe_factory):
    inp = Inpainter(tiny_pipe_factory())
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    m = np.zeros((32, 32), np.uint8)
    m[8:20, 10:24] = 255
    out = inp.inpaint(imgs, [m, m], ["a photo of a bird"] * 2, [1, 2], FAST)
    for src, o in zip(imgs, out):
        assert o.shape == src.shape and o.dtype == np.uint8
        assert np.array_equal(o[m == 0], src[m == 0])  # paste-back: the spurious part is exactly preserved
        assert (o[m == 255] != src[m == 255]).mean() > 0.5
    again = inp.inpaint(imgs[:1], [m], ["a photo of a bird"], [1], FAST)[0]
    assert np.array_equal(again, out[0])  # the seed fixes the result
    raw = inp.inpaint(imgs[:1], [m], ["a photo of a bird"], [1], replace(FAST, paste_back=False))[0]
    assert not np.array_equal(raw[m == 0], imgs[0][m == 0])


def test_textual_inversion_learns_saves_and_reloads(tiny_pipe_factory, tmp_path):
    pipe = tiny_pipe_factory()
    emb_before = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    imgs = [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(3)]
    res = learn_token(pipe, imgs, "<waterbird>", "bird", cfg=InversionConfig(steps=3, batch_size=2, lr=0.05, region="image"))
    tid = pipe.tokenizer.convert_tokens_to_ids("<waterbird>")
    emb_after = pipe.text_encoder.get_input_embeddings().weight.detach()
    init = emb_before[pipe.tokenizer("bird", add_special_tokens=False).input_ids].mean(0)
    assert not torch.allclose(emb_after[tid], init)  # the embedding changed
    assert torch.equal(emb_after[: emb_before.shape[0]], emb_before)  # nothing else did
    assert len(res.loss_curve) == 3
    path = save_embedding(tmp_path / "wb.safetensors", "<waterbird>", res.embedding)

    fresh = tiny_pipe_factory()
    fresh.load_textual_inversion(str(path), token="<waterbird>")  # diffusers' own loader reads the file
    row = fresh.text_encoder.get_input_embeddings().weight[fresh.tokenizer.convert_tokens_to_ids("<waterbird>")]
    assert torch.allclose(row, res.embedding)

    inp = Inpainter(tiny_pipe_factory())
    with pytest.raises(ModelError, match="not in the tokenizer"):
        inp.verify_token("<waterbird>")
    with pytest.raises(ModelError, match="does not exist"):
        inp.load_token(tmp_path / "missing.safetensors", "<waterbird>")
    inp.load_token(path, "<waterbird>")
    inp.verify_token("<waterbird>")
    with torch.no_grad():  # an embedding that is not the learned one is caught before generation
        inp.pipe.text_encoder.get_input_embeddings().weight[inp.pipe.tokenizer.convert_tokens_to_ids("<waterbird>")] += 1
    with pytest.raises(ModelError, match="differs from the learned one"):
        inp.inpaint([imgs[0]], [np.full((32, 32), 255, np.uint8)], ["a photo of a <waterbird> bird"], [0], FAST)


def test_missing_inpainting_model_names_the_model(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="stable-diffusion-2-inpainting"):
        Inpainter.load("stabilityai/stable-diffusion-2-inpainting", device="cpu")
    (tmp_path / "broken").mkdir()
    with pytest.raises(ModelError, match="model_index.json is missing"):
        Inpainter.load(str(tmp_path / "broken"), device="cpu")


# -- masking ----------------------------------------------------------------------------------

def test_langsam_plumbing_with_tiny_models(tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from tiny_langsam import build_tiny_dino, build_tiny_sam_predictor

    dino = build_tiny_dino(tmp_path / "dino")
    masker = LangSAMMasker.load(dino=str(dino), sam=build_tiny_sam_predictor(), device="cpu",
                                box_threshold=0.0, text_threshold=0.0)
    img = np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    res = masker.mask([img], "bird")[0]
    assert res.status == "ok" and res.mask.shape == (48, 40) and set(np.unique(res.mask)) <= {0, 255}
    assert res.boxes == sorted(res.boxes, key=lambda b: -b[4]) and res.score == res.boxes[0][4]
    masker.box_choice = "union"
    union = masker.mask([img], "bird")[0]
    assert union.area >= res.area
    masker.box_threshold = 1.0
    none = masker.mask([img], "bird")[0]
    assert none.status == "no_detection" and none.mask is None


def test_langsam_offline_names_every_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DDB_SAM_DIR", str(tmp_path / "sam"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    # the hub reads the variable when it is imported: without this it would wait on the network first
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsUnavailableError) as err:
        LangSAMMasker.load(dino="IDEA-Research/grounding-dino-tiny", sam="sam_vit_b", device="cpu")
    msg = str(err.value)
    assert "IDEA-Research/grounding-dino-tiny" in msg and "sam_vit_b_01ec64.pth" in msg and str(tmp_path / "sam") in msg


def test_offline_maskers_on_demo_images(scored_project):
    rows = scored_project.samples("train")[:8]
    from ddb_core.data.imaging import load_mask, load_rgb

    imgs = [load_rgb(scored_project.dataset_path(r["path"])) for r in rows]
    gts = [load_mask(scored_project.dataset_path(r["mask_path"])) for r in rows]
    provided = ProvidedMasker(scored_project.dataset_path).mask(imgs, "bird", rows)
    assert all(np.array_equal(p.mask, g) for p, g in zip(provided, gts))
    iou = lambda a, b: ((a == 255) & (b == 255)).sum() / max(1, ((a == 255) | (b == 255)).sum())
    grab = GrabCutMasker(init="box").mask(imgs, "bird")
    assert np.mean([iou(r.mask, g) if r.mask is not None else 0 for r, g in zip(grab, gts)]) > 0.2
    gc = build_masker("gradcam", project=scored_project, threshold=0.5)
    cams = gc.mask(imgs, "bird")
    assert all(r.mask is None or set(np.unique(r.mask)) <= {0, 255} for r in cams)
    gc.keep_high = True  # SCGS convention: the high-attribution region is kept, the rest repainted
    inverted = gc.mask(imgs, "bird")
    for a, b in zip(cams, inverted):
        if a.mask is not None and b.mask is not None:
            assert not ((a.mask == 255) & (b.mask == 255)).any()


# -- scoring ----------------------------------------------------------------------------------

def toy_classifier():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(16, 2))


def test_integrated_gradients_completeness_and_rho_equals_captum():
    from captum.attr import IntegratedGradients

    from ddb_core.method.scoring import views

    model = toy_classifier().eval()
    rng = np.random.default_rng(1)
    src = rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    gen = src.copy()
    gen[:, 4:12, 4:12] = rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    mask = np.zeros((2, 16, 16), np.uint8)
    mask[:, 4:12, 4:12] = 255
    scores = score_candidates(model, list(src), list(gen), list(mask), [0, 0], [1, 1], 16, n_steps=200, internal_batch_size=64)
    x, m = views(list(src), 16, list(mask))
    xp = views(list(gen), 16)
    with torch.no_grad():
        diff = model(xp)[:, 1] - model(x)[:, 1]
    for k, sc in enumerate(scores):
        assert sc.ig_map.sum() == pytest.approx(float(diff[k]), abs=2e-3)  # completeness
        assert abs(sc.ig_delta) < 2e-3
        with torch.no_grad():
            assert sc.psi == pytest.approx(float(model(xp).softmax(1)[k, 0]), abs=1e-6)
        assert np.allclose(sc.ig_map[mask[k] == 0], 0)  # x' == x outside the mask
    direct = IntegratedGradients(model).attribute(xp, baselines=x, target=1, n_steps=200)
    rho = (direct.sum(1) * m[:, 0]).sum((1, 2))
    assert [s.rho for s in scores] == pytest.approx(rho.tolist(), abs=1e-4)


def test_scores_of_mixed_sizes_are_per_image_and_memory_is_bounded():
    """Candidates of different, non-square sizes in one batch: each IG map has its source's size and
    keeps the sum of the classifier-view map; IG never runs more rows per pass than the bound."""
    from ddb_core.method.scoring import ig_rows

    inner = toy_classifier().eval()
    seen = []

    def model(x):
        seen.append(x.shape[0])
        return inner(x)

    rng = np.random.default_rng(2)
    shapes = [(20, 30), (33, 17), (16, 16)]
    src = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    gen, masks = [], []
    for s in src:
        g, m = s.copy(), np.zeros(s.shape[:2], np.uint8)
        m[3:12, 4:14] = 255
        g[m == 255] = 255 - g[m == 255]
        gen.append(g)
        masks.append(m)
    scores = score_candidates(model, src, gen, masks, [0, 1, 0], [1, 0, 1], 16, n_steps=40, internal_batch_size=7)
    assert max(seen) <= 7
    for s, sc in zip(src, scores):
        assert sc.ig_map.shape == s.shape[:2] and np.isfinite(sc.ig_map).all()
        assert sc.ig_map.sum() == pytest.approx(sc.rho, rel=0.2, abs=0.05)  # x' = x outside the mask: IG is inside
    assert ig_rows(64) == 64 and ig_rows(224) == 16 and ig_rows(512) == 3
    with pytest.raises(ConfigError, match="same size"):
        score_candidates(model, src[:1], gen[1:2], masks[:1], [0], [1], 16)


# -- pruning -----------------------------------------------------------------------------------

def test_pruning_is_monotone_in_each_threshold():
    rng = np.random.default_rng(0)
    psi, rho = rng.uniform(0, 1, 500), rng.normal(0, 1, 500)
    for a, b in [(0.2, 0.5), (0.5, 0.9)]:
        assert (auto_keep(psi, rho, np.full(500, a), np.zeros(500)) <= auto_keep(psi, rho, np.full(500, b), np.zeros(500))).all()
        assert (auto_keep(psi, rho, np.full(500, 0.6), np.full(500, b)) <= auto_keep(psi, rho, np.full(500, 0.6), np.full(500, a))).all()


# -- jobs ---------------------------------------------------------------------------------------

def _candidate_rows(project):
    return [(r["key"], r["source_id"], r["seed"], r["prompt"], r["path"]) for r in
            project.db.query("select * from candidates order by key")]


def test_generation_job_end_to_end_and_resume_after_cancel(scored_project, tiny_pipe_factory, tmp_path):
    import shutil

    from ddb_core.project.errors import Cancelled
    from ddb_core.project.progress import CancelToken
    from ddb_core.project.store import Project

    twin_root = tmp_path / "twin"
    shutil.copytree(scored_project.root, twin_root)
    twin = Project.open(twin_root)
    masker = ProvidedMasker(scored_project.dataset_path)
    inp = Inpainter(tiny_pipe_factory())
    invert_classes(scored_project, inp, [0, 1], InversionConfig(steps=2, batch_size=2), masker=masker)
    tokens = list(scored_project.db.query("select * from tokens"))
    assert [t["token"] for t in tokens] == ["<landbird>", "<waterbird>"] and json.loads(tokens[0]["loss_curve"])

    # Uninterrupted run.
    straight = generate(scored_project, inp, masker, inpaint=replace(FAST, batch_size=2))
    assert straight == {"0->1": {"sources": 4, "no_detection": 0, "candidates": 4},
                        "1->0": {"sources": 4, "no_detection": 0, "candidates": 4}}
    row = scored_project.db.execute("select prompt, provenance from candidates where target_label = 1").fetchone()
    assert row[0] == "a photo of a <waterbird> bird"
    prov = json.loads(row[1])
    assert prov["masker"] == "provided" and prov["token_sha256"] == tokens[1]["sha256"] and prov["model_sha256"]

    # The twin project: cancelled after the first batch, then resumed.
    for t in tokens:
        twin.db["tokens"].upsert(t, pk="id")
    shutil.copytree(scored_project.root / "tokens", twin_root / "tokens", dirs_exist_ok=True)
    token = CancelToken()

    def stop_after_first_batch(p):
        if p.stage.startswith("generate") and p.done >= 2:
            token.cancel()

    inp2 = Inpainter(tiny_pipe_factory())
    with pytest.raises(Cancelled):
        generate(twin, inp2, masker, inpaint=replace(FAST, batch_size=2), on_progress=stop_after_first_batch, cancel=token)
    assert len(_candidate_rows(twin)) == 2
    generate(twin, inp2, masker, inpaint=replace(FAST, batch_size=2))
    assert _candidate_rows(twin) == _candidate_rows(scored_project)
    for key, *_rest, path in _candidate_rows(twin):
        assert np.array_equal(np.asarray(__import__("PIL.Image").Image.open(twin.project_path(path))),
                              np.asarray(__import__("PIL.Image").Image.open(scored_project.project_path(path))))

    # Scoring and pruning on the stored scores.
    assert score(scored_project, n_steps=8) == 8
    assert score(scored_project, n_steps=8) == 0  # finished candidates are skipped
    cands = list(scored_project.db.query("select * from candidates"))
    assert all(c["psi"] is not None and load_ig(scored_project.project_path(c["ig_path"])).shape == (32, 32) for c in cands)
    th = thresholds(scored_project)
    assert set(th["Psi"]) == {0, 1} and set(th["P"]) == {0, 1}
    loose = set_thresholds(scored_project, Psi={0: 1.001, 1: 1.001}, P={0: -1e9, 1: -1e9})
    assert all(v["kept"] == v["candidates"] for v in summary(scored_project, loose).values())
    strict = set_thresholds(scored_project, Psi={0: 0.0, 1: 0.0})
    assert all(v["kept"] == 0 for v in summary(scored_project, strict).values())
    # Manual overrides win over the automatic decision, are audited, and undo walks them back.
    cid = cands[0]["id"]
    set_decision(scored_project, [cid], "accept", who="tester")
    assert [d.kept for d in decisions(scored_project, "c.id = ?", [cid])] == [True]
    set_decision(scored_project, [cid], "reject")
    audit = list(scored_project.db.query("select * from audit order by id"))
    assert [(a["old"], a["new"], a["who"]) for a in audit] == [(None, "accept", "tester"), ("accept", "reject", "user")]
    assert undo(scored_project).candidate_ids == [cid]
    assert decisions(scored_project, "c.id = ?", [cid])[0].manual == "accept"
    undo(scored_project)
    assert decisions(scored_project, "c.id = ?", [cid])[0].manual is None


def test_no_detection_is_recorded_not_skipped(scored_project):
    class NothingMasker:
        name = "nothing"

        def params(self):
            return {}

        def mask(self, images, prompt, samples=None):
            from ddb_core.method.masking import MaskResult

            return [MaskResult(None, "no_detection", 0.0, detail="test") for _ in images]

    rows = selected(scored_project, "source", 0)
    masks = compute_masks(scored_project, NothingMasker(), rows)
    assert all(m["status"] == "no_detection" and m["path"] is None for m in masks.values())
    assert scored_project.db.execute("select count(*) from masks where status = 'no_detection'").fetchone()[0] == len(rows)


def test_mask_benchmark_and_docs_sections(scored_project, tmp_path):
    from ddb_core.bench.docs import write_section
    from ddb_core.bench.masks import bench_masks, mask_iou

    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 255
    pred = np.zeros((4, 4), np.uint8)
    pred[:1] = 255
    assert mask_iou(pred, gt) == 0.5 and mask_iou(None, gt) == 0.0
    res = bench_masks(str(scored_project.root), n=6, seeds=(0,), doc=tmp_path / "b.md", json_path=None)
    assert all(0 <= r["median_mean_iou"] <= 1 for r in res["backends"].values())
    assert any(name.startswith("gradcam") for name in res["backends"])
    text = (tmp_path / "b.md").read_text()
    write_section(tmp_path / "b.md", "masks", "replaced\n")
    after = (tmp_path / "b.md").read_text()
    assert "replaced" in after and "grabcut (centre box)" not in after and after.count("<!-- masks:start -->") == 1
    assert "grabcut (centre box)" in text


def test_regenerate_one_candidate_with_a_drawn_mask(candidates_project, tiny_pipe_factory):
    from ddb_core import api
    from ddb_core.project.errors import ConfigError

    p = candidates_project
    old = p.db.execute("select id, source_id, seed, prompt from candidates order by id limit 1").fetchone()
    src_path = p.db.execute("select path from samples where id = ?", [old[1]]).fetchone()[0]
    size = np.asarray(__import__("PIL.Image").Image.open(p.dataset_path(src_path))).shape[0]
    mask = np.zeros((size, size), np.uint8)
    mask[4:20, 6:22] = 255
    inp = Inpainter(tiny_pipe_factory())
    new_id = api.regenerate_candidate(p, old[0], mask, inpainter=inp, steps=2, guidance=2.0, n_steps=4)
    row = p.db.execute("select seed, prompt, psi, provenance, mask_id from candidates where id = ?", [new_id]).fetchone()
    assert (row[0], row[1]) == (old[2], old[3]) and row[2] is not None  # same seed and prompt; scored at once
    assert json.loads(row[3])["regenerated_from"] == old[0]
    m = p.db.execute("select backend, path from masks where id = ?", [row[4]]).fetchone()
    assert m[0] == "manual" and np.array_equal(np.asarray(__import__("PIL.Image").Image.open(p.project_path(m[1]))), mask)
    assert p.db.execute("select count(*) from candidates").fetchone()[0] == 9  # the old one is kept
    with pytest.raises(ConfigError, match="empty"):
        api.regenerate_candidate(p, old[0], np.zeros((size, size), np.uint8), inpainter=inp)


def test_a_token_learned_on_another_model_is_refused(scored_project, tmp_path):
    """A token is a row of one model's text encoder: generating with another model must not use it silently."""
    from ddb_core.demo.micro_sd import MicroSDConfig, build_pipeline
    from ddb_core.pipeline.generation import latest_token
    from ddb_core.project.errors import ProjectError

    folders = []
    for seed in (0, 1):
        build_pipeline(MicroSDConfig(seed=seed)).save_pretrained(tmp_path / f"model{seed}")
        folders.append(str(tmp_path / f"model{seed}"))
    masker = ProvidedMasker(scored_project.dataset_path)
    a, b = Inpainter.load(folders[0], device="cpu"), Inpainter.load(folders[1], device="cpu")
    invert_classes(scored_project, a, [0, 1], InversionConfig(steps=2, batch_size=2), masker=masker)
    assert latest_token(scored_project, 1, a.model_sha) and latest_token(scored_project, 1, b.model_sha) is None
    with pytest.raises(ProjectError, match="learned on another inpainting model"):
        generate(scored_project, b, masker, inpaint=replace(FAST, batch_size=2))
    assert scored_project.db.execute("select count(*) from candidates").fetchone()[0] == 0
    counts = generate(scored_project, b, masker, cfg=GenerationConfig(use_tokens=False), inpaint=replace(FAST, batch_size=2))
    assert counts["0->1"]["candidates"] == 4
