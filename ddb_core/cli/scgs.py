"""SCGS, the second method: ``ddb scgs select`` and ``ddb scgs generate``."""

from __future__ import annotations


from .common import command, _add_project, _add_device_args, _device, _open


# SCGS, the second method.


def _scgs_select_args(p):
    from ..method.scgs import SCGSConfig

    sc = SCGSConfig()
    _add_project(p)
    p.add_argument("--clusters", type=int, default=sc.clusters, help="k-means clusters per class (default: %(default)s)")
    p.add_argument("--sample-fraction", type=float, default=sc.sample_fraction,
                   help="of the misclassified images (default: %(default)s)")
    p.add_argument("--seed", type=int, default=sc.seed, help="default: %(default)s")
    _add_device_args(p)


@command("scgs select", "misclassified train images per class → k-means → Gaussian sampling", _scgs_select_args)
def _scgs_select(a, progress):
    from .. import api
    from ..method.scgs import SCGSConfig

    project = _open(a)
    rep = api.scgs_select(project, SCGSConfig(clusters=a.clusters, sample_fraction=a.sample_fraction, seed=a.seed),
                          device=_device(a, project))
    for label, r in rep.items():
        name = project.class_names[label]
        if r.get("note"):
            print(f"{name}: {r['note']}")
        else:
            print(f"{name}: {r['misclassified']} misclassified, clusters {r['cluster_sizes']}, {r['sampled']} sampled")
    return 0


def _scgs_generate_args(p):
    from ..method.scgs import SCGSConfig

    sc = SCGSConfig()
    _add_project(p)
    p.add_argument("--model", help="diffusers inpainting model (default: the project's)")
    p.add_argument("--cam-threshold", type=float, default=sc.cam_threshold, help="default: %(default)s")
    p.add_argument("--generate-fraction", type=float, default=sc.generate_fraction,
                   help="generated per class as a share of the other classes' train images (default: %(default)s)")
    p.add_argument("--max-variants", type=int, default=sc.max_variants,
                   help="candidates per sampled image at most (default: %(default)s)")
    p.add_argument("--steps", type=int, default=50, help="denoising steps (default: %(default)s)")
    p.add_argument("--guidance", type=float, default=7.5, help="default: %(default)s")
    p.add_argument("--seed", type=int, default=sc.seed, help="default: %(default)s")
    p.add_argument("--prune", action="store_true", help="also prune SCGS candidates by ψ/ρ (SCGS itself does not prune)")
    _add_device_args(p, dtype=True)


@command("scgs generate", "Grad-CAM++ masks (high region kept) and inpainting with the true class", _scgs_generate_args)
def _scgs_generate(a, progress):
    from .. import api
    from ..curation.decisions import set_method_pruning
    from ..method.inpainting import InpaintConfig
    from ..method.scgs import SCGSConfig

    project = _open(a)
    cfg = SCGSConfig(cam_threshold=a.cam_threshold, generate_fraction=a.generate_fraction, max_variants=a.max_variants,
                     seed=a.seed)
    model = a.model or api.pipeline_settings(project)["inpaint_model"]
    out = api.scgs_generate(project, cfg, InpaintConfig(model=model, steps=a.steps, guidance=a.guidance,
                                                        device=_device(a, project) or "auto", dtype=a.dtype or "auto"),
                            on_progress=progress)
    set_method_pruning(project, "scgs", a.prune)
    progress.close()
    for d, v in out.items():
        print(f"{d}: {v.get('candidates', 0)} SCGS candidates from {v.get('sources', 0)} sampled images")
    print("score them with `ddb score`; SCGS candidates are "
          + ("pruned by ψ/ρ" if a.prune else "kept without pruning (SCGS does not prune)"))
    return 0
