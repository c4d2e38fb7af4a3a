"""The full-size path's pieces that a CPU test can hold: the real architectures' sizes (built on the
meta device, no memory), compact IG maps, thumbnails, textual inversion reproducible from its seed,
selections tied to their ERM model, and the full-size benchmark's report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ddb_core import api
from ddb_core.project.errors import ProjectError
from ddb_core.pipeline.igmaps import decode, encode, load_ig, save_ig, stored_shape
from ddb_core.data.thumbnails import SIDE, thumb_path, thumbnail, write_thumbnail


def test_the_full_size_models_have_the_published_sizes():
    from ddb_core.bench.fullscale import sd2_inpainting_components

    with torch.device("meta"):
        parts = sd2_inpainting_components()
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert parts["unet"].config.in_channels == 9 and parts["unet"].config.cross_attention_dim == 1024
    assert 865e6 < n(parts["unet"]) < 867e6  # SD2-inpainting's UNet: 865.9M
    assert 83e6 < n(parts["vae"]) < 84e6
    assert 340e6 < n(parts["text_encoder"]) < 341e6  # OpenCLIP ViT-H/14's text tower (23 layers)
    assert parts["text_encoder"].config.hidden_size == 1024 and parts["tokenizer"].model_max_length == 77


@pytest.mark.parametrize("shape", [(375, 500), (218, 178), (40, 56), (300, 300)])
def test_ig_maps_are_small_at_a_bounded_resolution_and_keep_the_picture(shape, tmp_path):
    rng = np.random.default_rng(0)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    ig = (np.exp(-((yy - h / 3) ** 2 + (xx - w / 2) ** 2) / (0.02 * h * w)) * 0.05
          + rng.normal(0, 2e-4, shape)).astype(np.float32)  # a blob of attribution in noise
    path = save_ig(tmp_path / "7.npz", ig, classifier_side=224)
    back = load_ig(path)
    sh, sw = stored_shape(shape, 224)
    assert back.shape == (sh, sw) and max(sh, sw) <= max(256, 224) and max(sh, sw) <= max(h, w)
    assert abs(sh / sw - h / w) < 0.02  # aspect ratio kept
    if shape == (375, 500):
        assert path.stat().st_size <= 60_000  # the target at Waterbirds size
    # the picture survives: the same place is hottest, and the map correlates with the original
    from PIL import Image

    ref = np.asarray(Image.fromarray(ig).resize((sw, sh), Image.BOX))
    assert np.unravel_index(back.argmax(), back.shape) == np.unravel_index(ref.argmax(), ref.shape) or \
        np.corrcoef(back.ravel(), ref.ravel())[0, 1] > 0.99
    assert np.corrcoef(back.ravel(), ref.ravel())[0, 1] > 0.99
    # small values keep many levels (square-root code): 1% of the maximum is level 13, not 1
    e = encode(np.array([[1.0, 0.01, -0.01, 0.0]], np.float32), 224)
    assert e["q"].tolist() == [[127, 13, -13, 0]]
    assert np.allclose(decode(e["q"], e["scale"]), [[1.0, 0.0105, -0.0105, 0.0]], atol=1e-3)


def test_old_float32_maps_still_load(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "1.npy", a)
    assert np.array_equal(load_ig(tmp_path / "1.npy"), a)


def test_thumbnails_are_small_made_once_and_keep_the_aspect_ratio(candidates_project):
    p = candidates_project
    rng = np.random.default_rng(1)
    for k, (h, w) in enumerate(((375, 500), (218, 178), (40, 56))):
        rel = f"candidates/x/{k}.png"
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        (p.root / rel).parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(img).save(p.root / rel)
        assert not thumb_path(p, rel).exists()
        t = thumbnail(p, rel)  # made from the image the first time
        assert thumb_path(p, rel).is_file()
        assert max(t.shape[:2]) == min(SIDE, max(h, w)) and abs(t.shape[0] / t.shape[1] - h / w) < 0.05
        mtime = thumb_path(p, rel).stat().st_mtime_ns
        assert thumbnail(p, rel).shape == t.shape and thumb_path(p, rel).stat().st_mtime_ns == mtime  # read, not made
    # generation stores one per candidate
    for c in p.db.query("select path from candidates"):
        assert thumb_path(p, c["path"]).is_file()


def test_textual_inversion_is_reproducible_from_its_own_seed(tiny_pipe_factory):
    """The VAE's latent sample draws from the inversion's seeded generator, not the global one: a
    resumed run (another process, another global state) learns the same token."""
    from ddb_core.method.inversion import InversionConfig, learn_token

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (40, 56, 3), dtype=np.uint8), rng.integers(0, 255, (52, 36, 3), dtype=np.uint8)]
    out = []
    for global_seed in (1, 12345):
        torch.manual_seed(global_seed)
        res = learn_token(tiny_pipe_factory(), imgs, "<waterbird>", "bird", cfg=InversionConfig(steps=2, batch_size=2, region="image"))
        out.append(res.embedding)
    assert torch.equal(out[0], out[1])


def test_a_selection_belongs_to_the_erm_model_that_made_it(scored_project, tiny_pipe_factory):
    from ddb_core.method.selection import selected

    p = scored_project
    assert selected(p, "source", 0)
    ckpt = p.project_path(p.active_erm()["path"])
    api.load_erm(p, str(ckpt), image_size=32)  # another model (the same weights) becomes active
    with pytest.raises(ProjectError, match="ddb select"):
        selected(p, "source", 0)
    with pytest.raises(ProjectError, match="ddb select"):
        api.generate(p, inpainter=_inp(tiny_pipe_factory))
    api.select(p)
    assert selected(p, "source", 0)


def _inp(factory):
    from ddb_core.method.inpainting import Inpainter

    return Inpainter(factory())


def test_the_fullscale_report_states_every_figure():
    from ddb_core.bench.fullscale import fullscale_markdown

    stage = {"seconds": 10.0, "load_seconds": 2.0, "peak_rss_bytes": 3 * 2**30, "cuda_peak_bytes": None,
             "unet_seconds": 0.0, "unet_calls": 0}
    res = {"command": "ddb bench fullscale", "device": "CPU", "dtype": "float32", "candidates": 4, "sources": 4,
           "images": {"waterbirds": [500, 375], "celeba": [178, 218]}, "total_seconds": 600,
           "parameters": {"unet": 865.9e6, "vae": 83.7e6, "text_encoder": 340.4e6, "grounding_dino": 232e6,
                          "sam": 641e6, "erm": 23.5e6},
           "stages": {k: dict(stage) for k in ("mask", "generate", "score")}, "denoising_steps": 2,
           "per_candidate_seconds": {"mask": 1.0, "generate_2_steps": 4.0, "score_50_ig_steps": 2.0, "storage": 0.01},
           "unet_seconds_per_step": 1.5, "diffusion_50_steps_seconds_per_candidate": 76.0,
           "overhead_ratio_50_steps": 3.01 / 76, "inversion_seconds_per_step": 5.0, "retrain_seconds_one_step": 3.0,
           "storage": {"by_source_size": {"500x375": {"image": 200_000, "mask": 3000, "ig_map": 40_000, "row": 1500,
                                                      "total": 244_500, "candidates": 2}}}}
    md = fullscale_markdown(res)
    for text in ("866M", "0.04", "76.00", "3.00 GiB", "40.0 KB", "500x375", "5.00 s per step"):
        assert text in md, text
    json.dumps(res)


def test_the_review_model_keeps_its_arrays_and_never_shows_stale_ones(candidates_project):
    """The arrays are kept on disk for the next opening, and any change to a candidate (by any
    connection: the triggers count it) makes the next opening read the database again."""
    from ddb_core.curation.review import ReviewIndex
    from ddb_core.project.store import Project

    p = candidates_project
    first = ReviewIndex(p)
    cache = p.root / "cache" / "review-arrays.npz"
    assert cache.is_file()
    mtime = cache.stat().st_mtime_ns
    again = ReviewIndex(Project.open(p.root))
    assert cache.stat().st_mtime_ns == mtime and np.array_equal(again.psi, first.psi, equal_nan=True)
    other = Project.open(p.root)  # another connection changes one score
    cid = int(first.ids[0])
    other.db.execute("update candidates set psi = 0.123 where id = ?", [cid])
    other.db.conn.commit()
    changed = ReviewIndex(p)
    assert changed.psi[changed.pos[cid]] == pytest.approx(0.123)
    assert cache.stat().st_mtime_ns != mtime  # read again and kept again
    other.db.execute("delete from candidates where id = ?", [cid])
    other.db.conn.commit()
    assert cid not in ReviewIndex(p).pos



@pytest.mark.parametrize("kept", [False, True])
def test_gallery_sorts_from_kept_orders_equal_a_plain_sort(candidates_project, kept):
    from ddb_core.curation.review import Filter, ReviewIndex, keep_arrays

    p = candidates_project
    p.db.execute("update candidates set psi = null, rho = null where id = (select min(id) from candidates)")  # unscored
    p.db.conn.commit()
    if kept:
        keep_arrays(p)
    index = ReviewIndex(p)
    assert bool(index._kept_orders) == kept
    rows = list(p.db.query("select id, psi, rho from candidates"))
    for sort in ("psi", "-psi", "rho", "-rho"):
        key = sort.lstrip("-")
        sign = -1 if sort.startswith("-") else 1
        expected = [r["id"] for r in sorted(rows, key=lambda r: (r[key] is None, sign * (r[key] or 0), r["id"]))]
        assert index.query(Filter(sort=sort)).tolist() == expected, sort
        d = index.directions[0]
        sub = index.query(Filter(sort=sort, direction=f"{d[0]}->{d[1]}")).tolist()
        assert sub == [i for i in expected if i in set(index.query(Filter(direction=f"{d[0]}->{d[1]}")).tolist())]
