"""Generation and scoring on Ray (a local Ray with 2 CPU workers, the tiny inpainting model saved as a
folder), on a Waterbirds-shaped project (JPEGs of five sizes, not square): the same pixels and scores
as the local engine, a worker killed mid-run, a driver killed mid-run and resumed by the same command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import realshaped  # noqa: E402
from ddb_core import api  # noqa: E402
from ddb_core.pipeline.igmaps import load_ig  # noqa: E402
from ddb_core.pipeline.engines import EngineConfig  # noqa: E402
from ddb_core.project.errors import ConfigError  # noqa: E402
from ddb_core.pipeline.generation import generate, invert_classes, score  # noqa: E402
from ddb_core.data.imaging import load_rgb  # noqa: E402
from ddb_core.method.inpainting import InpaintConfig, Inpainter  # noqa: E402
from ddb_core.method.inversion import InversionConfig  # noqa: E402
from ddb_core.method.masking import ProvidedMasker  # noqa: E402
from ddb_core.method.selection import SelectionConfig, select  # noqa: E402
from ddb_core.project.store import Project  # noqa: E402
from ddb_core.classifiers.training import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = InpaintConfig(steps=3, guidance=2.0, batch_size=2)
SLOW = InpaintConfig(steps=16, guidance=2.0, batch_size=1)  # batches long enough to kill something mid-run
RAY = EngineConfig(kind="ray", workers=2)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def template(tmp_path_factory, tiny_pipe_factory):
    """A Waterbirds-shaped project with ERM, a selection, tokens and masks; the tiny model as a folder."""
    base = tmp_path_factory.mktemp("ray")
    model = base / "model"
    tiny_pipe_factory().save_pretrained(model)
    src = realshaped.waterbirds(base / "data", n_train=24, n_val=8, n_test=8)
    project, _ = api.create_project(base / "proj", "waterbirds", src)
    api.train_erm(project, TrainConfig(image_size=48, epochs=1, batch_size=16, seed=0))
    select(project, SelectionConfig(k=4, ti_size=3))
    invert_classes(project, Inpainter.load(str(model)), [0, 1], InversionConfig(steps=2, batch_size=2),
                   masker=ProvidedMasker(project.dataset_path))
    project.close()
    # What the local engine makes with the slow settings: the reference of the fault tests.
    shutil.copytree(base / "proj", base / "reference")
    reference = Project.open(base / "reference")
    generate(reference, Inpainter.load(str(model)), ProvidedMasker(reference.dataset_path),
             inpaint=replace(SLOW, model=str(model)))
    reference.close()
    return base / "proj", model


def _copy(template, tmp_path, name) -> Project:
    dst = tmp_path / name
    shutil.copytree(template[0], dst)
    return Project.open(dst)


def _candidates(project) -> dict[str, dict]:
    return {r["key"]: dict(r) for r in project.db.query("select * from candidates order by key")}


def _same_candidates(a: Project, b: Project) -> None:
    ca, cb = _candidates(a), _candidates(b)
    assert ca.keys() == cb.keys() and len(ca) > 0
    for key, x in ca.items():
        y = cb[key]
        assert np.array_equal(load_rgb(a.project_path(x["path"])), load_rgb(b.project_path(y["path"]))), key
        px, py = json.loads(x["provenance"]), json.loads(y["provenance"])
        px.pop("seconds"), py.pop("seconds")
        assert px == py and (x["seed"], x["prompt"], x["mask_id"]) == (y["seed"], y["prompt"], y["mask_id"])


@pytest.fixture
def one_thread():
    """This process with one torch thread, as each Ray worker here has (``cpus_per_worker`` 1): the same summation
    order, so the same pixels to the bit (with two threads a value may land on the other side of an 8-bit step)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ray_makes_the_same_pixels_and_scores_as_the_local_engine(template, tmp_path, ray_local, one_thread):
    local, remote = _copy(template, tmp_path, "local"), _copy(template, tmp_path, "ray")
    model = str(template[1])
    generate(local, Inpainter.load(model), ProvidedMasker(local.dataset_path), inpaint=InpaintConfig(
        model=model, steps=3, guidance=2.0, batch_size=2))
    generate(remote, None, ProvidedMasker(remote.dataset_path), inpaint=InpaintConfig(
        model=model, steps=3, guidance=2.0, batch_size=2), engine=RAY)
    _same_candidates(local, remote)
    sizes = {load_rgb(local.project_path(c["path"])).shape[:2] for c in _candidates(local).values()}
    assert len(sizes) > 1 and any(h != w for h, w in sizes)  # the pixels compared are of several non-square sizes
    assert score(local, n_steps=4) == score(remote, n_steps=4, engine=RAY) == len(_candidates(local))
    cl, cr = _candidates(local), _candidates(remote)
    for key, x in cl.items():
        y = cr[key]
        assert np.allclose([x["psi"], x["rho"]], [y["psi"], y["rho"]], atol=1e-5), key
        a, b = load_ig(local.project_path(x["ig_path"])), load_ig(remote.project_path(y["ig_path"]))
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-5 + 0.02 * np.abs(a).max())  # one 8-bit level
        assert y["score_model_id"] == remote.active_erm_id
    # and no decision differs: each project at its own default thresholds keeps the same candidates
    from ddb_core.curation.decisions import decisions

    key_of = lambda c: {x["id"]: key for key, x in c.items()}
    kept = lambda proj, c: {key_of(c)[d.candidate_id]: d.kept for d in decisions(proj)}
    assert kept(local, cl) == kept(remote, cr)
    # Run again: nothing left to do on either engine.
    generate(remote, None, ProvidedMasker(remote.dataset_path), inpaint=InpaintConfig(model=model, batch_size=2),
             engine=RAY)
    assert len(_candidates(remote)) == len(cl)


def test_ray_masks_equal_the_local_masks_and_generation_reuses_them(template, tmp_path, ray_local):
    """``ddb mask --engine ray`` on the Waterbirds-shaped (non-square, five sizes) project: the workers build the
    masker themselves (gradcam reads the project read-only; langsam's GroundingDINO and SAM are loaded on each
    worker), the driver writes; the masks are those of the local engine — identical on one machine (the stated
    tolerance, for other machines and GPUs, is 0.5% of a mask's pixels) — and ``ddb generate`` on Ray masks nothing
    again."""
    from tiny_langsam import build_tiny_dino, build_tiny_sam_predictor

    from ddb_core.data.imaging import load_mask

    dino = str(build_tiny_dino(tmp_path / "dino"))
    masked_on_ray = {}
    for name, options in (("gradcam", {}), ("langsam", {"dino": dino, "sam": build_tiny_sam_predictor(),
                                                         "box_threshold": 0.0})):
        local, ray_p = _copy(template, tmp_path, f"local-{name}"), _copy(template, tmp_path, f"ray-{name}")
        api.set_pipeline_settings(local, masker=name, masker_options={k: v for k, v in options.items() if k != "sam"})
        api.compute_masks(local, masker=api.load_masker(local, name, options))
        counts = api.compute_masks(ray_p, engine=RAY, name=name, options=options)
        masked_on_ray[name] = ray_p
        assert sum(counts.values()) == 8  # k = 4 per class
        rows = lambda p: {r["sample_id"]: r for r in p.db.query("select * from masks where backend = ?", [name])}
        a, b = rows(local), rows(ray_p)
        assert a.keys() == b.keys() and len(a) == 8
        shapes = set()
        for sid, r in a.items():
            assert (r["status"], r["params_hash"]) == (b[sid]["status"], b[sid]["params_hash"]), (name, sid)
            if r["path"]:
                ma, mb = load_mask(local.project_path(r["path"])), load_mask(ray_p.project_path(b[sid]["path"]))
                assert ma.shape == mb.shape
                shapes.add(ma.shape)
                assert np.array_equal(ma, mb), (name, sid)
        assert len(shapes) > 1 and any(h != w for h, w in shapes), shapes
        assert not list((ray_p.root / "masks").glob("*/staged.jsonl"))  # committed: nothing left staged
    # generation on Ray with the masks already computed: no mask is computed again, every candidate uses them
    p = masked_on_ray["gradcam"]
    api.set_pipeline_settings(p, masker="gradcam")
    before = p.db.execute("select count(*), max(id) from masks where backend = 'gradcam'").fetchone()
    api.generate(p, inpaint=replace(FAST, model=str(template[1])), engine=RAY)
    assert p.db.execute("select count(*), max(id) from masks where backend = 'gradcam'").fetchone() == before
    ids = {r[0] for r in p.db.execute("select distinct m.backend from candidates c join masks m on m.id = c.mask_id "
                                      "where c.created_at > (select max(created_at) from masks where backend = 'gradcam')")}
    assert ids <= {"gradcam"} and p.db.execute("select count(*) from candidates c join masks m on m.id = c.mask_id "
                                               "where m.backend = 'gradcam'").fetchone()[0] > 0


def test_an_unreadable_input_is_the_same_plain_error_on_ray(template, tmp_path, ray_local):
    """A mask file gone missing: the local engine's DatasetError, not a RayTaskError, on Ray too."""
    from ddb_core.project.errors import DatasetError
    from ddb_core.pipeline.generation import compute_selected_masks

    model = str(template[1])
    errors = {}
    for name, engine, inp in (("local", None, Inpainter.load(model)), ("ray", RAY, None)):
        p = _copy(template, tmp_path, name)
        masker = ProvidedMasker(p.dataset_path)
        compute_selected_masks(p, masker)
        first = p.db.execute("select path from masks where status = 'ok' order by sample_id limit 1").fetchone()[0]
        p.project_path(first).unlink()
        with pytest.raises(DatasetError) as e:
            generate(p, inp, masker, inpaint=InpaintConfig(model=model, steps=2, guidance=2.0, batch_size=2), engine=engine)
        errors[name] = (type(e.value), str(e.value).replace(str(p.root.resolve()), "PROJECT"))
    assert errors["local"] == errors["ray"] and "cannot read mask" in errors["ray"][1]


def _actor_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "InpaintActor"], capture_output=True, text=True).stdout.split()
    return {int(p) for p in out} - {os.getpid()}


def test_a_worker_killed_mid_run_leaves_no_duplicate_and_no_gap(template, tmp_path, ray_local):
    project = _copy(template, tmp_path, "killed")
    reference = Project.open(template[0].parent / "reference")
    cfg = replace(SLOW, model=str(template[1]))
    errors = []

    def run():
        try:
            generate(Project.open(project.root), None, ProvidedMasker(project.dataset_path), inpaint=cfg, engine=RAY)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not project.db.execute("select count(*) from candidates").fetchone()[0]:
        time.sleep(0.2)
    pids = _actor_pids()
    assert pids, "the Ray actors are running"
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    t.join(300)
    assert not t.is_alive() and not errors, errors
    keys = [r[0] for r in project.db.execute("select key from candidates")]
    assert len(keys) == len(set(keys))
    _same_candidates(reference, project)  # nothing missing, and the retried batches made the same pixels
    assert victim not in _actor_pids()


def test_a_killed_driver_resumes_with_the_same_command(template, tmp_path):
    project = _copy(template, tmp_path, "driver")
    model = str(template[1])
    cmd = [sys.executable, "-m", "ddb_core", "generate", "-p", str(project.root), "--model", model, "--steps",
           str(SLOW.steps), "--guidance", "2", "--batch-size", "1", "--engine", "ray", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and \
            project.db.execute("select count(*) from candidates").fetchone()[0] < 2:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = project.db.execute("select count(*) from candidates").fetchone()[0]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = [r[0] for r in project.db.execute("select key from candidates")]
    assert len(keys) == len(set(keys)) and len(keys) > partial >= 2
    _same_candidates(Project.open(template[0].parent / "reference"), project)
    # The engine can be the project's setting (what the app's Pipeline screen uses).
    api.set_pipeline_settings(project, engine={"kind": "ray", "workers": 2})
    assert api.engine_config(project) == RAY
    with pytest.raises(ConfigError, match="workers"):
        api.set_pipeline_settings(project, engine={"kind": "ray", "workers": 0})
    assert api.engine_config(project) == RAY


def test_the_steady_rate_counts_from_the_first_result_to_the_last():
    from ddb_core.bench.ray_engine import _steady

    events = [(0.0, "generate 0->1", 0), (10.0, "generate 0->1", 2), (12.0, "generate 1->0", 0),
              (14.0, "generate 1->0", 2), (20.0, "generate 0->1", 4)]
    assert _steady(events, "generate") == pytest.approx((6 - 2) / (20 - 10))  # results over both directions
    assert _steady(events[:2], "generate") is None and _steady(events, "score") is None
