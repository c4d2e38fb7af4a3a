"""Command-line interface: ``python -m ddb_core <command>`` or the ``ddb`` console script.

One table of commands (``TABLE``), in the order of README.md's table: each command is registered
with ``@command(name, help, arguments)``, its handler right under its arguments. Every command has
``--help`` and is documented in README.md (a test checks both). Errors from the core
(``DDBError``) are printed as one message and exit with status 2; Ctrl-C cancels (status 130) and
the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from .errors import Cancelled, ConfigError, DDBError
from .progress import Progress


@dataclass(frozen=True)
class Command:
    name: str  # as typed after `ddb`, e.g. "erm train"
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, "TqdmProgress"], int]


TABLE: dict[str, Command] = {}
GROUPS = {"erm": "train, load or evaluate the ERM classifier",
          "scgs": "SCGS, the second method: misclassified images, clustering, Grad-CAM++ masks",
          "baseline": "baselines on the same data and code: jtt, dfr, oracle",
          "bench": "benchmarks that write figures into docs/"}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated function as the handler of ``ddb NAME``, whose options ``arguments`` adds."""
    def register(run):
        TABLE[name] = Command(name, help, arguments, run)
        return run
    return register


class TqdmProgress:
    """Adapts ``on_progress`` to one tqdm bar per stage, on stderr."""

    def __init__(self) -> None:
        self._bars: dict[str, object] = {}

    def __call__(self, p: Progress) -> None:
        from tqdm import tqdm

        bar = self._bars.get(p.stage)
        if bar is None:
            for other in self._bars.values():
                other.close()
            self._bars = {p.stage: tqdm(total=p.total, desc=p.stage, unit="it", file=sys.stderr, dynamic_ncols=True)}
            bar = self._bars[p.stage]
        bar.total = p.total
        bar.n = p.done
        if p.message:
            bar.set_postfix_str(p.message, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars = {}


def _add_project(p: argparse.ArgumentParser) -> None:
    from .api import DEFAULT_PROJECT

    p.add_argument("-p", "--project", default=DEFAULT_PROJECT,
                   help=f"project folder (default: %(default)s; env DDB_PROJECT changes it)")


def _add_train_args(p: argparse.ArgumentParser, d=None) -> None:
    from .training import TrainConfig

    d = d or TrainConfig()
    p.add_argument("--arch", default=d.arch, help="resnet18 | resnet34 | resnet50 | resnet18_w32 (half width, no ImageNet weights) (default: %(default)s)")
    p.add_argument("--pretrained", action="store_true", help="start from ImageNet weights (must be on disk offline)")
    p.add_argument("--pretrained-weights", default=None, help="path of the ImageNet weights file for --pretrained")
    p.add_argument("--image-size", type=int, default=d.image_size, help="input side in pixels (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    p.add_argument("--optimizer", default=d.optimizer, choices=["adam", "sgd"], help="default: %(default)s")
    p.add_argument("--lr", type=float, default=d.lr, help="default: %(default)s")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="default: %(default)s")
    p.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum (default: %(default)s)")
    p.add_argument("--select-by", default=d.select_by, choices=["auto", "val_wga", "val_acc", "last"],
                   help="epoch selection; auto = val_wga when val has group labels, else val_acc (default: %(default)s)")
    p.add_argument("--evals-per-epoch", type=int, default=d.evals_per_epoch,
                   help="val checks (model-selection points) per epoch, evenly spaced (default: %(default)s)")
    p.add_argument("--no-augment", action="store_true", help="train without random crops and flips")
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--device", default=d.device,
                   help="auto | cpu | cuda[:N] (default: auto = the project's setting, itself auto = CUDA when present)")


def _add_device_args(p: argparse.ArgumentParser, dtype: bool = False) -> None:
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda[:N]: where this command's models run (default: the project's setting, "
                        "itself auto = CUDA when present)")
    if dtype:
        p.add_argument("--dtype", default=None,
                       help="auto (float16 on CUDA, float32 on CPU) | float32 | float16 | bfloat16 (default: the "
                            "project's setting, auto)")
    p.add_argument("--save-device", action="store_true",
                   help="keep --device (and --dtype) as the project's setting: every later command and the app use it")


def _device(a, project) -> Optional[str]:
    """This command's device (None: the project's setting); saved as the project's with --save-device."""
    from . import api

    if a.device is not None:
        from .device import check_device_name

        check_device_name(a.device)
    if getattr(a, "dtype", None) is not None:
        from .device import check_dtype_name

        check_dtype_name(a.dtype)
    if getattr(a, "save_device", False):
        api.set_pipeline_settings(project, device=a.device, dtype=getattr(a, "dtype", None))
    return a.device


def _add_masker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--masker", choices=["langsam", "gradcam", "grabcut", "provided"],
                   help="masking backend (default: the project's; provided when the dataset ships masks, else langsam)")
    p.add_argument("--box-threshold", type=float, help="langsam box threshold (default 0.3)")
    p.add_argument("--text-threshold", type=float, help="langsam text threshold (default 0.25)")
    p.add_argument("--box-choice", choices=["best", "union"], help="langsam: best-scoring box or union of boxes (default best)")
    p.add_argument("--dino", help="langsam: GroundingDINO hub id or folder (default IDEA-Research/grounding-dino-tiny)")
    p.add_argument("--sam", help="langsam: sam_vit_b|l|h or a checkpoint path (default sam_vit_b)")
    p.add_argument("--threshold", type=float, help="gradcam: map threshold in [0, 1] (default 0.5)")
    p.add_argument("--dilate", type=int, help="grow every mask by this many pixels")


def _masker_options(a: argparse.Namespace) -> Optional[dict]:
    if a.masker is None:
        return None
    names = {"langsam": ("box_threshold", "text_threshold", "box_choice", "dino", "sam"), "gradcam": ("threshold",),
             "grabcut": (), "provided": ()}[a.masker]
    opts = {k: getattr(a, k) for k in names if getattr(a, k) is not None}
    if a.dilate is not None:
        opts["dilate_radius"] = a.dilate
    return opts


def _warn_stale(project) -> None:
    from . import api

    n = api.stale_scores(project)
    if n:
        print(f"warning: the active ERM model changed, and the scores of {n} candidates are now stale (they count as "
              f"not scored): run `ddb select` and `ddb score --rescore`", file=sys.stderr)


def _object_prompt(items: Optional[list[str]]):
    """--object-prompt WORD (every class) or CLASS=WORD pairs → str or dict (None when not given)."""
    if not items:
        return None
    if all("=" in x for x in items):
        return dict(x.split("=", 1) for x in items)
    if len(items) == 1:
        return items[0]
    from .errors import ConfigError

    raise ConfigError(f"--object-prompt takes one word for every class or CLASS=WORD pairs, got {' '.join(items)}")


def _class_values(items: Optional[list[str]], flag: str) -> Optional[dict[int, float]]:
    from .errors import ConfigError

    if not items:
        return None
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        try:
            out[int(k)] = float(v)
        except ValueError:
            raise ConfigError(f"{flag} expects CLASS=VALUE items, got {item!r}") from None
        if not sep:
            raise ConfigError(f"{flag} expects CLASS=VALUE items, got {item!r}")
    return out


def _train_config(a: argparse.Namespace, sampler: str = "natural"):
    from .training import TrainConfig

    return TrainConfig(arch=a.arch, pretrained=a.pretrained, pretrained_weights=a.pretrained_weights,
                       image_size=a.image_size, epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer,
                       lr=a.lr, weight_decay=a.weight_decay, momentum=a.momentum, sampler=sampler,
                       select_by=a.select_by, evals_per_epoch=a.evals_per_epoch, augment=not a.no_augment, seed=a.seed,
                       device=a.device)



def _print_status(st: dict) -> None:
    print(f"project {st['name']} at {st['project']}")
    if not st["class_names"]:
        print("  no dataset yet: import one with `ddb init`")
        return
    print(f"  dataset: {st['dataset_format']} at {st['dataset_root']}")
    print(f"  classes: {', '.join(st['class_names'])}; spurious attribute values: {', '.join(st['attr_names']) or 'none'}")
    for split, n in st["samples"].items():
        groups = ", ".join(f"{g}={c}" for g, c in st["groups"][split].items())
        print(f"  {split}: {n} samples" + (f" ({groups})" if groups else ""))
    print(f"  active ERM model: {st['active_erm_model'] if st['active_erm_model'] is not None else 'none'}")
    if st.get("device"):
        from .device import resolve_device
        from .errors import ConfigError

        try:
            where = str(resolve_device(st["device"]["device"]))
        except ConfigError as e:
            where = f"unavailable here: {e}"
        print(f"  device of every model: {st['device']['device']} ({where}), precision {st['device']['dtype']}")
    c = st.get("candidates")
    if c and c["total"]:
        print(f"  candidates: {c['total']}, {c['scored']} scored by the active ERM model")
        if c["stale"]:
            print(f"  warning: {c['stale']} candidates were scored by another ERM model (stale scores count as not "
                  f"scored); recompute them with `ddb score --rescore`")
    for m in st["models"]:
        wga = "—" if m["test_wga"] is None else f"{100 * m['test_wga']:.1f}%"
        acc = "—" if m["test_mean_acc"] is None else f"{100 * m['test_mean_acc']:.1f}%"
        print(f"  model {m['id']} [{m['role']}] {m['name']}: test WGA {wga}, mean acc {acc} ({m['path']}, sha256 {m['sha256']})")
    for r in st["runs"][-10:]:
        err = f" — {r['error']}" if r["error"] else ""
        status = r["status"]
        if status == "running":  # a killed process cannot mark its run; the same command resumes it
            status = "running, or interrupted (the same command resumes it)"
        print(f"  run {r['id']} {r['stage']}: {status} ({r['seconds'] or 0:.1f}s){err}")



def _print_pruning(project, th: dict, counts: dict) -> None:
    from .decisions import stale_scores

    names = project.class_names
    fmt = lambda v: "not set (no scored candidate)" if v is None else f"{v:.4f}"
    for i, name in enumerate(names):
        default = (th.get("P_default") or {}).get("ddb", {}).get(i)
        how = ""
        if default and default.get("provisional"):
            how = (f" (default from {default['n']} of {default['of']} scored DDB candidates: it follows the scores "
                   f"until every one is scored)")
        elif default:
            how = f" (default: {default['quantile']:.0%} quantile of the rho of {default['n']} DDB candidates)"
        print(f"Psi[{name}] = {fmt(th['Psi'].get(i))}   P[{name}] = {fmt(th['P'].get(i))}{how}")
    stale = stale_scores(project)
    if stale:
        print(f"warning: {stale} candidates were scored by another ERM model than the active one ({th.get('erm_model_id')}); "
              f"they count as not scored until `ddb score --rescore`")
    for d, c in counts.items():
        i, j = (int(x) for x in d.split("->"))
        print(f"{names[i]} -> {names[j]}: {c['candidates']} candidates, {c['scored']} scored, "
              f"{c['auto_kept']} kept by the thresholds, {c['kept']} kept after {c['manual']} manual decisions")




def _open(a: argparse.Namespace):
    """The command's project, checked whole first (a damaged file is refused before anything writes to it)."""
    from . import api

    project = api.open_project(a.project)
    project.check_integrity()
    return project


def _no_docs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-docs", action="store_true", help="print the result only; do not touch docs/")


# ---------------------------------------------------------------------------------------------
# The dataset and the project.


def _demo_data_args(p):
    from .demo.data import DemoDataConfig

    d = DemoDataConfig()
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--image-size", type=int, default=d.image_size, help="default: %(default)s")
    p.add_argument("--n-train", type=int, default=d.n_train, help="default: %(default)s")
    p.add_argument("--n-val", type=int, default=d.n_val, help="default: %(default)s")
    p.add_argument("--n-test", type=int, default=d.n_test, help="default: %(default)s")
    p.add_argument("--class0-fraction", type=float, default=d.class0_fraction, help="default: %(default)s")
    p.add_argument("--correlation", type=float, default=d.correlation,
                   help="train share of each class on its own background (default: %(default)s)")
    p.add_argument("--workers", type=int, default=d.workers, help="rendering processes (default: %(default)s)")


@command("demo-data", "generate the offline demo benchmark (Waterbirds layout) into a folder", _demo_data_args)
def _demo_data(a, progress):
    from .demo.data import DemoDataConfig, generate_demo_dataset

    cfg = DemoDataConfig(seed=a.seed, image_size=a.image_size, n_train=a.n_train, n_val=a.n_val, n_test=a.n_test,
                         class0_fraction=a.class0_fraction, correlation=a.correlation, workers=a.workers)
    path = generate_demo_dataset(a.out, cfg, on_progress=progress)
    progress.close()
    print(f"wrote {path}")
    return 0


def _init_args(p):
    from .demo.data import DemoDataConfig

    _add_project(p)
    p.add_argument("--format", required=True, choices=["demo", "waterbirds", "celeba", "metashift", "imagefolder"])
    p.add_argument("--source", help="dataset folder (not for --format demo)")
    p.add_argument("--name", help="project name (default: the folder name)")
    p.add_argument("--replace", action="store_true", help="replace the samples of an existing project")
    p.add_argument("--delete-derived", action="store_true",
                   help="with --replace over a project that has candidates, masks, selections or tokens: delete them "
                        "(without it the re-import is refused and says what exists)")
    p.add_argument("--label-attr", default="Blond_Hair", help="CelebA label attribute (default: %(default)s)")
    p.add_argument("--spurious-attr", default="Male", help="CelebA spurious attribute (default: %(default)s)")
    p.add_argument("--groups-csv", help="ImageFolder: CSV with columns path, attr (group attribute per image)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="MetaShift without val/: share of train held out (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="demo data seed, and MetaShift val split seed (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=DemoDataConfig().image_size, help="demo image size (default: %(default)s)")
    p.add_argument("--skip-image-check", action="store_true", help="do not decode every image during validation")
    p.add_argument("--class-names", nargs="+", metavar="NAME",
                   help="class names in label order (y = 0, 1, …), e.g. --class-names landbird waterbird "
                        "(default: the format's, or the dataset's dataset.json)")
    p.add_argument("--attr-names", nargs="+", metavar="NAME",
                   help="names of the spurious attribute's values in order (place = 0, 1, …), e.g. --attr-names land water")
    p.add_argument("--object-prompt", nargs="+", metavar="WORD|CLASS=WORD",
                   help="the object word of the prompts and of the langsam masker: one for every class (--object-prompt "
                        "bird), or per class (--object-prompt landbird=bird waterbird=bird); default: the class name "
                        "(Waterbirds: bird)")


@command("init", "create a project from a dataset on disk or from the demo benchmark", _init_args)
def _init(a, progress):
    from . import api
    from .demo.data import DemoDataConfig

    demo = DemoDataConfig(seed=a.seed, image_size=a.image_size) if a.format == "demo" else None
    project, rep = api.create_project(a.project, a.format, a.source, name=a.name, replace=a.replace, demo=demo,
                                      label_attr=a.label_attr, spurious_attr=a.spurious_attr, groups_csv=a.groups_csv,
                                      val_fraction=a.val_fraction, seed=a.seed, check_images=not a.skip_image_check,
                                      class_names=a.class_names, attr_names=a.attr_names,
                                      object_prompt=_object_prompt(a.object_prompt), delete_derived=a.delete_derived,
                                      on_progress=progress)
    progress.close()
    print(f"imported {rep.n_samples} samples ({rep.format}) into {project.root}")
    for split, n in rep.split_counts.items():
        print(f"  {split}: {n} " + ", ".join(f"{g}={c}" for g, c in rep.group_counts[split].items()))
    if rep.converted_to_rgb:
        print(f"  {rep.converted_to_rgb} non-RGB images will be converted to RGB when loaded")
    for w in rep.warnings:
        print(f"warning: {w}")
    return 0


def _erm_train_args(p):
    _add_project(p)
    _add_train_args(p)
    p.add_argument("--oracle", action="store_true",
                   help="upsample minority groups with the TRAIN group labels (a reference, not a method)")


@command("erm train", "train the ERM classifier (or, with --oracle, the group-balanced oracle)", _erm_train_args)
def _erm_train(a, progress):
    from . import api
    from .evaluation import report_markdown

    project = _open(a)
    res = api.train_erm(project, _train_config(a), oracle=a.oracle, on_progress=progress)
    progress.close()
    if res.resumed_from_epoch:
        print(f"resumed run {res.run_id} from epoch {res.resumed_from_epoch}")
    print(f"model {res.model_id} (best epoch {res.best_epoch}, {res.seconds:.0f}s)")
    for split, rep in res.reports.items():
        print(report_markdown(rep, f"{split} ({'oracle' if a.oracle else 'ERM'})"))
    _warn_stale(project)
    return 0


def _erm_load_args(p):
    _add_project(p)
    p.add_argument("--checkpoint", required=True, help="state_dict file (loaded with weights_only=True)")
    p.add_argument("--arch", help="architecture of a bare state_dict (resnet18 | resnet34 | resnet50 | resnet18_w32)")
    p.add_argument("--image-size", type=int, default=64, help="input side the model expects (default: %(default)s)")
    _add_device_args(p)


@command("erm load", "use a checkpoint you trained elsewhere as the ERM model", _erm_load_args)
def _erm_load(a, progress):
    from . import api
    from .evaluation import report_markdown

    project = _open(a)
    mid = api.load_erm(project, a.checkpoint, a.arch, a.image_size, on_progress=progress, device=_device(a, project))
    progress.close()
    print(f"model {mid} is the project's ERM model")
    for split, rep in api.evaluate(project, mid).items():
        print(report_markdown(rep, split))
    _warn_stale(project)
    return 0


def _erm_eval_args(p):
    _add_project(p)
    p.add_argument("--model", type=int, help="model id (default: the active ERM model)")
    p.add_argument("--recompute", action="store_true", help="re-run the model instead of reading stored metrics")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")


@command("erm eval", "per-group evaluation report of the ERM model (or --model ID) on val and test", _erm_eval_args)
def _erm_eval(a, progress):
    from . import api
    from .evaluation import report_markdown

    reports = api.evaluate(_open(a), a.model, a.recompute)
    if a.json:
        print(json.dumps({s: r.to_dict() for s, r in reports.items()}, indent=2))
    else:
        for split, rep in reports.items():
            print(report_markdown(rep, split))
    return 0


def _status_args(p):
    _add_project(p)
    p.add_argument("--json", action="store_true", help="print JSON")


@command("status", "what the project holds: dataset, groups, models, candidates, runs", _status_args)
def _status(a, progress):
    from . import api

    st = api.status(_open(a))
    if a.json:
        print(json.dumps(st, indent=2))
    else:
        _print_status(st)
    return 0


# ---------------------------------------------------------------------------------------------
# The method's steps on a project.


def _select_args(p):
    from .method.selection import TI_SOURCES, SelectionConfig

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
    from . import api
    from .method.selection import SelectionConfig

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
    from .method.inversion import InversionConfig

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
    from . import api
    from .method.inversion import InversionConfig

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
    from . import api

    from .settings import load_masker

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
    from . import api

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

    from . import api
    from .engines import EngineConfig

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
    from .method.inpainting import InpaintConfig

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
    from . import api
    from .generation import GenerationConfig
    from .method.inpainting import InpaintConfig

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
    from . import api

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


def _prune_args(p):
    _who(p)
    p.add_argument("--Psi", nargs="+", metavar="CLASS=VALUE", help="Psi_i per source class (default: the computed mean, Eq. 3)")
    p.add_argument("--P", nargs="+", metavar="CLASS=VALUE", help="P_i' per target class (default: a quantile of its rho)")
    p.add_argument("--undo", action="store_true",
                   help="restore the thresholds as they were before the latest change (a save or a reset) not yet undone")
    p.add_argument("--defaults", action="store_true",
                   help="forget the saved thresholds of the active ERM model first: Psi from Eq. 3, P computed again "
                        "from the candidates scored now")


@command("prune", "set the Psi/P thresholds and show kept/pruned counts per direction", _prune_args)
def _prune(a, progress):
    from . import api
    from .decisions import undo_thresholds

    project = _open(a)
    Psi, P = _class_values(a.Psi, "--Psi"), _class_values(a.P, "--P")
    if a.undo and undo_thresholds(project, who=a.who, source="cli") is None:
        print("no threshold change of the active ERM model to undo")
    th, counts = api.prune(project, Psi, P, reset=a.defaults, source="cli", who=a.who)
    _print_pruning(project, th, counts)
    return 0


def _who(p):
    _add_project(p)
    p.add_argument("--who", default=os.environ.get("USER", "cli"), help="recorded in the audit log (default: $USER)")


def _decide_args(p):
    _who(p)
    p.add_argument("ids", type=int, nargs="+", help="candidate ids (see the app, or the export manifest)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--accept", action="store_const", const="accept", dest="decision")
    g.add_argument("--reject", action="store_const", const="reject", dest="decision")
    g.add_argument("--auto", action="store_const", const="auto", dest="decision", help="back to the automatic decision")


@command("decide", "accept or reject candidates by id (one audited action), or set them back to automatic", _decide_args)
def _decide(a, progress):
    from .decisions import set_decision

    n = set_decision(_open(a), a.ids, None if a.decision == "auto" else a.decision, who=a.who, source="cli")
    print(f"{n} of {len(set(a.ids))} candidates changed ({a.decision}); `ddb undo` reverts this action")
    return 0


@command("undo", "revert the latest decision action not yet undone (a whole batch at once)", _who)
def _undo(a, progress):
    from .decisions import undo

    res = undo(_open(a), who=a.who, source="cli")
    if res is None:
        print("nothing to undo")
    else:
        print(f"reverted action {res.action_id} ({len(res.candidate_ids)} candidates) with action {res.undo_action_id}")
    return 0


def _audit_args(p):
    _add_project(p)
    p.add_argument("--limit", type=int, default=30, help="actions to list (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")


@command("audit", "the audit log: every decision, batch, undo and threshold change, newest first", _audit_args)
def _audit(a, progress):
    from .decisions import audit_log

    rows = audit_log(_open(a), a.limit)
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("the audit log is empty")
    for r in rows:
        d = r["detail"]
        what = {"decision": lambda: f"{d.get('decision') or 'automatic'} on {r['n']} candidate(s)"
                                    + (f" (filter {d['filter']})" if d.get("filter") else ""),
                "undo": lambda: f"undo of action {r['undoes']} ({r['n']} candidate(s))",
                "thresholds": lambda: f"thresholds {d.get('what')} (ERM model {d.get('model')})",
                "thresholds-undo": lambda: f"undo of threshold change {r['undoes']}"}.get(r["kind"], lambda: r["kind"])()
        print(f"{r['id']:>6}  {r['at']}  {r['source']:<3}  {r['who']}: {what}{'  [undone]' if r['undone'] else ''}")
    return 0


def _queue_args(p):
    _add_project(p)
    p.add_argument("-n", "--limit", type=int, default=30, help="candidates to list, 0 for all (default: %(default)s)")
    p.add_argument("--direction", help="only this direction, e.g. '0->1' (quoted: > is the shell's)")
    p.add_argument("--all", action="store_true", help="also the decided candidates (at the back of the queue)")
    p.add_argument("--csv", metavar="FILE", help="write the queue as CSV (id, direction, priority, every signal, "
                                                 "decision, result path), '-' for standard output; an existing file "
                                                 "only with --force, never inside the project's stores")
    p.add_argument("--force", action="store_true", help="with --csv: replace an existing file")


@command("queue", "the review queue: the candidates worth a look first, with the signals that put them there", _queue_args)
def _queue(a, progress):
    import csv

    from .errors import ConfigError
    from .queue import SIGNALS
    from .review import Filter, ReviewIndex

    if a.limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {a.limit}")
    if a.force and not a.csv:
        raise ConfigError("--force replaces the --csv file; give --csv FILE too")
    project = _open(a)
    if a.csv and a.csv != "-":
        from .export import check_output

        check_output(project, Path(a.csv), "queue", force=a.force, flag="--csv")  # before any work: nothing is written over
    index = ReviewIndex(project)
    if a.direction and a.direction not in {f"{i}->{j}" for i, j in index.directions}:
        raise ConfigError(f"--direction {a.direction}: the project's directions are "
                          f"{', '.join(f'{i}->{j}' for i, j in index.directions) or 'none (no candidates yet)'}")
    ids = index.query(Filter(direction=a.direction, sort="queue"))
    at = index.pos.lookup(ids)[0]
    if not a.all:
        ids, at = ids[index.manual[at] == 0], at[index.manual[at] == 0]
    if a.limit:
        ids, at = ids[:a.limit], at[:a.limit]
    q = index.queue
    sig = q.signals(index.Psi, index.P, at)
    kept = index.kept()[at]
    decision = [("accepted" if m == 1 else "rejected" if m == 2 else "kept" if k else "pruned") + ("" if m else " (auto)")
                for m, k in zip(index.manual[at], kept)]
    names = project.class_names
    if a.csv:
        rows = project.db.execute(f"select id, path from candidates where id in ({','.join('?' * len(ids))})",
                                  [int(i) for i in ids]).fetchall() if len(ids) else []
        paths = dict(rows)
        out = sys.stdout if a.csv == "-" else open(a.csv, "w", newline="")
        try:
            w = csv.writer(out)
            w.writerow(["rank", "id", "direction", "priority", *SIGNALS, "psi", "rho", "decision", "path"])
            for r, (cid, k) in enumerate(zip(ids, at)):
                w.writerow([r + 1, int(cid), f"{names[index.src[k]]}->{names[index.tgt[k]]}",
                            round(float(sum(v[r] for v in sig.values())), 4), *(round(float(sig[s][r]), 4) for s in SIGNALS),
                            index.psi[k], index.rho[k], decision[r], paths.get(int(cid))])
        finally:
            if out is not sys.stdout:
                out.close()
        if a.csv != "-":
            print(f"wrote {len(ids)} candidates in queue order to {a.csv}")
        return 0
    if not len(ids):
        print("the queue is empty: every candidate has a decision" if len(index) else "no candidates yet")
        return 0
    print(f"{'rank':>5} {'id':>8}  {'direction':<24} {'priority':>8}  reasons")
    for r, (cid, k) in enumerate(zip(ids, at)):
        why = ", ".join(f"{s} {sig[s][r]:.2f}" for s in sorted(SIGNALS, key=lambda s: -sig[s][r]) if sig[s][r] >= 0.2)
        print(f"{r + 1:>5} {int(cid):>8}  {names[index.src[k]] + '->' + names[index.tgt[k]]:<24} "
              f"{sum(float(v[r]) for v in sig.values()):>8.2f}  {why or '-'}  [{decision[r]}]")
    return 0


def _export_args(p):
    _add_project(p)
    p.add_argument("what", choices=["dataset", "bundle"],
                   help="dataset: the train split and every accepted candidate, one folder per class, with "
                        "manifest.csv; bundle: a zip of configs, seeds, thresholds, hashes, runs and reports")
    p.add_argument("--out", help="where to write it (default: the project's exports/ folder, named by the time)")
    p.add_argument("--method", default="all", help="dataset: candidates of this method only (ddb, scgs; default all)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out (a file for bundle, an earlier export for dataset); never one of "
                        "the project's own files or folders")


@command("export", "write the curated dataset, or the reproducibility bundle, as the app's Export screen does", _export_args)
def _export(a, progress):
    from . import api

    project = _open(a)
    if a.what == "bundle":
        r = api.reproducibility_bundle(project, a.out, force=a.force)
        print(f"bundle with {r['models']} models, {r['tokens']} tokens, {r['runs']} runs: {r['path']}")
        return 0
    r = api.export_dataset(project, a.out, method=a.method, on_progress=progress, force=a.force)
    progress.close()
    print(f"exported {r['real_images']} train images and {r['generated_images']} accepted samples to {r['path']}")
    return 0


def _run_args(p):
    from .api import RUN_SECTIONS

    _add_project(p)
    p.add_argument("--config", required=True, help="JSON file with sections " + ", ".join(RUN_SECTIONS))


@command("run", "select, invert, mask, generate, score and prune from one JSON config file", _run_args)
def _run_config(a, progress):
    from . import api

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


# ---------------------------------------------------------------------------------------------
# SCGS, the second method.


def _scgs_select_args(p):
    from .method.scgs import SCGSConfig

    sc = SCGSConfig()
    _add_project(p)
    p.add_argument("--clusters", type=int, default=sc.clusters, help="k-means clusters per class (default: %(default)s)")
    p.add_argument("--sample-fraction", type=float, default=sc.sample_fraction,
                   help="of the misclassified images (default: %(default)s)")
    p.add_argument("--seed", type=int, default=sc.seed, help="default: %(default)s")
    _add_device_args(p)


@command("scgs select", "misclassified train images per class → k-means → Gaussian sampling", _scgs_select_args)
def _scgs_select(a, progress):
    from . import api
    from .method.scgs import SCGSConfig

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
    from .method.scgs import SCGSConfig

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
    from . import api
    from .decisions import set_method_pruning
    from .method.inpainting import InpaintConfig
    from .method.scgs import SCGSConfig

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


# ---------------------------------------------------------------------------------------------
# Retraining, baselines and reports.


def _retrain_args(p):
    from .method.retraining import RetrainConfig

    r = RetrainConfig()
    _add_project(p)
    _add_train_args(p, r.train)
    p.add_argument("--gamma", type=float, nargs="+", default=None,
                   help="weight of the generated samples: one value, or one per class (default: 1 each)")
    p.add_argument("--gamma-grid", type=float, nargs="+", default=[], metavar="GAMMA",
                   help="choose γ (the same for every class) among these by val WGA, as the paper tunes it: one run per "
                        "value with the first seed, then the other seeds with the best; overrides --gamma")
    p.add_argument("--per-class-gamma", action="store_true",
                   help="with --gamma-grid: one γ per class, every combination of the grid's values a run (the "
                        "paper's Table 10 tunes γ_1 and γ_2 apart)")
    p.add_argument("--gen-ratio", type=float, default=r.gen_ratio,
                   help="share of every batch that is generated samples; 0 = natural sampling (default: %(default)s)")
    p.add_argument("--init", choices=["erm", "scratch"], default=r.init,
                   help="start from the ERM model or from scratch (default: %(default)s)")
    p.add_argument("--init-model", type=int, metavar="ID",
                   help="with --init erm: the ERM model to start from (see `ddb status`; default: the active one)")
    p.add_argument("--reinit-head", action="store_true", help="re-initialise the last layer first")
    p.add_argument("--method", choices=["ddb", "scgs", "all"], default=r.method, help="whose candidates (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(r.seeds), help="one model per seed; mean ± std (default: 0)")


@command("retrain", "retrain on the train split + accepted candidates (Eq. 6-8); report against ERM", _retrain_args)
def _retrain(a, progress):
    from . import api
    from .method.retraining import RetrainConfig, gamma_label
    from .reporting import _pct, report_markdown

    project = _open(a)
    n = len(project.class_names)
    gammas = None if a.gamma is None else tuple(a.gamma * n if len(a.gamma) == 1 else a.gamma)
    cfg = RetrainConfig(train=_train_config(a), gammas=gammas, gamma_grid=tuple(a.gamma_grid), per_class=a.per_class_gamma,
                        gen_ratio=a.gen_ratio,
                        init=a.init, init_model_id=a.init_model, reinit_head=a.reinit_head, method=a.method,
                        seeds=tuple(a.seeds))
    inputs = api.retraining_inputs(project, a.method)
    print("accepted samples per direction: " + (", ".join(f"{k}: {v}" for k, v in inputs.items()) or "none"))
    for w in api.retraining_warnings(project, a.method, cfg.train.batch_size):
        print(f"warning: {w}")
    out = api.retrain(project, cfg, on_progress=progress)
    progress.close()
    for row in out.get("gamma_search") or []:
        print(f"{gamma_label(row)}: val WGA {_pct(row['val_wga'])}%, val accuracy {_pct(row['val_acc'])}%"
              f" (model {row['model_id']}){'  ← chosen' if row['chosen'] else ''}")
    print(f"models {', '.join(map(str, out['model_ids']))}; report {out['report']['id']} in "
          f"{project.root / 'reports' / str(out['report']['id'])}")
    print(report_markdown(out["report"]))
    return 0


def _evaluate_args(p):
    _add_project(p)
    p.add_argument("--models", type=int, nargs="+", required=True, help="model ids (see `ddb status`)")
    p.add_argument("--baseline", type=int, help="the 'before' model id (default: the active ERM model)")
    p.add_argument("--title", default="evaluation", help="report title (default: %(default)s)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")


@command("evaluate", "report of stored models (seeds of one run) against the ERM model, with bootstrap intervals",
         _evaluate_args)
def _evaluate(a, progress):
    from . import api
    from .reporting import report_markdown

    project = _open(a)
    rep = api.make_report(project, a.models, baseline_id=a.baseline, title=a.title, kind="evaluation", n_boot=a.n_boot)
    print(report_markdown(rep))
    print(f"saved as report {rep['id']} in {project.root / 'reports' / str(rep['id'])}")
    return 0


def _jtt_args(p):
    from .method.baselines import JTTConfig

    j = JTTConfig()
    _add_project(p)
    _add_train_args(p)
    p.add_argument("--jtt-epochs", type=int, nargs="+", default=[j.jtt_epochs], metavar="T",
                   help="epochs T of the identification model; several values: chosen on val with --lambda-up's "
                        "(default: %(default)s)")
    p.add_argument("--lambda-up", type=float, nargs="+", default=[j.lambda_up], metavar="LAMBDA",
                   help="upweight of the error set; several values: chosen on val, one run per (T, λ) with the first "
                        "seed, as the JTT paper tunes them (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="default: 0")
    p.add_argument("--with-scgs", action="store_true", help="JTT+SCGS: add the accepted SCGS images to JTT's training set")


def _dfr_args(p):
    _add_project(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="default: 0")
    p.add_argument("--fits", type=int, default=20,
                   help="group-balanced subsets of val whose fits are averaged (and per C when tuning; default: %(default)s)")


def _oracle_args(p):
    _add_project(p)
    _add_train_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="default: 0")


def _baseline(name: str):
    def run(a, progress):
        from . import api
        from .method.baselines import JTTConfig
        from .reporting import report_markdown

        project = _open(a)
        train = _train_config(a) if name in ("jtt", "oracle") else None
        jtt = None
        if name == "jtt":
            jtt = JTTConfig(train=train, jtt_epochs=a.jtt_epochs[0], lambda_up=a.lambda_up[0], seeds=tuple(a.seeds))
            if a.with_scgs:
                out = api.jtt_with_scgs(project, jtt, on_progress=progress)
                progress.close()
                print(report_markdown(out["report"]))
                return 0
        out = api.baseline(project, name, seeds=a.seeds, train=train, jtt=jtt, on_progress=progress,
                           jtt_grid=(tuple(a.jtt_epochs), tuple(a.lambda_up)) if name == "jtt" else None,
                           dfr_fits=getattr(a, "fits", 20))
        progress.close()
        for row in out["details"].get("search") or []:
            print(f"T = {row['T']}, λ_up = {row['lambda_up']:g}: error set {row['error_set']}, val WGA "
                  f"{100 * (row['val_wga'] or 0):.1f}%, val accuracy {100 * (row['val_acc'] or 0):.1f}%"
                  f"{'  ← chosen' if row['chosen'] else ''}")
        if out["details"].get("note"):
            print(f"note: {out['details']['note']}")
        print(report_markdown(out["report"]))
        return 0
    return run


command("baseline jtt", "JTT: upweight the error set of an early-stopped ERM (no group labels; val groups for selection)",
        _jtt_args)(_baseline("jtt"))
command("baseline dfr", "DFR: refit the ERM's last layer on group-balanced val features (val group labels)",
        _dfr_args)(_baseline("dfr"))
command("baseline oracle", "group-balanced sampling with train group labels (a reference, not a method)",
        _oracle_args)(_baseline("oracle"))


def _report_args(p):
    _add_project(p)
    p.add_argument("--id", type=int, help="report id")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


@command("report", "list the stored reports, or print one (--id) as Markdown", _report_args)
def _report(a, progress):
    from . import api
    from .reporting import report_markdown

    project = _open(a)
    if a.id is None:
        rows = api.reports(project)
        if not rows:
            print("no reports yet: `ddb retrain`, `ddb baseline ...` or `ddb evaluate` make them")
        for r in rows:
            print(f"report {r['id']} [{r['kind']}] {r['title']}: models {r['model_ids']} ({r['dir']}, {r['created_at']})")
        return 0
    rep = api.load_report(project, a.id)
    print(json.dumps(rep, indent=2) if a.json else report_markdown(rep))
    return 0


# ---------------------------------------------------------------------------------------------
# The demo's model, and the benchmarks.


def _micro_args(p):
    from .demo.micro_train import MicroTrainConfig

    m = MicroTrainConfig()
    p.add_argument("--preset", choices=("corpus", "crop", "v1"), default="corpus",
                   help="corpus: the rendered corpus at 32-px latents (default); crop: windows of twice the mask's box "
                        "cut from the corpus, 16-px latents; v1: the first micro model's recipe "
                        "(16-px latents, a benchmark's train split via --data, 6500 UNet steps)")
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
    from .demo.micro_train import MicroTrainConfig, train_micro_inpainter

    if a.preset == "v1" and not a.data:
        raise ConfigError("--preset v1 trains on a demo benchmark's train split: give --data")
    base = (MicroTrainConfig.smoke() if a.smoke else MicroTrainConfig.v1() if a.preset == "v1"
            else MicroTrainConfig.crop() if a.preset == "crop" else MicroTrainConfig())
    over = {"seed": a.seed, "device": a.device}
    if not a.smoke:
        given = {k: getattr(a, k) for k in ("corpus", "vae_steps", "unet_steps", "batch_size", "checkpoint_every",
                                            "unet_restart_steps") if getattr(a, k) is not None}
        over.update(given)
    out = train_micro_inpainter(a.data, a.out, replace(base, **over), on_progress=progress)
    progress.close()
    print(f"wrote {out} (use it with `ddb invert --model {out}` or `ddb generate --model {out}`)")
    return 0


def _calibrate_args(p):
    from .bench.calibration import RECIPES

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
    from .bench.calibration import DOC, calibrate_demo, calibration_markdown

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
    from .bench.masks import DOC, bench_masks

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
    from .bench.precision import DOC, bench_precision, precision_markdown

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
    from .bench.ig_precision import DOC, bench_ig_precision, ig_precision_markdown

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
    p.add_argument("--model-card", action="store_true", help="also write the model folder's README.md (model card) "
                                                             "with these gates (default: only for section 'inpainter')")
    p.add_argument("--from-json", metavar="JSON", help="write the docs section (and its JSON and grid under docs/) from "
                                                      "the result of an earlier run, without measuring again")
    _no_docs(p)


@command("bench inpainter", "quality gates of the micro inpainting model: target birds seen by the judges, background error",
         _inpainter_args)
def _bench_inpainter(a, progress):
    from .bench.docs import DOC
    from .bench.inpainter import bench_inpainter, inpainter_markdown, write_model_card
    from .method.inpainting import resolve_model_ref

    if a.from_json:
        from .bench.inpainter import result_to_docs

        res = result_to_docs(Path(a.from_json), DOC)
        progress.close()
        print(inpainter_markdown(res))
        folder = Path(resolve_model_ref(res["model"]))
        if a.model_card and (folder / "training.json").is_file():
            print(f"model card: {write_model_card(folder, res)}")
        return 0
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
                          dtype=a.dtype)
    progress.close()
    print(inpainter_markdown(res))
    folder = Path(resolve_model_ref(a.model))
    if not a.no_docs and (a.section == "inpainter" or a.model_card) and (folder / "training.json").is_file():
        print(f"model card: {write_model_card(folder, res)}")
    return 0


def _judges_args(p):
    from .bench.judges import JudgeTrainConfig

    c = JudgeTrainConfig()
    p.add_argument("--out", default="data/judges", help="where the judges go (default: %(default)s, the repository's)")
    p.add_argument("--n", type=int, default=c.n_train, help="training renders (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=c.epochs, help="default: %(default)s")
    p.add_argument("--check-on", default=None, metavar="DATASET",
                   help="also check the judges on this demo benchmark's val renders (from `ddb demo-data`)")
    p.add_argument("--docs-only", action="store_true",
                   help="write the docs section from the stored judges (OUT/judges.json) without training again")
    _no_docs(p)


@command("bench judges", "train the judges that look at the repainted region (bird present, which bird) on their own renders",
         _judges_args)
def _bench_judges(a, progress):
    import json

    from .bench.judges import JudgeTrainConfig, check_on_real_renders, load_judges, train_judges

    if a.docs_only:
        rec = json.loads((Path(a.out) / "judges.json").read_text())
    else:
        rec = train_judges(JudgeTrainConfig(n_train=a.n, epochs=a.epochs), a.out, on_progress=progress)
    progress.close()
    real = check_on_real_renders(load_judges(a.out), a.check_on) if a.check_on else None
    if not a.no_docs:
        from .bench.docs import DOC, write_section
        from .bench.judges import judges_markdown

        write_section(DOC, "judges", judges_markdown(rec, real))
    print(json.dumps(rec["check"], indent=2))
    if real:
        print(json.dumps(real, indent=2))
    return 0


def _micro_cost_args(p):
    p.add_argument("--preset", choices=("corpus", "v1"), default="corpus", help="default: %(default)s")
    p.add_argument("--steps", type=int, default=5, help="timed steps per phase (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="default: %(default)s")
    _no_docs(p)


@command("bench micro-cost", "what train-micro-inpainter costs on this machine: seconds per step of each phase, and the "
         "projected wall time", _micro_cost_args)
def _bench_micro_cost(a, progress):
    from .bench.docs import DOC, write_result
    from .bench.micro_cost import micro_cost, micro_cost_markdown

    res = micro_cost(a.preset, a.steps, a.device)
    md = micro_cost_markdown(res)
    if not a.no_docs:
        write_result(res, DOC, Path(f"docs/bench/micro-cost-{a.preset}.json"), f"micro-cost-{a.preset}", md)
    print(md)
    return 0


def _eye_check_args(p):
    p.add_argument("--set", default="data/eye-labels/first-launch", help="the labelled set (default: %(default)s)")
    p.add_argument("--export", metavar="PROJECT", help="instead: copy PROJECT's candidates into --set with an empty "
                                                       "eye column and contact sheets to label from")
    p.add_argument("--project", help="also split the kept and pruned candidates of the project the set was made from "
                                     "(at its current thresholds and decisions) by what the eyes saw")
    p.add_argument("--section", default="eye-check", help="docs/benchmarks.md section (default: %(default)s)")
    _no_docs(p)


@command("bench eye-check", "do the judges agree with a person's eyes? A set of candidates labelled by looking at them "
         "(bird / unclear / no) against the judges' target-bird verdicts", _eye_check_args)
def _bench_eye_check(a, progress):
    from .bench.docs import DOC, write_result
    from .bench.eye_check import eye_check, eye_check_markdown, export_for_labels

    progress.close()
    if a.export:
        from .store import Project

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


def _target_birds_args(p):
    _add_project(p)
    p.add_argument("--method", default="ddb", help="ddb | scgs (default: %(default)s)")
    p.add_argument("--section", default="target-birds", help="docs/benchmarks.md section (default: %(default)s)")
    _no_docs(p)


@command("bench target-birds", "what a person sees in a project's candidates: kept and pruned, target birds or not "
         "(the judges of `bench judges`), at the project's current thresholds and decisions", _target_birds_args)
def _bench_target_birds(a, progress):
    import json

    from .bench.judges import judged_target_birds, target_bird_lines
    from .bench.docs import DOC, write_result
    from .decisions import thresholds, thresholds_json
    from .method.inpainting import model_fingerprint
    from .settings import pipeline_settings

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
    from .bench.docs import DOC
    from .bench.ray_engine import bench_ray, ray_markdown

    res = bench_ray(a.workdir, n=a.n, repeats=a.repeats, doc=None if a.no_docs else DOC,
                    json_path=None if a.no_docs else Path("docs/bench/ray.json"), on_progress=progress)
    progress.close()
    print(ray_markdown(res))
    return 0


def _fullscale_args(p):
    p.add_argument("--workdir", default="projects/bench/fullscale",
                   help="where the models (built once, about 5 GB) and the project go (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="keep the stages a killed run finished and run the rest")
    p.add_argument("--replan", action="store_true",
                   help="run nothing: the 120,000-candidate plan again from the stored run (docs/bench/fullscale.json), "
                        "its FLOPs counted at CelebA's size, into that file and the README")
    p.add_argument("--no-docs", action="store_true", help="print the result only; do not touch docs/ and README.md")


@command("bench fullscale", "the full-size path end to end (SD2-inpainting at 512, ResNet-50 at 224, GroundingDINO base + "
         "SAM ViT-H, random weights of the real sizes): seconds, memory and bytes per candidate", _fullscale_args)
def _bench_fullscale(a, progress):
    from .bench.docs import DOC
    from .bench.fullscale import bench_fullscale, fullscale_markdown, plan_markdown, replan

    if a.replan:
        res = replan(workdir=a.workdir, write=not a.no_docs)
        print(plan_markdown(res))
        return 0
    res = bench_fullscale(a.workdir, doc=None if a.no_docs else DOC,
                          json_path=None if a.no_docs else Path("docs/bench/fullscale.json"), resume=a.resume)
    print(fullscale_markdown(res))
    return 0


def _demo_bench_args(p):
    p.add_argument("--quick", action="store_true", help="the smoke preset: one seed, few candidates, short training")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: 0 1 2; --quick: 0)")
    p.add_argument("--data-seeds", type=int, nargs="+", default=None, metavar="D",
                   help="demo data seeds, each its own project (bench demo, average and review: intervals over data seeds "
                        "× training seeds when several; the other benchmarks use the first; default: 0, for bench review "
                        "0 1 2)")
    p.add_argument("--ablations", action="store_true",
                   help="bench demo: also DDB without pruning and with the plain prompt, as paired differences")
    p.add_argument("--oracle", action="store_true",
                   help="bench demo: also the group-balanced oracle (train group labels) as a reference row")
    p.add_argument("--model", help="inpainting model (default: data/models/micro-sd-inpainting)")
    p.add_argument("--workdir", default="projects/bench", help="where the bench projects go (default: %(default)s)")
    p.add_argument("--gamma-grid", type=float, nargs="*", metavar="GAMMA",
                   help="γ values searched by val WGA for the retrainings (default: 1 3 10; --quick: 1 10; "
                        "give the option alone for no search, γ = 1)")
    _no_docs(p)


def _demo_bench(kind: str, fn_name: str, markdown_name: str):
    def run(a, progress):
        from .bench import demo as B
        from .bench.docs import DOC

        cfg = B.DemoBenchConfig.quick() if a.quick else B.DemoBenchConfig()
        if a.seeds:
            cfg = replace(cfg, seeds=tuple(a.seeds))
        elif kind == "ti" and not a.quick:  # 5 textual-inversion sets: one seed keeps it within 30 min
            cfg = replace(cfg, seeds=(0,))
        if a.model:
            cfg = replace(cfg, model=a.model)
        if a.gamma_grid is not None:
            cfg = replace(cfg, gamma_grid=tuple(a.gamma_grid))
        a.data_seeds = a.data_seeds or ([0, 1, 2] if kind == "review" else [0])
        cfg = replace(cfg, data_seed=a.data_seeds[0])
        if a.ablations or a.oracle:
            if kind != "demo":
                raise ConfigError("--ablations and --oracle belong to `bench demo`")
            cfg = replace(cfg, ablations=a.ablations or cfg.ablations,
                          baselines=cfg.baselines + (("oracle",) if a.oracle and "oracle" not in cfg.baselines else ()))
        suffix = "-quick" if a.quick else ""
        extra = {"k": cfg.k if a.quick else 100} if kind == "ti" else {}
        json_name = kind
        if kind == "demo":
            extra["data_seeds"] = tuple(a.data_seeds)
            json_name = B.section_name(cfg, a.data_seeds)
        elif kind in ("average", "review"):
            extra["data_seeds"] = tuple(a.data_seeds)
        if kind == "review":
            from .bench import review as R

            fn = R.bench_review
        elif kind == "scgs":
            from .bench import scgs as S

            fn = S.bench_scgs
        elif kind == "average":
            from .bench import average as A

            fn = A.bench_average
        else:
            fn = getattr(B, fn_name)
        res = fn(cfg, workdir=a.workdir + ("/quick" if a.quick else ""), doc=None if a.no_docs else DOC,
                                  json_path=None if a.no_docs else Path(f"docs/bench/{json_name}{suffix if kind != 'demo' else ''}.json"),
                                  on_progress=progress, **extra)
        if kind == "demo":
            from .bench.seeds import demo_markdown as md_fn
        elif kind == "scgs":
            from .bench.scgs import scgs_markdown as md_fn
        elif kind == "average":
            from .bench.average import average_markdown as md_fn
        elif kind == "review":
            from .bench.review import review_markdown as md_fn
        else:
            md_fn = getattr(B, markdown_name)
        md = md_fn(res)
        progress.close()
        print(md)
        return 0
    return run


for _kind, _help in (("demo", "end to end on the demo: ERM, JTT, DFR and DDB (each tuned on val), means with 95% intervals "
                              "over data seeds × training seeds and paired differences → docs/benchmarks.md"),
                     ("pruning", "ablation: retraining with vs without pruning (Table 2 shape)"),
                     ("ti", "ablation: textual-inversion set size 0/10/20/30/40 (Table 5 shape); K = 100 per class, "
                            "seed 0 unless --seeds"),
                     ("ti-source", "which textual-inversion images (none / highest-loss / random) make a token that "
                                   "swaps classes, judged by the oracle on box inpaintings of D_i"),
                     ("recipe", "the retraining recipe: DDB with γ = 1 for epochs 1/2 and lr 1e-4/2e-4/5e-4, every "
                                "seed; the best mean val WGA is marked (after `bench demo`)"),
                     ("average", "what brings DDB's average accuracy back: γ, the generated share per batch and the "
                                 "number of accepted samples, one at a time, every seed (after `bench demo`)"),
                     ("review", "what a human look is worth: a simulated reviewer (an oracle, train group labels) "
                                "reviews 0/1/5/10/25% of the candidates in queue, random and lowest-ρ order, judged by "
                                "another oracle seed; DDB retrained on the 10% queue review vs automatic pruning"),
                     ("scgs", "SCGS and JTT+SCGS as the SCGS paper does them (share of generated images chosen on val, "
                              "ordinary training on the union), beside the ERM and JTT of `bench demo`")):
    _stem = _kind.replace("-", "_")
    command(f"bench {_kind}", _help, _demo_bench_args)(_demo_bench(_kind, f"bench_{_stem}", f"{_stem}_markdown"))


COMMANDS = tuple(TABLE)  # every leaf command, as typed after `ddb`; README.md documents each one


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddb", description="DDB Studio: diffusion-driven balancing of biased image datasets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch and stage")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, cmd in TABLE.items():
        group, _, leaf = name.rpartition(" ")
        if group and group not in groups:
            groups[group] = top.add_parser(group, help=GROUPS[group]).add_subparsers(
                dest=f"{group}_command", required=True, metavar=f"{group.upper()}_COMMAND")
        p = (groups[group] if group else top).add_parser(leaf, help=cmd.help)
        cmd.arguments(p)
        p.set_defaults(handler=cmd.run)
    return parser


SQLITE_INT = 2 ** 63  # ids are SQLite integers


def _check_args(a) -> None:
    """What argparse cannot say: values out of range, repeated values where each must count once, and flags that
    contradict each other — refused before the command does anything, naming the options."""
    import math

    for name in ("seeds", "models"):
        values = getattr(a, name, None)
        if isinstance(values, list) and len(set(values)) != len(values):
            raise ConfigError(f"--{name} {' '.join(map(str, values))}: give each value once (a repeated one would count "
                              f"one model as two)")
    for name in ("ids", "models"):
        for v in getattr(a, name, None) or []:
            if isinstance(v, int) and not 0 <= v < SQLITE_INT:
                raise ConfigError(f"{name.rstrip('s')} {v} is not an id of this project (ids are whole numbers from 1 to "
                                  f"{SQLITE_INT - 1})")
    for k in (getattr(a, "k", None) if isinstance(getattr(a, "k", None), list) else [getattr(a, "k", None)]):
        if isinstance(k, float) and not math.isfinite(k):
            raise ConfigError(f"--k must be a finite number (a count >= 1 or a fraction < 1), got {k}")
    m = getattr(a, "momentum", None)
    if m is not None and not 0 <= m < 1:
        raise ConfigError(f"--momentum must be in [0, 1), got {m}")
    n_boot = getattr(a, "n_boot", None)
    if n_boot is not None and n_boot < 100:
        raise ConfigError(f"--n-boot must be at least 100 (a 95% interval from fewer resamples means little), got {n_boot}")
    if getattr(a, "handler", None) is not None and a.handler.__name__ == "_audit" and a.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {a.limit}")
    if getattr(a, "undo", False) is True and getattr(a, "defaults", False) is True:
        raise ConfigError("--undo and --defaults contradict each other: give one")
    if getattr(a, "gamma", None) and getattr(a, "gamma_grid", None):
        raise ConfigError(f"--gamma {' '.join(map(str, a.gamma))} and --gamma-grid {' '.join(map(str, a.gamma_grid))} "
                          f"contradict each other: give one γ (or one per class), or a grid to choose from on val")
    if getattr(a, "per_class_gamma", False) and not getattr(a, "gamma_grid", None):
        raise ConfigError("--per-class-gamma chooses one γ per class from --gamma-grid: give the grid too")


def main(argv: Optional[list[str]] = None) -> int:
    from .device import flush_denormals

    args = build_parser().parse_args(argv)
    flush_denormals()  # before torch starts its compute threads, so that they inherit it
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    progress = TqdmProgress()
    try:
        _check_args(args)
        return args.handler(args, progress)
    except (DDBError, KeyboardInterrupt) as e:
        progress.close()
        if isinstance(e, (KeyboardInterrupt, Cancelled)):
            print("cancelled; finished work is kept and the same command resumes it", file=sys.stderr)
            return 130
        print(f"error: {e}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:  # what SQLite says of the file itself, in words that say what to do
        progress.close()
        where = getattr(args, "project", None) or "the project"
        text = str(e)
        if "readonly" in text or "read-only" in text:
            name = next((n for n in sorted(TABLE, key=len, reverse=True)
                         if TABLE[n].run is getattr(args, "handler", None)), "this command")
            print(f"error: {where} is read-only for this user (its database or its folder cannot be written), and "
                  f"`ddb {name}` writes to it; nothing was written. The reading commands (status, queue, audit, "
                  f"export to another folder) work", file=sys.stderr)
        elif "malformed" in text or "not a database" in text or "corrupt" in text:
            print(f"error: {where}/project.db is damaged ({text}); restore it from a backup. Nothing was written",
                  file=sys.stderr)
        else:
            print(f"error: the project database refused the command: {text}", file=sys.stderr)
        return 2
    except OSError as e:  # a path the system refuses (too long, a folder for a file, no permission …)
        progress.close()
        name = str(e.filename) if e.filename is not None else ""
        shown = f"{name[:120]}… ({len(name)} characters)" if len(name) > 120 else name
        print(f"error: {e.strerror or e}{': ' + shown if shown else ''}", file=sys.stderr)
        return 2
    finally:
        progress.close()


if __name__ == "__main__":
    sys.exit(main())
