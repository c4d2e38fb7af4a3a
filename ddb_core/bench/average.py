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


from ..project.progress import ProgressFn
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


def _values(project, ids: list[int], seeds: Sequence[int], split: str, field: str) -> dict[int, Optional[float]]:
    return {int(s): project.model(i)["metrics"][split].get(field) for s, i in zip(seeds, ids)}


def _figures(runs: list[tuple[int, dict, dict]]) -> dict:
    """Means and paired intervals of one variant over data seeds × training seeds.

    ``runs``: per data seed d, (d, {split: {field: {seed: value}}} of the variant, the same of ERM). The changes are
    paired with ERM of the same data seed and training seed; the interval is over data seeds when there are several,
    else over training seeds (``stats.interval``)."""
    from .stats import interval, paired

    out = {}
    for split in ("val", "test"):
        def by(which: int, field: str) -> dict[int, dict[int, float]]:
            return {d: {s: v for s, v in (a, e)[which][split][field].items() if v is not None} for d, a, e in runs}

        wga, wga_e = by(0, "worst_group_acc"), by(1, "worst_group_acc")
        avg, avg_e = by(0, "train_weighted_acc"), by(1, "train_weighted_acc")
        has_avg = all(avg[d] and len(avg[d]) == len(wga[d]) for d in avg) and all(avg_e.values())
        gain, change = paired(wga, wga_e), paired(avg, avg_e) if has_avg else None
        out[split] = {"wga": interval({d: list(v.values()) for d, v in wga.items()}).mean,
                      "avg": interval({d: list(v.values()) for d, v in avg.items()}).mean if has_avg else None,
                      "wga_gain": gain.mean, "avg_change": change.mean if change else None,
                      "wga_values": {str(d): list(v.values()) for d, v in wga.items()},
                      "wga_gain_interval": gain.to_dict(), "avg_change_interval": change.to_dict() if change else None}
    return out


def _split_values(project, ids: list[int], seeds: Sequence[int]) -> dict:
    return {split: {f: _values(project, ids, seeds, split, f) for f in ("worst_group_acc", "train_weighted_acc")}
            for split in ("val", "test")}


def bench_average(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench",
                  gammas: Sequence[float] = GAMMAS, gen_ratios: Sequence[float] = GEN_RATIOS,
                  fractions: Sequence[float] = FRACTIONS, doc: Optional[Path] = None, json_path: Optional[Path] = None,
                  on_progress: Optional[ProgressFn] = None, cancel=None,
                  data_seeds: Optional[Sequence[int]] = None) -> dict:
    """The study on each data seed's project (``bench demo``'s ``demo-dD``), every variant paired with ERM."""
    from ..method.retraining import accepted_candidates

    t0 = time.monotonic()
    times: dict[str, float] = {}
    data_seeds = list(data_seeds) if data_seeds else [cfg.data_seed]
    per_variant: dict[tuple[str, str], dict] = {}
    chosen_by_data: dict[str, list[float]] = {}
    for d in data_seeds:
        dcfg = replace(cfg, data_seed=int(d))
        project = _project(Path(workdir), dcfg, on_progress)
        prepare(project, dcfg, times, on_progress, cancel)
        erm_ids = _erm_models(project, dcfg, times, on_progress, cancel)
        erm = _split_values(project, [erm_ids[s] for s in cfg.seeds], cfg.seeds)
        main = _retrain_cached(project, "ddb", dcfg, times, erm_ids, on_progress=on_progress, cancel=cancel)
        table = _gamma_table(project, "ddb")
        chosen = tuple(next(r["gammas"] for r in table if r["chosen"])) if table else tuple(cfg.gammas or ())
        chosen_by_data[str(d)] = list(chosen)
        cands = accepted_candidates(project, "ddb")
        fixed = replace(dcfg, gammas=chosen or None, gamma_grid=())
        # (factor, label in the table, the key's label as stored runs know it, config, candidates, models)
        variants = [("as benched", "γ per class chosen on val, every accepted sample", None, None, cands, main)]
        variants += [("γ", f"γ = {g:g} for every class", None, replace(fixed, gammas=(float(g),) * len(chosen or (0, 0))),
                      cands, None) for g in gammas]
        variants += [("generated share", f"{100 * r:g}% of every batch generated", None,
                      replace(fixed, gen_ratio=float(r)), cands, None) for r in gen_ratios]
        variants += [("accepted samples", f"{100 * f:g}% of the accepted",
                      f"{100 * f:g}% of the accepted ({len(_subset(cands, f))} of {len(cands)})", fixed,
                      _subset(cands, f), None) for f in fractions]
        for factor, label, key_label, vcfg, vcands, ids in variants:
            if ids is None:
                key = f"average-{factor}-{key_label or label}".replace(" ", "_")
                ids = _retrain_cached(project, key, vcfg, times, erm_ids, candidates=vcands, on_progress=on_progress,
                                      cancel=cancel)
            v = per_variant.setdefault((factor, label), {"factor": factor, "variant": label, "model_ids": {},
                                                         "accepted": {}, "runs": []})
            v["model_ids"][str(d)] = ids
            v["accepted"][str(d)] = len(vcands)
            v["runs"].append((int(d), _split_values(project, ids, cfg.seeds), erm))
    rows = []
    for v in per_variant.values():
        runs = v.pop("runs")
        rows.append({**v, **_figures(runs)})
    ok_val = [r for r in rows if r["val"]["avg_change"] is not None and r["val"]["avg_change"] >= -GOAL_AVG_DROP]
    pick = max(ok_val, key=lambda r: r["val"]["wga"]) if ok_val else None
    for r in rows:
        r["picked_on_val"] = r is pick
        r["meets_goal"] = (r["test"]["wga_gain"] >= GOAL_WGA_GAIN and r["test"]["avg_change"] is not None
                           and r["test"]["avg_change"] >= -GOAL_AVG_DROP)
    command = "average" + (f" --data-seeds {' '.join(map(str, data_seeds))}" if data_seeds != [0] else "")
    return _finish(replace(cfg, data_seed=int(data_seeds[0])), command, rows, times, t0, doc, json_path, "average",
                   average_markdown, chosen_gammas=chosen_by_data, data_seeds=[int(d) for d in data_seeds])


def _pt(x: Optional[float], sign: bool = False) -> str:
    return "—" if x is None else (f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}")


def average_markdown(res: dict) -> str:
    c = res["config"]
    ds = res.get("data_seeds") or [res.get("data_seed", 0)]
    several = len(ds) > 1
    chosen = res.get("chosen_gammas")
    chosen_words = ("; ".join(f"data seed {d}: γ {', '.join(f'{g:g}' for g in gs)}" for d, gs in chosen.items())
                    if isinstance(chosen, dict) else ", ".join(f"{g:g}" for g in chosen or []))
    lines = ["## Average accuracy: what brings it back", "",
             f"Command: `{res['command']}` (after `bench demo`, on its project{'s' if several else ''}, data "
             f"seed{'s' if several else ''} {', '.join(map(str, ds))}). DDB retrained from each training seed's own ERM "
             f"(seeds {', '.join(map(str, c['seeds']))}), one factor moved at a time from the main table's DDB (γ per "
             f"class chosen on val: {chosen_words}). Average = accuracy with each group weighted by its share of train; "
             "changes are paired against ERM of the same "
             + ("data seed and training seed, in points, means over data seeds × training seeds. " if several else
                "seed, in points, means over the seeds. ")
             + "The variant picked on val is the best val WGA among those whose val average is within 5 points of "
             "ERM's; the goal is read on test: WGA ≥ ERM + 25 points and average within 5 points of ERM's.", "",
             "| factor | variant | accepted | val WGA | val avg change | test WGA | WGA gain vs ERM | test avg "
             "| avg change vs ERM | picked on val | meets goal (means) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in res["rows"]:
        v, t = r["val"], r["test"]
        acc = r["accepted"]
        acc = ", ".join(str(n) for n in acc.values()) if isinstance(acc, dict) else str(acc)
        lines.append(f"| {r['factor']} | {r['variant']} | {acc} | {_pt(v['wga'])} | {_pt(v['avg_change'], True)} | "
                     f"{_pt(t['wga'])} | {_pt(t['wga_gain'], True)} | {_pt(t['avg'])} | {_pt(t['avg_change'], True)} | "
                     f"{'**yes**' if r['picked_on_val'] else ''} | {'yes' if r['meets_goal'] else 'no'} |")
    pick = next((r for r in res["rows"] if r["picked_on_val"]), None)
    met = [r["variant"] for r in res["rows"] if r["meets_goal"]]
    lines += ["", ("- picked on val: **" + pick["variant"] + f"** (test: WGA gain {_pt(pick['test']['wga_gain'], True)}, "
                   f"average change {_pt(pick['test']['avg_change'], True)} points; goal "
                   f"{'met' if pick['meets_goal'] else 'not met'} on the means)") if pick else
              "- no variant keeps the val average within 5 points of ERM's",
              *(_pick_intervals(pick["test"]) if pick else []),
              "- variants meeting the goal on the test means: " + (", ".join(met) if met else "none"),
              f"- wall time {res['seconds'] / 60:.1f} min" + _model_note(res)]
    return "\n".join(lines) + "\n"


def _pick_intervals(test: dict) -> list[str]:
    """The picked variant's changes with their 95% intervals, and whether the whole interval meets each goal."""
    g, a = test.get("wga_gain_interval"), test.get("avg_change_interval")
    if not g or g.get("lo") is None or not a or a.get("lo") is None:
        return []

    def iv(d):
        return f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"

    over = (f"the {g['n_data']} data seeds ({g['n_values']} runs)" if g["scope"] == "data seeds"
            else f"the {g['n_values']} training seeds of this one data seed")
    return [f"- its paired changes against ERM with 95% intervals over {over}: WGA gain {iv(g)} points (the whole "
            f"interval at or above +25: {'yes' if g['lo'] >= GOAL_WGA_GAIN else 'no'}), average change {iv(a)} points "
            f"(the whole interval at or above -5: {'yes' if a['lo'] >= -GOAL_AVG_DROP else 'no'})"]
