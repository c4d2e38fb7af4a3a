"""The demo's model and the benchmarks of single stages: ``ddb train-micro-inpainter`` and ``ddb bench calibrate``,
``masks``, ``precision``, ``ig-precision``, ``inpainter``, ``judges``, ``micro-cost``, ``eye-check``, ``target-
birds``, ``ray``.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import replace
from pathlib import Path

from ..project.errors import ConfigError
from .common import command, _add_project, _open, _no_docs


# The demo's model, and the benchmarks.


def _micro_args(p):
    from ..demo.micro_train import PRESETS, MicroTrainConfig

    m = MicroTrainConfig()
    p.add_argument("--preset", choices=tuple(PRESETS), default="corpus",
                   help="corpus: the rendered corpus at 32-px latents (default); crop: windows of twice the mask's box "
                        "cut from the corpus, 16-px latents; crop-wide: crop with a UNet half as wide again; crop-unit: "
                        "crop with its latents scaled to unit variance; crop-wide-unit: both; crop-unit-48: crop-unit on "
                        "48-px windows (24-px latents); crop-unit-gan: crop-unit with its decoder trained again with a patch "
                        "discriminator; v1: the "
                        "first micro model's recipe (16-px latents, a benchmark's train split via --data, 6500 UNet steps)")
    p.add_argument("--vae-from", metavar="DIR", help="use the VAE of this diffusers model folder (trained with the same "
                                                     "VAE recipe) instead of training one: the VAE phase is skipped")
    p.add_argument("--unet-from", metavar="DIR", help="use the UNet and text encoder of this diffusers model folder "
                                                      "(the same recipe; give the same folder to --vae-from) instead of "
                                                      "training them: the UNet phase is skipped")
    p.add_argument("--data", help="train on this demo benchmark folder's train split (from `ddb demo-data`) instead of "
                                  "the rendered corpus (both kinds of bird on both places, seeds no benchmark uses)")
    p.add_argument("--corpus", type=int, help=f"corpus images to render (default: {m.corpus})")
    p.add_argument("--out", required=True, help="output folder (diffusers format); checkpoints go to OUT/checkpoints and resume")
    p.add_argument("--vae-steps", type=int, help=f"default: {m.vae_steps}")
    p.add_argument("--unet-steps", type=int, help=f"default: {m.unet_steps} ({MicroTrainConfig.v1().unet_steps} with v1)")
    p.add_argument("--unet-restart-steps", type=int,
                   help="UNet step where the cosine learning rate restarts (ignored unless below --unet-steps; "
                        f"default: {m.unet_restart_steps})")
    p.add_argument("--batch-size", type=int, help=f"UNet phase batch size (default: {m.batch_size})")
    p.add_argument("--checkpoint-every", type=int, help=f"steps (default: {m.checkpoint_every})")
    p.add_argument("--seed", type=int, default=m.seed, help="default: %(default)s")
    p.add_argument("--device", default=m.device, help="auto | cpu | cuda[:N] (default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="a few steps at tiny sizes (for tests; the result is noise)")


@command("train-micro-inpainter", "train the demo's micro Stable Diffusion inpainting model (diffusers folder) on its "
         "rendered corpus", _micro_args)
def _train_micro(a, progress):
    from ..demo.micro_train import PRESETS, MicroTrainConfig, train_micro_inpainter

    if a.preset == "v1" and not a.data:
        raise ConfigError("--preset v1 trains on a demo benchmark's train split: give --data")
    base = MicroTrainConfig.smoke() if a.smoke else PRESETS[a.preset]()
    over = {"seed": a.seed, "device": a.device}
    if a.vae_from:
        over["vae_from"] = a.vae_from
    if a.unet_from:
        over["unet_from"] = a.unet_from
    if not a.smoke:
        given = {k: getattr(a, k) for k in ("corpus", "vae_steps", "unet_steps", "batch_size", "checkpoint_every",
                                            "unet_restart_steps") if getattr(a, k) is not None}
        over.update(given)
    out = train_micro_inpainter(a.data, a.out, replace(base, **over), on_progress=progress)
    progress.close()
    print(f"wrote {out} (use it with `ddb invert --model {out}` or `ddb generate --model {out}`)")
    return 0


def _calibrate_args(p):
    from ..bench.calibration import RECIPES

    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: 0 1 2")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), metavar="ARCH:EPOCHS",
                   help="ERM recipes to compare on val, cheapest first (default: %(default)s)")
    p.add_argument("--first-qualifying", action="store_true",
                   help="stop at the first recipe that meets every val target (the recipes are listed cheapest first)")
    p.add_argument("--workdir", default="projects/bench", help="where the per-seed projects go (default: %(default)s)")
    _no_docs(p)


@command("bench calibrate", "demo calibration: the ERM recipe chosen on val (ERM and oracle over seeds) → docs/benchmarks.md",
         _calibrate_args)
def _bench_calibrate(a, progress):
    from ..bench.calibration import DOC, calibrate_demo, calibration_markdown

    res = calibrate_demo(a.seeds, a.workdir, a.recipes, doc=None if a.no_docs else DOC,
                         json_path=None if a.no_docs else Path("docs/bench/calibration.json"), on_progress=progress,
                         first_qualifying=a.first_qualifying)
    progress.close()
    print(calibration_markdown(res))
    return 0


def _masks_args(p):
    _add_project(p)
    p.add_argument("--n", type=int, default=200, help="train images per seed (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: 0 1 2")
    _no_docs(p)


@command("bench masks", "mean IoU of the offline masking backends against the demo's ground-truth masks", _masks_args)
def _bench_masks(a, progress):
    from ..bench.masks import DOC, bench_masks

    res = bench_masks(a.project, a.n, a.seeds, doc=None if a.no_docs else DOC,
                      json_path=None if a.no_docs else Path("docs/bench/masks.json"))
    for name, r in res["backends"].items():
        print(f"{name}: mean IoU {r['median_mean_iou']:.3f} ({r['images_per_s_median']:.1f} images/s)")
    return 0


def _precision_args(p):
    p.add_argument("--model", default="data/models/micro-sd-inpainting", help="diffusers folder or hub id (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: %(default)s)")
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                   help="precisions to run (float16 needs CUDA; default: %(default)s)")
    p.add_argument("--steps", type=int, default=40, help="inversion steps per run (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs per precision, for the median (default: %(default)s)")
    _no_docs(p)


@command("bench precision", "textual inversion in half precision: finite loss, float32 row and optimiser state, speed",
         _precision_args)
def _bench_precision(a, progress):
    from ..bench.precision import DOC, bench_precision, precision_markdown

    res = bench_precision(a.model, a.device, tuple(a.dtypes), a.steps, a.repeats, doc=None if a.no_docs else DOC,
                          json_path=None if a.no_docs else Path("docs/bench/precision.json"))
    print(precision_markdown(res))
    return 0


def _ig_precision_args(p):
    p.add_argument("--project", default="projects/demo", help="a scored project (default: %(default)s)")
    p.add_argument("--limit", type=int, default=80, help="candidates, the first scored in id order (default: %(default)s)")
    p.add_argument("--n-steps", type=int, default=50, help="IG steps (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: %(default)s)")
    _no_docs(p)


@command("bench ig-precision", "integrated gradients in float16 autocast against float32: the change of rho and psi, "
         "and of the automatic decisions", _ig_precision_args)
def _bench_ig_precision(a, progress):
    from ..bench.ig_precision import DOC, bench_ig_precision, ig_precision_markdown

    if a.limit < 1 or a.n_steps < 1:
        raise ConfigError("--limit and --n-steps must be at least 1")
    res = bench_ig_precision(a.project, a.limit, a.n_steps, a.device, doc=None if a.no_docs else DOC,
                             json_path=None if a.no_docs else Path("docs/bench/ig-precision.json"))
    print(ig_precision_markdown(res))
    return 0


def _inpainter_args(p):
    p.add_argument("--model", default="data/models/micro-sd-inpainting", help="diffusers folder or hub id (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: 0 1 2")
    p.add_argument("--n", type=int, default=48, help="val images per direction, the first in id order (default: %(default)s)")
    p.add_argument("--ti-size", type=int, default=30, help="textual-inversion images per class (default: %(default)s)")
    p.add_argument("--ti-steps", type=int, default=400, help="textual-inversion steps per class (default: %(default)s)")
    p.add_argument("--ti-source", choices=("high_loss", "random", "val_minority"), default="high_loss",
                   help="which images the tokens learn from: the highest-loss train images under the demo's ERM, random "
                        "train images, or val images of the class's minority group (default: %(default)s)")
    p.add_argument("--ti-region", choices=("mask", "image"), default="mask",
                   help="textual inversion's loss inside each image's mask or over the whole image (default: %(default)s)")
    p.add_argument("--ti-shape", default="object", help="the mask textual inversion counts its loss in (default: %(default)s, the object itself, as `ddb invert` does)")
    p.add_argument("--shapes", nargs="+", default=["object+8px", "box"], metavar="SHAPE",
                   help="repaint masks to measure: object, object+Npx, box (default: %(default)s)")
    p.add_argument("--ti-repaint", help="the mask the UNet is given during textual inversion (default: the --ti-shape "
                                        "mask itself; `ddb invert` gives it the project's repaint mask, e.g. box)")
    p.add_argument("--ti-object-share", type=float, default=0.0,
                   help="with --ti-repaint: the share of samples for which the UNet is given the --ti-shape mask "
                        "instead (default: %(default)s)")
    p.add_argument("--grid-shape", help="the mask shape of the grid (default: the demo's)")
    p.add_argument("--steps", type=int, default=25, help="denoising steps (default: %(default)s)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance (default: %(default)s)")
    p.add_argument("--crop-scale", type=float, help="the repaint window, a multiple >= 1 of the longer side of the mask's "
                                                    "box, in textual inversion and generation alike (default: the model "
                                                    "folder's inpaint.json)")
    p.add_argument("--oracle", action="store_true",
                   help="also the class swap read by a whole-image group-balanced classifier (the earlier judge)")
    p.add_argument("--section", default="inpainter",
                   help="docs/benchmarks.md section and the name of its JSON and grid (default: %(default)s)")
    p.add_argument("--label", help="the section's title (default: the model)")
    p.add_argument("--workdir", default="projects/bench", help="where the judge's project goes (default: %(default)s)")
    p.add_argument("--device", default="auto", help="where the inpainting model runs: auto, cpu, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                   help="the inpainting model's precision (default: %(default)s: float16 on CUDA, float32 on the CPU)")
    p.add_argument("--out-dir", help="write the result's JSON and grid into this folder instead of docs/ (a run on "
                                     "another machine); `--from-json` writes its docs section later")
    p.add_argument("--eye-set", metavar="DIR", help="also write the grid's candidates into DIR (a new folder) as a set to "
                                                  "label by eye (`bench eye-check --blind`): the first seed's")
    p.add_argument("--eye-sets", metavar="PREFIX", help="the same for every seed: one new folder per seed, PREFIX-seedS")
    p.add_argument("--model-card", action="store_true", help="also write the model folder's README.md (model card) "
                                                             "with these gates (default: only for section 'inpainter')")
    p.add_argument("--from-json", metavar="JSON", help="write the docs section (and its JSON and grid under docs/) from "
                                                      "the result of an earlier run, without measuring again")
    _no_docs(p)


@command("bench inpainter", "quality gates of the micro inpainting model: target birds seen by the judges, background error",
         _inpainter_args)
def _bench_inpainter(a, progress):
    from ..bench.docs import DOC
    from ..bench.inpainter import bench_inpainter, inpainter_markdown, write_model_card
    from ..method.inpainting import resolve_model_ref

    if a.from_json:
        from ..bench.inpainter import result_to_docs

        res = result_to_docs(Path(a.from_json), DOC, a.label)
        progress.close()
        print(inpainter_markdown(res))
        folder = Path(resolve_model_ref(res["model"]))
        if a.model_card and (folder / "training.json").is_file():
            print(f"model card: {write_model_card(folder, res)}")
        return 0
    if a.crop_scale is not None and not (math.isfinite(a.crop_scale) and a.crop_scale >= 1):
        raise ConfigError(f"--crop-scale: the window is a multiple >= 1 of the mask's box, got {a.crop_scale:g}")
    suffix = "" if a.section == "inpainter" else "-" + a.section.removeprefix("inpainter-")
    out = Path(a.out_dir) if a.out_dir else None
    json_path = out / f"{a.section}.json" if out else None if a.no_docs else Path(f"docs/bench/{a.section}.json")
    grid_path = out / f"micro-inpainter-grid{suffix}.png" if out else \
        None if a.no_docs else Path(f"docs/images/micro-inpainter-grid{suffix}.png")
    res = bench_inpainter(a.model, a.seeds, n=a.n, ti_size=a.ti_size, ti_steps=a.ti_steps, steps=a.steps,
                          guidance=a.guidance, workdir=a.workdir, doc=None if a.no_docs or out else DOC,
                          json_path=json_path, grid_path=grid_path,
                          on_progress=progress, shapes=tuple(a.shapes), ti_source=a.ti_source, ti_region=a.ti_region,
                          ti_shape=a.ti_shape, grid_shape=a.grid_shape, oracle=a.oracle, section=a.section,
                          label=a.label, ti_repaint=a.ti_repaint, ti_object_share=a.ti_object_share, device=a.device,
                          dtype=a.dtype, crop_scale=a.crop_scale, eye_set=Path(a.eye_set) if a.eye_set else None,
                          eye_sets=a.eye_sets)
    progress.close()
    print(inpainter_markdown(res))
    folder = Path(resolve_model_ref(a.model))
    if not a.no_docs and (a.section == "inpainter" or a.model_card) and (folder / "training.json").is_file():
        print(f"model card: {write_model_card(folder, res)}")
    return 0


def _window_args(p):
    from ..bench.window import SCALES

    p.add_argument("--model", default="data/models/micro-sd-inpainting", help="diffusers folder (default: %(default)s)")
    p.add_argument("--scales", type=float, nargs="+", default=list(SCALES),
                   help="windows to measure, each a multiple (>= 1) of the mask box's longer side (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: 0 1 2")
    _no_docs(p)


@command("bench window", "the micro model's repaint window chosen on val: the inpainter's gates and a grid for each window "
                         "around the mask", _window_args)
def _bench_window(a, progress):
    import tempfile

    from ..bench.docs import DOC
    from ..bench.window import bench_window, window_markdown

    bad = [s for s in a.scales if not s >= 1]
    if bad:
        raise ConfigError(f"--scales: each window is a multiple >= 1 of the mask's box, got {bad[0]:g}")
    out = Path(tempfile.mkdtemp(prefix="ddb-window-")) if a.no_docs else DOC.parent
    res = bench_window(a.model, a.scales, a.seeds, out=out, doc=None if a.no_docs else DOC, on_progress=progress)
    progress.close()
    print(window_markdown(res))
    return 0


def _judges_args(p):
    from ..bench.judges import JudgeTrainConfig

    c = JudgeTrainConfig()
    p.add_argument("--out", default="data/judges", help="where the judges go (default: %(default)s, the repository's)")
    p.add_argument("--n", type=int, default=c.n_train, help="training renders (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=c.epochs, help="default: %(default)s")
    from ..bench.judges import NEGATIVE_KINDS, OPTIONAL_NEGATIVE_KINDS

    p.add_argument("--negatives", nargs="+", default=list(c.negatives), choices=NEGATIVE_KINDS + OPTIONAL_NEGATIVE_KINDS,
                   metavar="KIND", help="the kinds of \"no bird\" to train on (default: %(default)s; may add: "
                   + ", ".join(OPTIONAL_NEGATIVE_KINDS) + ")")
    p.add_argument("--check-on", default=None, metavar="DATASET",
                   help="also check the judges on this demo benchmark's val renders (from `ddb demo-data`)")
    p.add_argument("--docs-only", action="store_true",
                   help="write the docs section from the stored judges (OUT/judges.json) without training again")
    _no_docs(p)


@command("bench judges", "train the judges that look at the repainted region (bird present, which bird) on their own renders",
         _judges_args)
def _bench_judges(a, progress):
    import json

    from ..bench.judges import JudgeTrainConfig, check_on_real_renders, load_judges, train_judges

    if a.docs_only:
        rec = json.loads((Path(a.out) / "judges.json").read_text())
    else:
        rec = train_judges(JudgeTrainConfig(n_train=a.n, epochs=a.epochs, negatives=tuple(a.negatives)), a.out,
                          on_progress=progress)
    progress.close()
    real = check_on_real_renders(load_judges(a.out), a.check_on) if a.check_on else None
    if not a.no_docs:
        from ..bench.docs import DOC, write_section
        from ..bench.judges import judges_markdown

        write_section(DOC, "judges", judges_markdown(rec, real))
    print(json.dumps(rec["check"], indent=2))
    if real:
        print(json.dumps(real, indent=2))
    return 0


def _micro_cost_args(p):
    from ..demo.micro_train import PRESETS

    p.add_argument("--preset", choices=tuple(PRESETS), default="corpus", help="default: %(default)s")
    p.add_argument("--unet-steps", type=int, help="the UNet steps of the run projected (default: the preset's)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per phase (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="default: %(default)s")
    _no_docs(p)


@command("bench micro-cost", "what train-micro-inpainter costs on this machine: seconds per step of each phase, and the "
         "projected wall time", _micro_cost_args)
def _bench_micro_cost(a, progress):
    from ..bench.docs import DOC, write_result
    from ..bench.micro_cost import micro_cost, micro_cost_markdown

    res = micro_cost(a.preset, a.steps, a.device, unet_steps=a.unet_steps)
    md = micro_cost_markdown(res)
    if not a.no_docs:
        write_result(res, DOC, Path(f"docs/bench/micro-cost-{a.preset}.json"), f"micro-cost-{a.preset}", md)
    print(md)
    return 0


def _eye_check_args(p):
    p.add_argument("--set", default="data/eye-labels/first-launch", help="the labelled set (default: %(default)s)")
    p.add_argument("--export", metavar="PROJECT", help="instead: copy PROJECT's candidates into --set with an empty "
                                                       "eye column and contact sheets to label from")
    p.add_argument("--blind", nargs="+", metavar="SET", help="instead: mix the candidates of these unlabelled sets in "
                   "one shuffled order into --out, as numbered sheets that do not show which set an image is from, with "
                   "blind.csv to fill")
    p.add_argument("--unblind", metavar="DIR", help="instead: write the labels of DIR/blind.csv back into each set")
    p.add_argument("--out", help="the new folder of --blind's sheets")
    p.add_argument("--seed", type=int, default=0, help="--blind's shuffle (default: %(default)s)")
    p.add_argument("--project", help="also split the kept and pruned candidates of the project the set was made from "
                                     "(at its current thresholds and decisions) by what the eyes saw")
    p.add_argument("--section", default="eye-check", help="docs/benchmarks.md section (default: %(default)s)")
    _no_docs(p)


@command("bench eye-check", "do the judges agree with a person's eyes? A set of candidates labelled by looking at them "
         "(bird / unclear / no) against the judges' target-bird verdicts", _eye_check_args)
def _bench_eye_check(a, progress):
    from ..bench.docs import DOC, write_result
    from ..bench.eye_check import eye_check, eye_check_markdown, export_for_labels

    progress.close()
    if a.blind:
        from ..bench.eye_check import blind_sheets

        if not a.out:
            raise ConfigError("--blind needs --out, a new folder for the sheets")
        out = blind_sheets([Path(s) for s in a.blind], Path(a.out), a.seed)
        print(f"wrote {out}: fill the eye column of blind.csv (bird, unclear, no) from its sheet-*.png without opening "
              f"key.json, then run `ddb bench eye-check --unblind {out}`")
        return 0
    if a.unblind:
        from ..bench.eye_check import unblind

        for folder, counts in unblind(Path(a.unblind)).items():
            print(f"{folder}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return 0
    if a.export:
        from ..project.store import Project

        out = export_for_labels(Project.open(a.export), Path(a.set))
        print(f"wrote {out}: fill the eye column of labels.csv (bird, unclear, no) from its sheet-*.png")
        return 0
    res = eye_check(Path(a.set), project=_open(a) if a.project else None)
    cmd = "python -m ddb_core bench eye-check" + (f" --set {a.set}" if a.set != "data/eye-labels/first-launch" else "") \
        + (f" --project {a.project}" if a.project else "")
    res["pruning_project"] = a.project
    md = eye_check_markdown(res, cmd)
    res["command"] = cmd
    if not a.no_docs:
        write_result(res, DOC, Path(f"docs/bench/{a.section}.json"), a.section, md)
    print(md)
    return 0


def _eye_agreement_args(p):
    from ..bench.eye_check import HELD_OUT_SETS, VAL_SETS

    p.add_argument("--judges", nargs="+", default=["data/judges"], metavar="DIR",
                   help="judges folders (from `bench judges --out`) to compare (default: %(default)s)")
    p.add_argument("--choose-on", nargs="+", default=[str(s) for s in VAL_SETS], metavar="SET",
                   help="labelled sets of candidates made from val images: where judges are chosen (default: %(default)s)")
    p.add_argument("--held-out", nargs="+", default=[str(s) for s in HELD_OUT_SETS], metavar="SET",
                   help="labelled sets not used to choose (default: %(default)s)")
    p.add_argument("--section", default="eye-agreement", help="docs/benchmarks.md section (default: %(default)s)")
    _no_docs(p)


@command("bench eye-agreement", "several judges against every labelled set: how often each agrees with the eyes",
         _eye_agreement_args)
def _bench_eye_agreement(a, progress):
    from ..bench.docs import DOC, write_result
    from ..bench.eye_check import eye_agreement, eye_agreement_markdown

    progress.close()
    res = eye_agreement([Path(j) for j in a.judges], {"val": [Path(s) for s in a.choose_on],
                                                       "held out": [Path(s) for s in a.held_out]})
    cmd = "python -m ddb_core bench eye-agreement --judges " + " ".join(a.judges)
    md = eye_agreement_markdown(res, cmd)
    res["command"] = cmd
    if not a.no_docs:
        write_result(res, DOC, Path(f"docs/bench/{a.section}.json"), a.section, md)
    print(md)
    return 0


def _eye_pool_args(p):
    p.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "SET"),
                   help="a name (a model, a setting) and its labelled sets, e.g. one per generation seed; repeat it to "
                        "set groups side by side")
    p.add_argument("--title", help="the section's title (default: the groups' names)")
    p.add_argument("--section", default="eye-pool", help="docs/benchmarks.md section (default: %(default)s)")
    _no_docs(p)


@command("bench eye-pool", "what the eyes saw, summed over labelled sets (several generation seeds of one model, "
         "groups side by side): birds per direction and per background", _eye_pool_args)
def _bench_eye_pool(a, progress):
    from ..bench.docs import DOC, write_result
    from ..bench.eye_check import eye_pool, eye_pool_markdown

    progress.close()
    groups: dict[str, list[Path]] = {}
    for g in a.group:
        if len(g) < 2:
            raise ConfigError(f"--group {g[0]}: give the group's name, then at least one labelled set")
        if g[0] in groups:
            raise ConfigError(f"--group {g[0]}: the name is given twice")
        groups[g[0]] = [Path(s) for s in g[1:]]
    res = eye_pool(groups)
    cmd = "python -m ddb_core bench eye-pool " + " ".join("--group " + " ".join(g) for g in a.group) \
        + (f" --title {shlex.quote(a.title)}" if a.title else "") + f" --section {a.section}"
    md = eye_pool_markdown(res, cmd, a.title or " against ".join(groups))
    res["command"] = cmd
    if not a.no_docs:
        write_result(res, DOC, Path(f"docs/bench/{a.section}.json"), a.section, md)
    print(md)
    return 0


def _target_birds_args(p):
    _add_project(p)
    p.add_argument("--method", default="ddb", help="ddb | scgs (default: %(default)s)")
    p.add_argument("--section", default="target-birds", help="docs/benchmarks.md section (default: %(default)s)")
    _no_docs(p)


@command("bench target-birds", "what a person sees in a project's candidates: kept and pruned, target birds or not "
         "(the judges of `bench judges`), at the project's current thresholds and decisions", _target_birds_args)
def _bench_target_birds(a, progress):
    import json

    from ..bench.judges import judged_target_birds, target_bird_lines
    from ..bench.docs import DOC, write_result
    from ..curation.decisions import thresholds, thresholds_json
    from ..method.inpainting import model_fingerprint
    from ..project.settings import pipeline_settings

    project = _open(a)
    judged = judged_target_birds(project, a.method)
    s = pipeline_settings(project)
    cmd = f"python -m ddb_core bench target-birds -p {a.project}" + (f" --method {a.method}" if a.method != "ddb" else "")
    tokens = [dict(t, config=json.loads(t["config"])) for t in project.db.query(
        "select label, token, config from tokens where id in (select max(id) from tokens group by label)")]
    res = {"project": str(project.root), "method": a.method, "target_birds": judged, "command": cmd,
           "thresholds": thresholds_json(thresholds(project)), "inpaint_model": s["inpaint_model"],
           "model_sha256": model_fingerprint(s["inpaint_model"]), "masker": s["masker"],
           "masker_options": s["masker_options"],
           "tokens": [{"label": t["label"], "region": t["config"].get("region", "image"),
                       "n_images": t["config"].get("n_images")} for t in tokens],
           "selection": (project.get_meta("bench_demo") or {}).get("selection")}
    md = "\n".join([f"## What a person sees in `{project.root.name}`'s candidates", "",
                     f"Command: `{cmd}` (inpainting model `{s['inpaint_model']}`, weights sha256 "
                     f"{(res['model_sha256'] or '—')[:12]}…; masker {s['masker']} {json.dumps(s['masker_options'])}; tokens "
                     + ", ".join(f"class {t['label']} learned on {t['n_images']} images, loss over the "
                                 + ("object's mask" if t["region"] == "mask" else "whole image") for t in res["tokens"])
                     + "). A target bird: the judges of `ddb bench judges` see a bird of the target class in the "
                       "repainted region. Kept = accepted at the project's current thresholds (Ψ, P) and decisions.", ""]
                    + target_bird_lines(judged)) + "\n"
    if not a.no_docs:
        write_result(res, DOC, Path(f"docs/bench/{a.section}.json"), a.section, md)
    print(md)
    return 0


def _ray_bench_args(p):
    p.add_argument("--repeats", type=int, default=3, help="runs per engine; medians are reported (default: %(default)s)")
    p.add_argument("--n", type=int, default=24, help="source images per class (default: %(default)s)")
    p.add_argument("--workdir", default="projects/bench", help="where the bench project goes (default: %(default)s)")
    _no_docs(p)


@command("bench ray", "candidates per second generated and scored by the local engine and by Ray with 1 and 2 workers",
         _ray_bench_args)
def _bench_ray(a, progress):
    from ..bench.docs import DOC
    from ..bench.ray_engine import bench_ray, ray_markdown

    res = bench_ray(a.workdir, n=a.n, repeats=a.repeats, doc=None if a.no_docs else DOC,
                    json_path=None if a.no_docs else Path("docs/bench/ray.json"), on_progress=progress)
    progress.close()
    print(ray_markdown(res))
    return 0


def _weights_diff_args(p):
    p.add_argument("--run", required=True, help="a train-micro-inpainter run folder (its checkpoint and saved model)")
    p.add_argument("--reference", default="data/models/micro-sd-inpainting",
                   help="the model folder to compare with (default: %(default)s, the shipped model)")
    p.add_argument("--section", default="weights-diff", help="docs/benchmarks.md section (default: %(default)s)")
    _no_docs(p)


@command("bench weights-diff", "a training run's last and saved weights against another model folder's: equal bit for "
         "bit, and the largest difference per part", _weights_diff_args)
def _bench_weights_diff(a, progress):
    from ..bench.docs import DOC, write_result
    from ..demo.micro_weights import weights_diff

    progress.close()
    res = weights_diff(a.run, a.reference)
    res["command"] = f"python -m ddb_core bench weights-diff --run {a.run} --reference {a.reference} --section {a.section}"
    rows = [f"| {part} | {d['tensors']} | {'yes' if d['last_equals_reference'] else 'no'} | {d['last_vs_reference']:.4g} | "
            f"{d['saved_vs_last']:.4g} | {d['saved_vs_reference']:.4g} |" for part, d in res["parts"].items()]
    md = "\n".join([f"## Weights of {a.run} against {a.reference}", "", f"Command: `{res['command']}`. The run's last "
                    "weights are read from its checkpoint and stored in float16 as a model folder stores them; its saved "
                    "weights are its folder's (for a run with an average of its weights, the average).", "",
                    "| part | tensors | last weights = reference, bit for bit | largest difference, last − reference | "
                    "saved − last | saved − reference |", "| --- | ---: | --- | ---: | ---: | ---: |", *rows])
    if not a.no_docs:
        write_result(res, DOC, Path(f"docs/bench/{a.section}.json"), a.section, md)
    print(md)
    return 0
