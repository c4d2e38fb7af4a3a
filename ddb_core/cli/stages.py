"""The method's steps on a project: ``ddb select``, ``invert``, ``mask``, ``refind``, ``generate``, ``score``, and
``ddb run`` (all of them from one config).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..project.errors import ConfigError
from .common import command, _add_project, _add_device_args, _device, _add_masker_args, _masker_options, _print_pruning, _open


# The method's steps on a project.


def _select_args(p):
    from ..method.selection import TI_SOURCES, SelectionConfig

    sc = SelectionConfig()
    _add_project(p)
    p.add_argument("--k", type=float, nargs="+", default=None, metavar="K",
                   help=f"source images per class: one count (>= 1) or fraction (< 1) for every class, or one count per "
                        f"class in class order (default: {sc.k:g})")
    p.add_argument("--k-total", type=int, default=0, metavar="N",
                   help="instead of --k: N source images in all, as even over the classes as their sizes allow (a "
                        "small class gives all it has, the others the rest)")
    p.add_argument("--ti-size", type=int, default=sc.ti_size, help="inversion images per class (default: %(default)s)")
    p.add_argument("--ti-source", default=sc.ti_source, choices=list(TI_SOURCES),
                   help="high_loss: highest-loss train images (no group labels); random: a seeded random sample of the "
                        "class's train images (no group labels); val_minority: val images of the class's minority group "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=sc.seed, help="seed of --ti-source random (default: %(default)s)")


@command("select", "choose D_i (lowest-loss train images per class), the inversion set, and compute Psi_i", _select_args)
def _select(a, progress):
    from .. import api
    from ..method.selection import SelectionConfig

    project = _open(a)
    if a.k_total and a.k is not None:
        raise ConfigError("give --k or --k-total, not both")
    ks = a.k or [SelectionConfig().k]
    per_class = len(ks) > 1
    if per_class and any(k != int(k) or k < 0 for k in ks):
        raise ConfigError(f"--k with one value per class takes whole counts >= 0, got {' '.join(f'{k:g}' for k in ks)}")
    if per_class and len(ks) != len(project.class_names):
        raise ConfigError(f"--k: {len(ks)} counts for {len(project.class_names)} classes "
                          f"({', '.join(project.class_names)}); give one per class, in class order, or one for all")
    res = api.select(project, SelectionConfig(k=ks[0] if not per_class else SelectionConfig().k,
                                              k_per_class=tuple(int(k) for k in ks) if per_class else (),
                                              k_total=a.k_total, ti_size=a.ti_size, ti_source=a.ti_source, seed=a.seed))
    for label, name in enumerate(project.class_names):
        print(f"{name}: {res.sources[label]} source images, {res.inversion[label]} inversion images, "
              f"Psi = {res.Psi[label]:.4f} (Eq. 3)")
    return 0


def _invert_args(p):
    from ..method.inversion import InversionConfig

    ic = InversionConfig()
    _add_project(p)
    p.add_argument("--model", help="diffusers inpainting model (hub id or folder; default: the project's)")
    p.add_argument("--classes", type=int, nargs="+", help="class indices (default: all)")
    p.add_argument("--steps", type=int, default=ic.steps, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=ic.lr, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=ic.batch_size, help="default: %(default)s")
    p.add_argument("--seed", type=int, default=ic.seed, help="default: %(default)s")
    p.add_argument("--region", choices=("mask", "image"), default=ic.region,
                   help="where the loss is counted: inside each image's object mask from the project's masker "
                        "(the token learns the object, not its background) or the whole image (default: %(default)s)")
    p.add_argument("--object-share", type=float, default=ic.object_mask_share,
                   help="region mask: the share of samples for which the UNet is given the object's own mask "
                        "instead of the mask generation repaints (default: %(default)s)")
    _add_device_args(p, dtype=True)  # the learned row is float32 in every case


@command("invert", "textual inversion: learn one token per class on the inpainting model", _invert_args)
def _invert(a, progress):
    from .. import api
    from ..method.inversion import InversionConfig

    project = _open(a)
    for c in a.classes or []:  # before the model loads
        if not 0 <= c < len(project.class_names):
            raise ConfigError(f"class {c}: the project has classes 0..{len(project.class_names) - 1} "
                              f"({', '.join(project.class_names)})")
    cfg = InversionConfig(steps=a.steps, lr=a.lr, batch_size=a.batch_size, seed=a.seed, region=a.region,
                          object_mask_share=a.object_share)
    ids = api.invert(project, a.classes, cfg, inpainter=api.load_inpainter(project, a.model, _device(a, project), a.dtype),
                     on_progress=progress)
    progress.close()
    for label, tid in ids.items():
        row = project.db["tokens"].get(tid)
        print(f"{project.class_names[label]}: {row['token']} -> {row['path']} (sha256 {row['sha256'][:12]})")
    return 0


def _mask_args(p):
    _add_project(p)
    _add_masker_args(p)
    _add_device_args(p)
    _add_engine_args(p)


@command("mask", "compute the masks of the selected images with a masking backend", _mask_args)
def _mask(a, progress):
    from .. import api

    from ..pipeline.components import load_masker

    project = _open(a)
    masker, opts, device = None, _masker_options(a), _device(a, project)
    engine = _engine(a, project)
    if engine.kind != "local":
        print(f"engine: {engine.describe()}")
    if a.masker:  # built (and its options checked) first; the project keeps them only once the masks are made
        masker = api.remote(project, a.masker, opts, device) if engine.kind == "ray" else load_masker(
            project, a.masker, opts, device=device)
    counts = api.compute_masks(project, masker=masker, on_progress=progress, device=device, engine=engine)
    if a.masker:
        api.set_pipeline_settings(project, masker=a.masker, masker_options=opts)
    progress.close()
    print(f"masks: {counts.get('ok', 0)} found, {counts.get('no_detection', 0)} with no detection")
    return 0


def _refind_args(p):
    _add_project(p)
    _add_device_args(p)


@command("refind", "find the object again in each generated image of a langsam project (the queue's 'object lost')",
         _refind_args)
def _refind(a, progress):
    from .. import api

    project = _open(a)
    n = api.refind(project, on_progress=progress, device=_device(a, project))
    progress.close()
    lost = project.db.execute("select count(*) from refinds where score = 0").fetchone()[0]
    print(f"looked again at {n} candidates; the object is not found in {lost} of all looked at")
    return 0


def _add_engine_args(p):
    p.add_argument("--engine", choices=["local", "ray"],
                   help="where the model runs: this process, or a Ray cluster (default: the project's setting, local)")
    p.add_argument("--address", help="ray: a running cluster (auto, or ray://HOST:10001); default: a local Ray started "
                                     "for the run")
    p.add_argument("--workers", type=int, help="ray: actors, each loading the model once (default: 1)")
    p.add_argument("--gpus-per-worker", type=float, help="ray: GPUs per actor (default: 0; 1 = one model per GPU)")
    p.add_argument("--cpus-per-worker", type=float, help="ray: CPUs per actor, its torch threads (default: 1)")
    p.add_argument("--save-engine", action="store_true",
                   help="keep these engine options as the project's (the app's Pipeline screen uses them too)")


def _engine(a, project):
    """The engine of this command: the options given over the project's setting; saved with --save-engine."""
    from dataclasses import asdict

    from .. import api
    from ..pipeline.engines import EngineConfig

    base = asdict(api.engine_config(project))
    given = {"kind": a.engine, "address": a.address, "workers": a.workers, "gpus_per_worker": a.gpus_per_worker,
             "cpus_per_worker": a.cpus_per_worker}
    engine = EngineConfig.from_dict({**base, **{k: v for k, v in given.items() if v is not None}})
    if engine.kind == "local" and any(given[k] is not None for k in given if k != "kind"):
        raise ConfigError("--address, --workers, --gpus-per-worker and --cpus-per-worker belong to --engine ray")
    if a.save_engine:
        api.set_pipeline_settings(project, engine=asdict(engine))
    return engine


def _generate_args(p):
    from ..method.inpainting import InpaintConfig

    ip = InpaintConfig()
    _add_project(p)
    _add_masker_args(p)
    p.add_argument("--model", help="diffusers inpainting model (hub id or folder; saved as the project's)")
    p.add_argument("--pairs", nargs="+", help="directions as i:j (default: both directions of a binary dataset)")
    p.add_argument("--template", default=ip.template, help="prompt template (default: %(default)r)")
    p.add_argument("--steps", type=int, default=ip.steps, help="default: %(default)s")
    p.add_argument("--guidance", type=float, default=ip.guidance, help="default: %(default)s")
    p.add_argument("--strength", type=float, default=ip.strength, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=ip.batch_size, help="default: %(default)s")
    p.add_argument("--no-paste-back", action="store_true", help="keep the model's pixels outside the mask too")
    p.add_argument("--no-tokens", action="store_true", help="use the plain prompt even when tokens were learned")
    p.add_argument("--seed", type=int, default=0, help="base seed; each candidate records its own (default: %(default)s)")
    _add_device_args(p, dtype=True)
    p.add_argument("--resolution", type=int, default=None,
                   help="longer side of an image at the model, a multiple of 8 (default: the model's own, 512 for SD2)")
    _add_engine_args(p)


@command("generate", "inpaint the selected images with the other class's token (resumable)", _generate_args)
def _generate(a, progress):
    from .. import api
    from ..pipeline.generation import GenerationConfig
    from ..method.inpainting import InpaintConfig

    project = _open(a)
    pairs = None
    if a.pairs:
        try:
            pairs = [tuple(int(x) for x in p.split(":")) for p in a.pairs]
        except ValueError:
            raise ConfigError(f"--pairs expects i:j items, got {' '.join(a.pairs)}") from None
    model = a.model or api.pipeline_settings(project)["inpaint_model"]
    inpaint = InpaintConfig(model=model, template=a.template, steps=a.steps, guidance=a.guidance, strength=a.strength,
                            batch_size=a.batch_size, paste_back=not a.no_paste_back,
                            device=_device(a, project) or "auto", dtype=a.dtype or "auto",
                            resolution=a.resolution)
    if a.masker or a.model:
        api.set_pipeline_settings(project, masker=a.masker, masker_options=_masker_options(a), inpaint_model=a.model)
    engine = _engine(a, project)
    if engine.kind != "local":
        print(f"engine: {engine.describe()}")
    res = api.generate(project, pairs, GenerationConfig(seed=a.seed, use_tokens=not a.no_tokens), inpaint,
                       on_progress=progress, engine=engine)
    progress.close()
    for d, c in res.items():
        print(f"{d}: {c['candidates']} candidates from {c['sources']} sources ({c['no_detection']} with no detection)")
    return 0


def _score_args(p):
    _add_project(p)
    p.add_argument("--n-steps", type=int, default=50, help="IG steps (default: %(default)s)")
    p.add_argument("--internal-batch-size", type=int, default=None,
                   help="IG rows (images x steps) per pass; bounds memory (default: 64 at 64 px, 16 at 224 px)")
    p.add_argument("--rescore", action="store_true",
                   help="also recompute the scores computed by another ERM model than the active one (stale scores)")
    p.add_argument("--ig-dtype", default="float32", metavar="float32|float16",
                   help="integrated gradients' precision: float32 on every device (default), or float16 autocast in "
                        "the classifier's forward (CUDA only; its effect on rho: docs/benchmarks.md, ig-precision)")
    _add_device_args(p)
    _add_engine_args(p)


@command("score", "compute psi and rho (integrated gradients in the mask) of every unscored candidate", _score_args)
def _score(a, progress):
    from .. import api

    project = _open(a)
    engine = _engine(a, project)
    if engine.kind != "local":
        print(f"engine: {engine.describe()}")
    n = api.score(project, a.n_steps, a.internal_batch_size, rescore=a.rescore, on_progress=progress, engine=engine,
                  device=_device(a, project), ig_dtype=a.ig_dtype)
    progress.close()
    print(f"scored {n} candidates")
    stale = api.stale_scores(project)
    if stale:
        print(f"warning: {stale} candidates hold scores of another ERM model and count as not scored; "
              f"`ddb score --rescore` recomputes them")
    return 0




def _run_args(p):
    from ..pipeline.run_config import RUN_SECTIONS

    _add_project(p)
    p.add_argument("--config", required=True, help="JSON file with sections " + ", ".join(RUN_SECTIONS))


@command("run", "select, invert, mask, generate, score and prune from one JSON config file", _run_args)
def _run_config(a, progress):
    from .. import api

    path = Path(a.config)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"run config {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"run config {path} is not valid JSON: {e}") from None
    project = _open(a)
    res = api.run_pipeline(project, config, on_progress=progress)
    progress.close()
    _print_pruning(project, res["thresholds"], res["pruning"])
    return 0
