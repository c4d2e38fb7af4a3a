"""The dataset and the project: ``ddb demo-data``, ``ddb init``, ``ddb status``."""

from __future__ import annotations

import json

from .common import command, _add_project, _object_prompt, _print_status, _open


# The dataset and the project.


def _demo_data_args(p):
    from ..demo.data import DemoDataConfig

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
    from ..demo.data import DemoDataConfig, generate_demo_dataset

    cfg = DemoDataConfig(seed=a.seed, image_size=a.image_size, n_train=a.n_train, n_val=a.n_val, n_test=a.n_test,
                         class0_fraction=a.class0_fraction, correlation=a.correlation, workers=a.workers)
    path = generate_demo_dataset(a.out, cfg, on_progress=progress)
    progress.close()
    print(f"wrote {path}")
    return 0


def _init_args(p):
    from ..demo.data import DemoDataConfig

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
    from .. import api
    from ..demo.data import DemoDataConfig

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




def _status_args(p):
    _add_project(p)
    p.add_argument("--json", action="store_true", help="print JSON")


@command("status", "what the project holds: dataset, groups, models, candidates, runs", _status_args)
def _status(a, progress):
    from .. import api

    st = api.status(_open(a))
    if a.json:
        print(json.dumps(st, indent=2))
    else:
        _print_status(st)
    return 0
