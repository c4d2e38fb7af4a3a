"""Command-line interface: ``python -m ddb_core <command>`` or the ``ddb`` console script.

The commands live in one module per group, each command registered with ``@command(name, help, arguments)``
(``common.py``), its handler right under its arguments:

- ``project``: the dataset and the project (demo-data, init, status);
- ``models``: the classifiers (erm, retrain, evaluate, baseline, report);
- ``stages``: the method's steps (select, invert, mask, refind, generate, score, run);
- ``scgs``: the second method's steps;
- ``review``: thresholds and decisions (prune, decide, undo, audit, queue);
- ``export``: the curated dataset and the reproducibility bundle;
- ``bench`` and ``bench_tables``: the demo's model and the benchmarks.

``ORDER`` below is the dispatch table's one list: every command, in the order of README.md's table and of
``ddb --help``. Every command has ``--help`` and is documented in README.md (a test checks both). Errors from
the core (``DDBError``) are printed as one message and exit with status 2; Ctrl-C cancels (status 130) and
the same command resumes.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from typing import Optional

from ..project.errors import Cancelled, ConfigError, DDBError
from . import bench, bench_tables, export, models, project, review, scgs, stages  # noqa: F401 (each registers its commands)
from .common import GROUPS, TABLE, Command, TqdmProgress

ORDER = ("demo-data", "init", "erm train", "erm load", "erm eval", "status",
         "select", "invert", "mask", "refind", "generate", "score",
         "prune", "decide", "undo", "audit", "queue", "export", "run",
         "scgs select", "scgs generate",
         "retrain", "evaluate", "baseline jtt", "baseline dfr", "baseline oracle", "report",
         "train-micro-inpainter",
         "bench calibrate", "bench masks", "bench precision", "bench ig-precision", "bench inpainter", "bench window", "bench judges",
         "bench micro-cost", "bench eye-check", "bench eye-agreement", "bench eye-pool", "bench weights-diff", "bench target-birds", "bench ray", "bench fullscale",
         "bench demo", "bench pruning", "bench ti", "bench ti-source", "bench recipe", "bench average", "bench review",
         "bench scgs")
COMMANDS = ORDER  # every leaf command, as typed after `ddb`; README.md documents each one
DISPATCH: dict[str, Command] = {n: TABLE[n] for n in ORDER}  # a name not registered fails here, at import


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddb", description="DDB Studio: diffusion-driven balancing of biased image datasets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch and stage")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, cmd in DISPATCH.items():
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
    from ..project.device import flush_denormals

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
