"""The facade of ddb_core: what the CLI and the app call.

Each function takes plain values, runs one piece of work on a project, and reports progress
through ``on_progress``. Nothing here imports gradio; the app adapts errors (``DDBError``) and
progress itself.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from .data.datasets import ImportReport, derived_work, import_dataset, read_dataset, reimport_summary, validate
from .demo.data import DemoDataConfig, generate_demo_dataset
from .project.errors import ProjectError
from .classifiers.evaluation import GroupReport
from .project.progress import CancelToken, ProgressFn
from .project.settings import PIPELINE_DEFAULTS, compute_device, pipeline_settings
from .pipeline.components import engine_config, load_inpainter, load_masker, set_pipeline_settings
from .project.store import Project
from .classifiers.training import TrainConfig, TrainResult, load_erm_checkpoint, model_reports, train_classifier

DEFAULT_PROJECT = os.environ.get("DDB_PROJECT", "projects/demo")
DEMO_DATA_DIR = "dataset"  # inside the project folder


def create_project(root: str | os.PathLike, fmt: str, source: Optional[str | os.PathLike] = None, *,
                   name: Optional[str] = None, replace: bool = False, demo: Optional[DemoDataConfig] = None,
                   label_attr: str = "Blond_Hair", spurious_attr: str = "Male", groups_csv: Optional[str] = None,
                   val_fraction: float = 0.1, seed: int = 0, check_images: bool = True,
                   class_names: Optional[list[str]] = None, attr_names: Optional[list[str]] = None,
                   object_prompt=None, delete_derived: bool = False,
                   on_progress: Optional[ProgressFn] = None) -> tuple[Project, ImportReport]:
    """Create (or, with ``replace``, refill) a project from a dataset on disk or from the demo.

    ``class_names`` / ``attr_names`` name the classes and the spurious attribute's values in label
    order; ``object_prompt`` is the object word of the prompts (one, or a {class name: word} dict).

    The dataset is read and validated before the project folder is touched, so bad input leaves
    no new folder and no changed database behind (a folder this call created is removed if the import
    fails). Re-importing over candidates, masks, selections or tokens needs ``delete_derived``.
    """
    root = Path(root)
    existed = root.exists()
    if Project.exists(root):
        existing = Project.open(root)
        if existing.sample_count() and not replace:
            raise ProjectError(f"a project with {existing.sample_count()} samples already exists at {root}; "
                               f"pass --replace to re-import, or choose another folder")
        if replace and not delete_derived and any(n for k, n in derived_work(existing).items() if k != "models"):
            raise ProjectError(reimport_summary(existing) + ". Nothing was changed. To go ahead, pass --delete-derived "
                               "(the app asks you to confirm), or import into a new project folder.")
    try:
        if fmt == "demo":
            source = root / DEMO_DATA_DIR
            generate_demo_dataset(source, demo or DemoDataConfig(seed=seed), on_progress=on_progress)
        elif source is None:
            raise ProjectError(f"format {fmt!r} needs --source DIR (the dataset folder)")
        ds = read_dataset(fmt, source, label_attr=label_attr, spurious_attr=spurious_attr, groups_csv=groups_csv,
                          val_fraction=val_fraction, seed=seed, class_names=class_names, attr_names=attr_names,
                          object_prompt=object_prompt)
        if fmt == "demo":
            ds.format = "demo"
        converted = validate(ds, check_images=check_images)
        project = Project.open(root) if Project.exists(root) else Project.create(root, name)
        report = import_dataset(project, ds, replace=replace, root_relative_to_project=(fmt == "demo"), converted=converted,
                                delete_derived=delete_derived)
    except BaseException:
        if not existed:  # a failed import leaves nothing behind
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        raise
    if fmt == "demo" and "inpaint_model" not in (project.get_meta("pipeline") or {}):
        from .method.inpainting import MICRO_MODEL

        # The shipped micro model, by path, repainting each bird's box as `bench demo` does: inside the
        # tight silhouette it cannot change a waterbird's shape into a landbird's (model card, quality).
        set_pipeline_settings(project, inpaint_model=MICRO_MODEL, masker="provided", masker_options={"shape": "box"})
    return project, report


def build_demo_project(root: str | os.PathLike = DEFAULT_PROJECT, *, erm: Optional[TrainConfig] = None,
                       demo: Optional[DemoDataConfig] = None, on_progress: Optional[ProgressFn] = None,
                       cancel: Optional[CancelToken] = None) -> Project:
    """Make the offline demo project: generate the data (if missing), train the ERM model (if none; by default the
    demo's recipe ``demo.pipeline.DEMO_ERM``, the one `bench demo` and `bench inpainter` train, so that the app's
    tokens learn from the same high-loss images as the val gates measured).

    Safe to call again after an interruption: finished stages are kept, training resumes.
    """
    root = Path(root)
    project = Project.open(root) if Project.exists(root) else None
    if project is None or not project.sample_count():
        project, _ = create_project(root, "demo", replace=project is not None, demo=demo, on_progress=on_progress)
    if project.active_erm_id is None:
        from .demo.pipeline import DEMO_ERM

        train_erm(project, erm or DEMO_ERM, on_progress=on_progress, cancel=cancel)
    return project


def open_project(root: str | os.PathLike = DEFAULT_PROJECT) -> Project:
    return Project.open(root)


def train_erm(project: Project, cfg: TrainConfig = TrainConfig(), *, oracle: bool = False,
              on_progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None) -> TrainResult:
    """Train the ERM model (made active), or the group-balanced oracle (uses train group labels)."""
    if oracle:
        from dataclasses import replace as dc_replace

        cfg = dc_replace(cfg, sampler="group_balanced")
        return train_classifier(project, cfg, role="oracle", make_active=False, on_progress=on_progress, cancel=cancel)
    return train_classifier(project, cfg, role="erm", on_progress=on_progress, cancel=cancel)


def load_erm(project: Project, checkpoint: str, arch: Optional[str] = None, image_size: int = 64,
             on_progress: Optional[ProgressFn] = None, device: Optional[str] = None) -> int:
    return load_erm_checkpoint(project, checkpoint, arch, image_size, on_progress=on_progress, device=device)


def evaluate(project: Project, model_id: Optional[int] = None, recompute: bool = False) -> dict[str, GroupReport]:
    return model_reports(project, model_id, recompute)


def status(project: Project) -> dict:
    """A summary of the project: dataset, groups, models and runs (a run whose process died is
    marked "interrupted" first)."""
    project.mark_interrupted_runs()
    meta = project.meta()
    out = {"project": str(project.root), "name": meta.get("name"), "dataset_format": meta.get("dataset_format"),
           "dataset_root": meta.get("dataset_root"), "class_names": meta.get("class_names"),
           "attr_names": meta.get("attr_names"), "samples": {}, "groups": {}, "active_erm_model": meta.get("active_erm_model"),
           "models": [], "runs": [],
           "device": {k: pipeline_settings(project)[k] for k in ("device", "dtype")} if meta.get("class_names") else None}
    if meta.get("class_names"):
        from .data.datasets import group_name

        for split in ("train", "val", "test"):
            out["samples"][split] = project.sample_count(split)
            out["groups"][split] = {group_name(project.class_names, project.attr_names, y, a): n
                                    for (y, a), n in sorted(project.group_counts(split).items())}
    for m in project.models():
        test = m["metrics"].get("test", {})
        out["models"].append({"id": m["id"], "name": m["name"], "role": m["role"], "arch": m["arch"],
                              "test_wga": test.get("worst_group_acc"), "test_mean_acc": test.get("mean_acc"),
                              "path": m["path"], "sha256": m["sha256"][:12]})
    if meta.get("class_names"):
        q = lambda sql, args=(): project.db.execute(sql, list(args)).fetchone()[0]
        out["candidates"] = {"total": q("select count(*) from candidates"),
                             "scored": q("select count(*) from candidates where psi is not null and score_model_id = ?",
                                         [meta.get("active_erm_model") or -1]),
                             "stale": stale_scores(project)}
    for r in project.runs():
        out["runs"].append({"id": r["id"], "stage": r["stage"], "status": r["status"], "started_at": r["started_at"],
                            "seconds": r["seconds"], "error": r["error"]})
    return out


# ---------------------------------------------------------------------------------------------
# Generation and pruning stages (paper §4.1-4.2).

def select(project: Project, cfg=None):
    from .method.selection import SelectionConfig, select as _select

    cfg = cfg or SelectionConfig()
    with project.recorded_run("select", asdict(cfg)):
        return _select(project, cfg)


def invert(project: Project, labels=None, cfg=None, *, inpainter=None, on_progress=None, cancel=None) -> dict[int, int]:
    from .pipeline.generation import invert_classes
    from .method.inversion import InversionConfig

    labels = list(range(len(project.class_names))) if labels is None else list(labels)
    bad = [c for c in labels if not 0 <= int(c) < len(project.class_names)]
    if bad:  # checked before a model is loaded
        from .project.errors import ConfigError

        raise ConfigError(f"class {bad[0]}: the project has classes 0..{len(project.class_names) - 1} "
                          f"({', '.join(project.class_names)})")
    inpainter, cfg = inpainter or load_inpainter(project), cfg or InversionConfig()
    # the inversion images' object masks: the loss is counted inside them, or the model repaints windows around them
    masker = load_masker(project) if cfg.region == "mask" or inpainter.crop_scale else None
    with project.recorded_run("invert", {"labels": labels, "inversion": asdict(cfg), "model": inpainter.model_ref,
                                         "masker": masker.name if masker else None}):
        return invert_classes(project, inpainter, labels, cfg, on_progress=on_progress, cancel=cancel, masker=masker)


def compute_masks(project: Project, *, masker=None, labels=None, on_progress=None, cancel=None,
                  device: Optional[str] = None, engine=None, name: Optional[str] = None,
                  options: Optional[dict] = None) -> dict[str, int]:
    """The masks of the selected source images. ``engine`` (default: the project's setting): with Ray, the workers
    load the masker (``name``/``options``, default the project's) on the GPU each reserves; this process only writes."""
    from .pipeline.generation import compute_selected_masks

    engine = engine or engine_config(project)
    if masker is None:
        masker = remote(project, name, options, device) if engine.kind == "ray" else load_masker(project, name, options,
                                                                                                 device=device)
    if engine.kind == "ray":  # a device the workers cannot use is refused before anything is recorded
        from .pipeline.engines import worker_device

        worker_device(engine, masker.device)
    with project.recorded_run("mask", {"masker": masker.name, "params": masker.params(), "labels": labels,
                                       "engine": engine.kind}):
        return compute_selected_masks(project, masker, labels, on_progress=on_progress, cancel=cancel, engine=engine)


def refind(project: Project, *, masker=None, on_progress=None, cancel=None, device: Optional[str] = None) -> int:
    """The object found again in each generated image of a langsam project (the queue's *object lost* signal)."""
    from .pipeline.generation import refind_objects

    masker = masker or load_masker(project, "langsam", device=device)
    with project.recorded_run("refind", {"masker": masker.name, "params": masker.params()}):
        return refind_objects(project, masker, on_progress=on_progress, cancel=cancel)


def remote(project: Project, name: Optional[str] = None, options: Optional[dict] = None, device: Optional[str] = None):
    """The project's masker (or ``name`` with ``options``) as the Ray workers will build it (``RemoteMasker``), on
    ``device`` (default: the project's; a worker's GPU is the one it reserved)."""
    from .method.masking import remote_masker

    s = pipeline_settings(project)
    name = name or s["masker"]
    opts = options if options is not None else (s["masker_options"] if name == s["masker"] else {})
    return remote_masker(name, opts, project, compute_device(project, device))


def generate(project: Project, pairs=None, cfg=None, inpaint=None, *, inpainter=None, masker=None,
             on_progress=None, cancel=None, engine=None) -> dict:
    """Generate the pending candidates; ``engine`` (an ``engines.EngineConfig``) defaults to the
    project's setting (local unless set): with Ray, the workers load the model, not this process."""
    from .pipeline.generation import GenerationConfig, generate as _generate
    from .method.inpainting import InpaintConfig

    engine = engine or engine_config(project)
    inpaint = inpaint or InpaintConfig(model=pipeline_settings(project)["inpaint_model"])
    if engine.kind == "local":
        inpainter = inpainter or load_inpainter(project, inpaint.model, inpaint.device, inpaint.dtype)
    # on Ray the workers mask what is not masked yet (``ddb mask`` may have done it all): no masker model here
    masker = masker or (remote(project, device=inpaint.device) if engine.kind == "ray" else
                        load_masker(project, device=inpaint.device))
    cfg = cfg or GenerationConfig()
    with project.recorded_run("generate", {"pairs": pairs, "generation": asdict(cfg), "inpaint": asdict(inpaint),
                                           "masker": masker.name, "engine": engine.kind}):
        return _generate(project, inpainter, masker, pairs, cfg, inpaint, on_progress=on_progress, cancel=cancel,
                         engine=engine)


def score(project: Project, n_steps: int = 50, internal_batch_size: Optional[int] = None, rescore: bool = False,
          on_progress=None, cancel=None, engine=None, device: Optional[str] = None, ig_dtype: str = "float32") -> int:
    """ψ and ρ of every unscored candidate (with ``rescore``, also of those scored by another model);
    ``engine`` and ``device`` default to the project's settings; integrated gradients runs in float32 unless
    ``ig_dtype="float16"`` asks for float16 autocast (CUDA only)."""
    from .pipeline.generation import check_scoring, score as _score

    engine = engine or engine_config(project)
    check_scoring(engine, ig_dtype, compute_device(project, device))  # a bad choice is refused before anything is recorded
    with project.recorded_run("score", {"n_steps": n_steps, "rescore": rescore, "engine": engine.kind,
                                        "device": device, "ig_dtype": ig_dtype}):
        return _score(project, n_steps=n_steps, internal_batch_size=internal_batch_size, rescore=rescore,
                      on_progress=on_progress, cancel=cancel, engine=engine, device=device, ig_dtype=ig_dtype)


def stale_scores(project: Project) -> int:
    """Candidates scored by another model than the active ERM model (``score(..., rescore=True)`` fixes them)."""
    from .curation.decisions import stale_scores as _stale

    return _stale(project)


def prune(project: Project, Psi: Optional[dict] = None, P: Optional[dict] = None,
          reset: bool = False, source: str = "api", who: str = "user") -> tuple[dict, dict]:
    """Save any given thresholds (after ``reset``: back to the computed defaults first); return
    (thresholds, per-direction counts). Every change is an undoable action of the audit log, by ``who``."""
    from .curation.decisions import reset_thresholds, set_thresholds, summary, thresholds

    if reset:
        reset_thresholds(project, source=source, who=who)
    th = set_thresholds(project, Psi, P, source=source, who=who) if (Psi or P) else thresholds(project)
    return th, summary(project, th)


def run_pipeline(project: Project, config: dict, *, on_progress=None, cancel=None) -> dict:
    """select → invert → mask → generate → score → prune, from one config dict (see README).

    Every stage skips finished work, so running the same config again resumes.
    """
    from .pipeline.run_config import read_run_config

    sel, inv, gen, inp, pairs, masker_cfg = read_run_config(project, config)
    out = {"selection": select(project, sel).__dict__}
    inpainter = load_inpainter(project, inp.model, inp.device, inp.dtype)
    if config.get("inversion", {}) is not None and sel.ti_size > 0:
        out["tokens"] = invert(project, cfg=inv, inpainter=inpainter, on_progress=on_progress, cancel=cancel)
    masker = load_masker(project, masker_cfg.pop("name", None), masker_cfg or None)
    out["generation"] = generate(project, pairs, gen, inp, inpainter=inpainter, masker=masker,
                                 on_progress=on_progress, cancel=cancel)
    out["scored"] = score(project, **config.get("scoring", {}), on_progress=on_progress, cancel=cancel)
    pr = config.get("prune", {})
    th, counts = prune(project, {int(k): v for k, v in (pr.get("Psi") or {}).items()},
                       {int(k): v for k, v in (pr.get("P") or {}).items()})
    out["thresholds"], out["pruning"] = th, counts
    return out


# -- retraining, baselines, reports -------------------------------------------------------------

def retrain(project: Project, cfg=None, *, report: bool = True, on_progress=None, cancel=None) -> dict:
    """Retrain on D_train ∪ accepted candidates (one model per seed) and store the report against ERM."""
    from .method.retraining import RetrainConfig, retrain as _retrain

    cfg = cfg or RetrainConfig()
    res = _retrain(project, cfg, on_progress=on_progress, cancel=cancel)
    out = {"model_ids": res.model_ids, "summary": res.summary(), "n_generated": res.details["n_generated"],
           "per_direction": res.details["per_direction"], "gammas": res.details["gammas"],
           "gamma_search": res.details.get("gamma_search"), "warnings": res.details.get("warnings", [])}
    if report:
        t = cfg.train
        gammas = "/".join(f"{g:g}" for g in out["gammas"]) if out["gammas"] else "—"
        recipe = {"epochs": t.epochs, "lr": t.lr, "batch_size": t.batch_size, "evals_per_epoch": t.evals_per_epoch,
                  "gammas": out["gammas"], "gen_ratio": cfg.gen_ratio, "init": cfg.init, "seeds": list(cfg.seeds),
                  "kept_checks": [{"model_id": r.model_id, "epoch": r.best_epoch,
                                   "checks": len(r.history)} for r in res.results]}
        out["report"] = make_report(project, res.model_ids, title=(
            f"{cfg.method.upper()} retraining: {res.details['n_generated']} generated, {t.epochs} epoch"
            f"{'s' if t.epochs != 1 else ''} at lr {t.lr:g}, γ {gammas}, batch {t.batch_size}"), kind="retrain",
            extra={"gammas": out["gammas"], "gamma_search": out["gamma_search"], "retrain_warnings": out["warnings"],
                   "recipe": recipe})
    return out


def retraining_warnings(project: Project, method: str = "ddb", batch_size: Optional[int] = None) -> list[str]:
    """What to check before retraining on the accepted samples (see ``retraining.small_subset_warnings``)."""
    from .method.retraining import RetrainConfig, accepted_candidates, small_subset_warnings

    return small_subset_warnings(project, accepted_candidates(project, method), batch_size or RetrainConfig().train.batch_size)


def retraining_inputs(project: Project, method: str = "ddb") -> dict[str, int]:
    from .method.retraining import retraining_inputs as _inputs

    return _inputs(project, method)


def baseline(project: Project, name: str, *, seeds=(0,), train: Optional[TrainConfig] = None, jtt=None,
             jtt_grid: Optional[tuple] = None, dfr_fits: int = 20, report: bool = True, on_progress=None,
             cancel=None) -> dict:
    """Run a baseline (jtt | dfr | oracle) on the project's data; returns model ids, summary, report.

    ``jtt_grid`` = (T values, λ_up values): with more than one combination, JTT chooses them on val."""
    from dataclasses import replace as _replace

    from .project.errors import ConfigError
    from .method.baselines import JTTConfig, run_dfr, run_jtt, run_jtt_tuned, run_oracle

    if name == "jtt":
        cfg = _replace(jtt or JTTConfig(train=train or TrainConfig()), seeds=tuple(seeds))
        Ts, lams = jtt_grid or ((), ())
        if len(Ts) > 1 or len(lams) > 1:  # T and λ_up chosen on val (first seed), as the JTT paper does
            res = run_jtt_tuned(project, cfg, Ts or (cfg.jtt_epochs,), lams or (cfg.lambda_up,),
                                on_progress=on_progress, cancel=cancel)
        else:
            res = run_jtt(project, cfg, on_progress=on_progress, cancel=cancel)
    elif name == "dfr":
        res = run_dfr(project, seeds, n_fits=dfr_fits, on_progress=on_progress, cancel=cancel)
    elif name == "oracle":
        res = run_oracle(project, train or TrainConfig(), seeds, on_progress=on_progress, cancel=cancel)
    else:
        raise ConfigError(f"baseline must be jtt, dfr or oracle, got {name!r}")
    out = {"model_ids": res.model_ids, "summary": res.summary(), "group_labels": res.group_labels, "details": res.details}
    if report:
        out["report"] = make_report(project, res.model_ids, title=f"{name.upper()} (group labels: {res.group_labels})",
                                    kind="baseline")
    return out


def make_report(project: Project, model_ids, *, baseline_id: Optional[int] = None, title: str = "report",
                kind: str = "retrain", n_boot: int = 1000, extra: Optional[dict] = None) -> dict:
    """Build and store the report of ``model_ids`` (seeds of one run) against ``baseline_id`` (default: ERM).

    ``extra`` is stored with it (a retraining passes its γ and its γ search)."""
    from .curation.reporting import build_report, save_report

    if baseline_id is None:
        baseline_id = project.active_erm_id
    rep = build_report(project, list(model_ids), baseline_id, title=title, n_boot=n_boot)
    rep.update(extra or {})
    return save_report(project, rep, kind)


def reports(project: Project) -> list[dict]:
    from .curation.reporting import reports as _reports

    return _reports(project)


def load_report(project: Project, report_id: int) -> dict:
    from .curation.reporting import load_report as _load

    return _load(project, report_id)


# -- review and export (what the curation app calls) --------------------------------------------

def review_index(project: Project):
    """The in-memory review model of every candidate (thresholds, filters, details, decisions)."""
    from .curation.review import ReviewIndex

    return ReviewIndex(project)


def export_dataset(project: Project, out: Optional[str] = None, method: str = "all", on_progress=None,
                   cancel=None, force: bool = False) -> dict:
    from .curation.export import export_dataset as _export

    return _export(project, Path(out) if out else None, method=method, on_progress=on_progress, cancel=cancel,
                   force=force)


def reproducibility_bundle(project: Project, out: Optional[str] = None, force: bool = False) -> dict:
    from .curation.export import reproducibility_bundle as _bundle

    return _bundle(project, Path(out) if out else None, force=force)


def preview_tokens(project: Project, n: int = 4, steps: int = 25, seed: int = 0, inpainter=None) -> list[dict]:
    """A few inpaintings per class with its learned token, on random train images of the other classes
    (box masks when the dataset has masks): a quick look at what each token learned."""
    import numpy as np

    from .pipeline.generation import latest_token, object_word
    from .data.imaging import load_mask, load_rgb
    from .method.inpainting import InpaintConfig, prompt_for
    from .method.masking import box_of

    inpainter = inpainter or load_inpainter(project)
    rng = np.random.default_rng(seed)
    out = []
    for label, name in enumerate(project.class_names):
        tok = latest_token(project, label)
        if tok is None:
            continue
        inpainter.load_token(project.project_path(tok["path"]), tok["token"])
        rows = [r for r in project.samples("train", "id, path, label, mask_path") if r["label"] != label]
        pick = [rows[k] for k in rng.choice(len(rows), size=min(n, len(rows)), replace=False)]
        images = [load_rgb(project.dataset_path(r["path"])) for r in pick]
        masks = []
        for r, im in zip(pick, images):
            if r["mask_path"]:
                masks.append(box_of(load_mask(project.dataset_path(r["mask_path"]), im.shape[:2])))
            else:
                h, w = im.shape[:2]
                m = np.zeros((h, w), np.uint8)
                m[h // 4:3 * h // 4, w // 4:3 * w // 4] = 255
                masks.append(m)
        prompt = prompt_for(InpaintConfig().template, object_word(project, label), tok["token"])
        results = inpainter.inpaint(images, masks, [prompt] * len(images), [seed * 1000 + r["id"] for r in pick],
                                    InpaintConfig(steps=steps, batch_size=max(1, len(images))))
        out += [{"label": label, "token": tok["token"], "prompt": prompt, "source": im, "mask": m, "result": res}
                for im, m, res in zip(images, masks, results)]
    return out


def prepare_demo_candidates(project: Project, *, quick: bool = True, on_progress=None, cancel=None) -> dict:
    """ERM (if none) → selection → tokens → masks → candidates → scores on the demo (``quick``: the
    app's preset, a few dozen candidates per direction, reviewable in minutes). Stage seconds."""
    from .demo.pipeline import DemoPipelineConfig, prepare

    times: dict = {}
    prepare(project, DemoPipelineConfig.app() if quick else DemoPipelineConfig(), times, on_progress, cancel)
    return times


def compute_map(project: Project, method: str = "pca", on_progress=None, cancel=None,
                device: Optional[str] = None) -> dict:
    """The map of the candidates: the active ERM model's features of every candidate and source in 2-D."""
    from .curation.candidate_map import MapConfig, compute_map as _compute

    return _compute(project, MapConfig(method=method), on_progress=on_progress, cancel=cancel, device=device)


def load_map(project: Project, method: Optional[str] = None):
    from .curation.candidate_map import load_map as _load

    return _load(project, method)


# -- SCGS (the second method, on the same core) ---------------------------------------------------

def scgs_select(project: Project, cfg=None, device: Optional[str] = None) -> dict:
    from .method.scgs import SCGSConfig, select_scgs

    return select_scgs(project, cfg or SCGSConfig(), device=device)


def scgs_generate(project: Project, cfg=None, inpaint=None, *, inpainter=None, on_progress=None, cancel=None) -> dict:
    from .method.inpainting import InpaintConfig
    from .method.scgs import SCGSConfig, generate_scgs

    inpaint = inpaint or InpaintConfig(model=pipeline_settings(project)["inpaint_model"])
    inpainter = inpainter or load_inpainter(project, inpaint.model, inpaint.device, inpaint.dtype)
    return generate_scgs(project, inpainter, cfg or SCGSConfig(), inpaint, on_progress=on_progress, cancel=cancel)


def jtt_with_scgs(project: Project, jtt=None, *, report: bool = True, on_progress=None, cancel=None) -> dict:
    """JTT+SCGS: the accepted SCGS images join JTT's upweighted training set as ordinary samples."""
    from .method.baselines import JTTConfig, run_jtt
    from .method.retraining import RetrainConfig, accepted_candidates, generated_plan

    jtt = jtt or JTTConfig()
    cands = accepted_candidates(project, "scgs")
    plan = generated_plan(project, RetrainConfig(method="scgs", init="scratch"), cands)
    res = run_jtt(project, jtt, on_progress=on_progress, cancel=cancel, extra=plan, role="jtt+scgs")
    out = {"model_ids": res.model_ids, "summary": res.summary(), "group_labels": res.group_labels,
           "details": {**res.details, "scgs_images": len(cands)}}
    if report:
        out["report"] = make_report(project, res.model_ids, title=f"JTT+SCGS ({len(cands)} SCGS images)", kind="baseline")
    return out


def regenerate_candidate(project: Project, candidate_id: int, mask, *, inpainter=None, steps: int = 25,
                         guidance: float = 7.5, n_steps: int = 50) -> int:
    """Inpaint one candidate's source again with a user-drawn mask (255 = repaint); scored at once."""
    from .pipeline.regenerate import regenerate_with_mask
    from .method.inpainting import InpaintConfig

    model = pipeline_settings(project)["inpaint_model"]
    inpainter = inpainter or load_inpainter(project, model)
    return regenerate_with_mask(project, candidate_id, mask, inpainter, InpaintConfig(model=model, steps=steps,
                                                                                     guidance=guidance, batch_size=1),
                                n_steps=n_steps)
