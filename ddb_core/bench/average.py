"""What brings DDB's average accuracy back (``ddb bench average``).

DDB upweights the generated samples of each target class by γ; on the demo that lifts the minority
groups and costs the majority groups accuracy, so the train-weighted average accuracy (each group
weighted by its share of train: the figure a user of the biased distribution sees) falls. This study
starts from the main table's DDB (its val-chosen γ, every accepted candidate, batches as they come)
and moves one factor at a time, for every training seed, each seed retrained from its own ERM:

- **γ**: one γ for every class, each value of ``gammas``;
- **the generated share per batch**: ``gen_ratio`` of every batch drawn from the generated samples;
- **the number of accepted samples**: a seeded random ``fraction`` of the accepted candidates.

For each variant: the test WGA and train-weighted average with their paired changes against ERM, and
the same on val. The variant a user would pick **on val** is the one with the best val WGA among those
whose val train-weighted average is within 5 points of ERM's; its test figures are then read against
the goal (WGA ≥ ERM + 25 points and average within 5 points of ERM's).
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..progress import ProgressFn
from .demo import (DemoBenchConfig, _erm_models, _finish, _gamma_table, _model_note, _project, _retrain_cached, prepare)
from .seeds import GOAL_AVG_DROP, GOAL_WGA_GAIN

GAMMAS = (0.1, 0.3, 1.0, 3.0, 10.0)  # below 1: the generated samples weigh less than a real batch
GEN_RATIOS = (0.1, 0.25)
FRACTIONS = (0.25, 0.5)


def _subset(cands: list[dict], fraction: float, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    n = max(1, round(fraction * len(cands)))
    keep = set(rng.sample(range(len(cands)), n)) if cands else set()
    return [c for k, c in enumerate(cands) if k in keep]


def _figures(project, ids: list[int], erm: list[int]) -> dict:
    out = {}
    for split in ("val", "test"):
        m = [project.model(i)["metrics"][split] for i in ids]
        e = [project.model(i)["metrics"][split] for i in erm]
        wga = [x["worst_group_acc"] for x in m]
        avg = [x.get("train_weighted_acc") for x in m]
        avg_e = [x.get("train_weighted_acc") for x in e]
        wga_e = [x["worst_group_acc"] for x in e]
        has_avg = None not in avg and None not in avg_e
        out[split] = {"wga": float(np.mean(wga)), "avg": float(np.mean(avg)) if None not in avg else None,
                      "wga_gain": float(np.mean([a - b for a, b in zip(wga, wga_e)])),
                      "avg_change": float(np.mean([a - b for a, b in zip(avg, avg_e)])) if has_avg else None,
                      "wga_values": [float(v) for v in wga],
                      # paired with ERM of the same training seed (one data seed: the interval is over training seeds)
                      "wga_gain_interval": _paired(wga, wga_e),
                      "avg_change_interval": _paired(avg, avg_e) if has_avg else None}
    return out


def _paired(a: list[float], b: list[float]) -> dict:
    from .stats import paired

    return paired({0: dict(enumerate(a))}, {0: dict(enumerate(b))}).to_dict()


def bench_average(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench",
                  gammas: Sequence[float] = GAMMAS, gen_ratios: Sequence[float] = GEN_RATIOS,
                  fractions: Sequence[float] = FRACTIONS, doc: Optional[Path] = None, json_path: Optional[Path] = None,
                  on_progress: Optional[ProgressFn] = None, cancel=None) -> dict:
    from ..method.retraining import accepted_candidates

    t0 = time.monotonic()
    times: dict[str, float] = {}
    project = _project(Path(workdir), cfg, on_progress)
    prepare(project, cfg, times, on_progress, cancel)
    erm_ids = _erm_models(project, cfg, times, on_progress, cancel)
    erm = [erm_ids[s] for s in cfg.seeds]
    main = _retrain_cached(project, "ddb", cfg, times, erm_ids, on_progress=on_progress, cancel=cancel)
    table = _gamma_table(project, "ddb")
    chosen = tuple(next(r["gammas"] for r in table if r["chosen"])) if table else tuple(cfg.gammas or ())
    cands = accepted_candidates(project, "ddb")
    fixed = replace(cfg, gammas=chosen or None, gamma_grid=())
    variants = [("as benched", f"γ {', '.join(f'{g:g}' for g in chosen)} (chosen on val), every accepted sample",
                 None, cands, main)]
    variants += [("γ", f"γ = {g:g} for every class", replace(fixed, gammas=(float(g),) * len(chosen or (0, 0))), cands,
                  None) for g in gammas]
    variants += [("generated share", f"{100 * r:g}% of every batch generated", replace(fixed, gen_ratio=float(r)), cands,
                  None) for r in gen_ratios]
    variants += [("accepted samples", f"{100 * f:g}% of the accepted ({len(_subset(cands, f))} of {len(cands)})", fixed,
                  _subset(cands, f), None) for f in fractions]
    rows = []
    for factor, label, vcfg, vcands, ids in variants:
        if ids is None:
            key = f"average-{factor}-{label}".replace(" ", "_")
            ids = _retrain_cached(project, key, vcfg, times, erm_ids, candidates=vcands, on_progress=on_progress,
                                  cancel=cancel)
        rows.append({"factor": factor, "variant": label, "model_ids": ids, "accepted": len(vcands),
                     **_figures(project, ids, erm)})
    ok_val = [r for r in rows if r["val"]["avg_change"] is not None and r["val"]["avg_change"] >= -GOAL_AVG_DROP]
    pick = max(ok_val, key=lambda r: r["val"]["wga"]) if ok_val else None
    for r in rows:
        r["picked_on_val"] = r is pick
        r["meets_goal"] = (r["test"]["wga_gain"] >= GOAL_WGA_GAIN and r["test"]["avg_change"] is not None
                           and r["test"]["avg_change"] >= -GOAL_AVG_DROP)
    return _finish(cfg, "average", rows, times, t0, doc, json_path, "average", average_markdown,
                   chosen_gammas=list(chosen), data_seed=cfg.data_seed)


def _pt(x: Optional[float], sign: bool = False) -> str:
    return "—" if x is None else (f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}")


def average_markdown(res: dict) -> str:
    c = res["config"]
    lines = ["## Average accuracy: what brings it back", "",
             f"Command: `{res['command']}` (after `bench demo`, on its project, data seed {res['data_seed']}). DDB "
             f"retrained from each training seed's own ERM (seeds {', '.join(map(str, c['seeds']))}), one factor moved at "
             "a time from the main table's DDB. Average = accuracy with each group weighted by its share of train; "
             "changes are paired against ERM of the same seed, in points, means over the seeds. The variant picked on "
             "val is the best val WGA among those whose val average is within 5 points of ERM's; the goal is read on "
             "test: WGA ≥ ERM + 25 points and average within 5 points of ERM's.", "",
             "| factor | variant | val WGA | val avg change | test WGA | WGA gain vs ERM | test avg | avg change vs ERM "
             "| picked on val | meets goal |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in res["rows"]:
        v, t = r["val"], r["test"]
        lines.append(f"| {r['factor']} | {r['variant']} | {_pt(v['wga'])} | {_pt(v['avg_change'], True)} | "
                     f"{_pt(t['wga'])} | {_pt(t['wga_gain'], True)} | {_pt(t['avg'])} | {_pt(t['avg_change'], True)} | "
                     f"{'**yes**' if r['picked_on_val'] else ''} | {'yes' if r['meets_goal'] else 'no'} |")
    pick = next((r for r in res["rows"] if r["picked_on_val"]), None)
    met = [r["variant"] for r in res["rows"] if r["meets_goal"]]
    lines += ["", ("- picked on val: **" + pick["variant"] + f"** (test: WGA gain {_pt(pick['test']['wga_gain'], True)}, "
                   f"average change {_pt(pick['test']['avg_change'], True)} points; goal "
                   f"{'met' if pick['meets_goal'] else 'not met'} on the means)") if pick else
              "- no variant keeps the val average within 5 points of ERM's",
              *(_pick_intervals(pick["test"]) if pick else []),
              "- variants meeting the goal on test: " + (", ".join(met) if met else "none"),
              f"- wall time {res['seconds'] / 60:.1f} min" + _model_note(res)]
    return "\n".join(lines) + "\n"


def _pick_intervals(test: dict) -> list[str]:
    """The picked variant's changes with their 95% intervals, and whether the whole interval meets each goal."""
    g, a = test.get("wga_gain_interval"), test.get("avg_change_interval")
    if not g or g.get("lo") is None or not a or a.get("lo") is None:
        return []

    def iv(d):
        return f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"

    return [f"- its paired changes against ERM with 95% intervals over the {g['n_values']} training seeds of this one "
            f"data seed: WGA gain {iv(g)} points (the whole interval at or above +25: "
            f"{'yes' if g['lo'] >= GOAL_WGA_GAIN else 'no'}), average change {iv(a)} points (the whole interval at or "
            f"above -5: {'yes' if a['lo'] >= -GOAL_AVG_DROP else 'no'})"]
