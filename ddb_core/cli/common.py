"""What every command group shares: the dispatch table (``TABLE``, filled by ``@command``), the progress bar, and the
options and printing helpers used by several groups.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Optional

from ..project.progress import Progress


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
    from ..api import DEFAULT_PROJECT

    p.add_argument("-p", "--project", default=DEFAULT_PROJECT,
                   help="project folder (default: %(default)s; env DDB_PROJECT changes it)")


def _add_train_args(p: argparse.ArgumentParser, d=None) -> None:
    from ..classifiers.training import TrainConfig

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
    from .. import api

    if a.device is not None:
        from ..project.device import check_device_name

        check_device_name(a.device)
    if getattr(a, "dtype", None) is not None:
        from ..project.device import check_dtype_name

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
    from .. import api

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
    from ..project.errors import ConfigError

    raise ConfigError(f"--object-prompt takes one word for every class or CLASS=WORD pairs, got {' '.join(items)}")


def _class_values(items: Optional[list[str]], flag: str) -> Optional[dict[int, float]]:
    from ..project.errors import ConfigError

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
    from ..classifiers.training import TrainConfig

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
        from ..project.device import resolve_device
        from ..project.errors import ConfigError

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
    from ..curation.decisions import stale_scores

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
    from .. import api

    project = api.open_project(a.project)
    project.check_integrity()
    return project


def _no_docs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-docs", action="store_true", help="print the result only; do not touch docs/")
