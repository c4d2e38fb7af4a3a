"""SCGS on the shared core: cluster sampling, the keep-the-high-region mask, a run on a tiny project."""

import json

import numpy as np
import pytest

from ddb_core.project.errors import ConfigError
from ddb_core.method.scgs import SCGSConfig, gaussian_cluster_sample, select_scgs, generate_scgs, variants_per_class


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (40, 16))
    b = rng.normal(6, 1, (20, 16))
    return np.concatenate([a, b]), np.array([0] * 40 + [1] * 20)


def test_cluster_sampling_is_reproducible_and_respects_the_budget():
    x, lab = _blobs()
    s1 = gaussian_cluster_sample(x, lab, 12, np.random.default_rng(5))
    s2 = gaussian_cluster_sample(x, lab, 12, np.random.default_rng(5))
    s3 = gaussian_cluster_sample(x, lab, 12, np.random.default_rng(6))
    assert s1 == s2 and s1 != s3
    assert len(s1) == 12 and len(set(s1)) == 12
    assert sum(i < 40 for i in s1) == 8 and sum(i >= 40 for i in s1) == 4  # proportional to cluster sizes
    # Density matters: a far outlier of cluster 0 is drawn much less often than a central point.
    x2 = x.copy()
    x2[0] = 8.0  # outlier (in cluster 0's label)
    centre = int(np.argmin(np.linalg.norm(x2[1:40] - x2[1:40].mean(0), axis=1))) + 1
    hits = {0: 0, centre: 0}
    for r in range(200):
        s = gaussian_cluster_sample(x2, lab, 6, np.random.default_rng(r))
        for k in hits:
            hits[k] += k in s
    assert hits[centre] > 3 * max(1, hits[0])
    with pytest.raises(ConfigError):
        SCGSConfig(sample_fraction=0)


def test_scgs_mask_keeps_the_high_attribution_region(scored_project):
    from ddb_core.data.imaging import load_rgb
    from ddb_core.method.scgs import scgs_masker

    m = scgs_masker(scored_project, SCGSConfig(cam_threshold=0.5))
    rows = scored_project.samples("train", "id, path, label, mask_path")[:4]
    images = [load_rgb(scored_project.dataset_path(r["path"])) for r in rows]
    maps = m.maps(images, [0] * len(images))
    res = m.mask(images, "bird", samples=rows)
    for mp, r in zip(maps, res):
        if r.mask is None:
            continue
        high = mp >= 0.5
        assert not (r.mask[high] == 255).any()  # the high (spurious) region is kept
        assert (r.mask[~high] == 255).all()  # everything else is repainted
    assert m.params()["keep_high"] is True


def test_scgs_run_on_a_tiny_project(scored_project, tiny_pipe_factory):
    from ddb_core.pipeline.generation import score
    from ddb_core.method.inpainting import InpaintConfig, Inpainter
    from ddb_core.curation.decisions import set_method_pruning, set_thresholds
    from ddb_core.method.retraining import accepted_candidates

    p = scored_project
    cfg = SCGSConfig(sample_fraction=0.5, generate_fraction=0.1, max_variants=2)
    rep = select_scgs(p, cfg)
    assert sum(r["sampled"] for r in rep.values()) > 0
    for label, r in rep.items():
        if r["sampled"]:
            assert r["sampled"] == max(1, round(0.5 * r["misclassified"]))
    again = select_scgs(p, cfg)
    assert again == rep  # reproducible from the seed
    v = variants_per_class(p, cfg)
    out = generate_scgs(p, Inpainter(tiny_pipe_factory()), cfg, InpaintConfig(steps=2, guidance=2.0, batch_size=4))
    rows = list(p.db.query("select * from candidates"))
    assert rows and all(r["method"] == "scgs" and r["source_label"] == r["target_label"] for r in rows)
    assert all(json.loads(r["provenance"])["method"] == "scgs" for r in rows)
    assert sum(o["candidates"] for o in out.values()) == len(rows) == sum(rep[l]["sampled"] * v[l] for l in v)
    # Masks are the Grad-CAM++ ones with the high region kept.
    mask_params = json.loads(p.db.execute("select params from masks limit 1").fetchone()[0])
    assert mask_params["method"] == "gradcam++" and mask_params["keep_high"] is True
    score(p, n_steps=4)
    set_thresholds(p, Psi={0: 0.0, 1: 0.0})  # the ψ/ρ rule would prune everything...
    assert len(accepted_candidates(p, "scgs")) == len(rows)  # ...but SCGS does not prune by default
    set_method_pruning(p, "scgs", True)
    assert accepted_candidates(p, "scgs") == []
