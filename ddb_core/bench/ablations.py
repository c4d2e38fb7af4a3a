"""The demo's ablations, each with its own command, on the first data seed's project (``bench.demo`` builds it):

- ``bench pruning`` — the paper's Table 2 shape: per class, candidates and pruned, and retraining with pruning
  against retraining on every candidate;
- ``bench ti`` — the paper's Table 5 shape: textual-inversion set size 0 / 10 / 20 / 30 / 40;
- ``bench ti-source`` — which textual-inversion images (none / highest-loss / random / val minority) make a token
  that draws the target bird, judged by the target-bird judges, and what DDB retrained on them gains;
- ``bench recipe`` — the retraining recipe (epochs and learning rate), every seed, chosen on val.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..project.store import Project
from .demo import (LABELS, DemoBenchConfig, _baseline_cached, _copy_after_erm, _erm_models, _finish, _gamma_table, _pm,
                   _project, _retrain_cached, _row_from_models, prepare, project_name)
from .judges import judged_target_birds, tally, target_bird_lines
from .words import TI_WORDS, _gamma_lines, _gamma_words, _model_note


def bench_pruning(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench", doc: Optional[Path] = None,
                  json_path: Optional[Path] = None, on_progress=None, cancel=None) -> dict:
    """Table 2 shape: per class, candidates and pruned; WGA with pruning vs with every candidate."""
    from ..curation.decisions import summary, thresholds

    t0 = time.monotonic()
    times: dict[str, float] = {}
    project = _project(Path(workdir), cfg, on_progress)
    prepare(project, cfg, times, on_progress, cancel)
    erm_ids = _erm_models(project, cfg, times, on_progress, cancel)
    counts = summary(project, thresholds(project), method="ddb")
    every = list(project.db.query("select id, source_id, source_label, target_label, path from candidates "
                                  "where method = 'ddb' and psi is not null order by id"))
    pruned_ids = _retrain_cached(project, "ddb", cfg, times, erm_ids, on_progress=on_progress, cancel=cancel)
    all_ids = _retrain_cached(project, "ddb-no-pruning", cfg, times, erm_ids, candidates=every, on_progress=on_progress,
                              cancel=cancel)
    # An independent judge of each candidate: the group-balanced oracle of the first seed (train group labels;
    # used only for this measurement, never for pruning).
    oracle_ids, _ = _baseline_cached(project, "oracle", replace(cfg, seeds=cfg.seeds[:1]), times, None, on_progress,
                                     cancel)
    judged = judged_swaps(project, oracle_ids[0])
    birds = judged_target_birds(project)
    rows = [_row_from_models(project, "DDB with pruning", pruned_ids, LABELS["ddb"],
                             {"gamma_search": _gamma_table(project, "ddb")}),
            _row_from_models(project, "DDB without pruning", all_ids, LABELS["ddb"],
                             {"gamma_search": _gamma_table(project, "ddb-no-pruning")})]
    from .stats import paired

    # pruning − no pruning, paired within each training seed (both retrained from that seed's ERM)
    diff = {key: paired({cfg.data_seed: dict(zip(cfg.seeds, rows[0][key]["values"]))},
                        {cfg.data_seed: dict(zip(cfg.seeds, rows[1][key]["values"]))}).to_dict()
            for key in ("wga", "mean_acc")}
    return _finish(cfg, "pruning", rows, times, t0, doc, json_path, "ablation-pruning", pruning_markdown,
                   per_direction=counts, judged=judged, judge_model=oracle_ids[0], difference=diff, target_birds=birds)


def says_target(project: Project, model_id: int, rows: list[dict]) -> np.ndarray:
    """Whether model ``model_id`` (a judge: the group-balanced oracle) classifies each candidate of ``rows``
    (``path``, ``target_label``) as its target class; on the project's device."""
    from ..project.device import resolve_device
    from ..data.imaging import ClassifierDataset, ImageSet
    from ..classifiers.models import load_classifier, predict
    from ..project.settings import compute_device

    m = project.model(model_id)
    device = resolve_device(compute_device(project))
    model, _arch, _n = load_classifier(project.project_path(m["path"]), m["arch"], m["num_classes"], device=device,
                                       what="benchmark judge")
    data = ClassifierDataset(ImageSet([project.project_path(r["path"]) for r in rows], m["image_size"]),
                             [r["target_label"] for r in rows])
    return predict(model, data, device=device).argmax(1).numpy() == np.array([r["target_label"] for r in rows])


def judged_swaps(project: Project, judge_id: int, method: str = "ddb") -> dict[str, dict[str, dict[str, int]]]:
    """Per direction "i->i'", for the kept and the pruned candidates: how many, and how many ``judge_id`` labels i'.

    A check of the pruning rule against a classifier that does not share the ERM model's shortcut (the demo's
    group-balanced oracle): a useful rule keeps a larger share of real class swaps than it prunes.
    """
    from ..curation.decisions import decisions

    kept = {d.candidate_id: d.kept for d in decisions(project, "c.method = ?", [method])}
    rows = [r for r in project.db.query("select id, source_label, target_label, path from candidates "
                                        "where method = ? order by id", [method]) if r["id"] in kept]
    out: dict[str, dict[str, dict[str, int]]] = {}
    if not rows:
        return out
    tally(out, rows, says_target(project, judge_id, rows), kept, "judged_target")
    return dict(sorted(out.items()))


def _share(part: dict) -> str:
    return f"{part['judged_target']}/{part['n']}" + (f" ({100 * part['judged_target'] / part['n']:.0f}%)" if part["n"] else "")


def pruning_markdown(res: dict) -> str:
    lines = ["## Ablation: pruning (the shape of the paper's Table 2)", "",
             f"Command: `{res['command']}`. In a workdir where `bench demo` ran, it reuses that run's models (ERM, "
             "DDB with pruning, the oracle) and its wall time counts only what it adds.", "",
             "| direction (source → target) | candidates | pruned | kept |", "| --- | ---: | ---: | ---: |"]
    for d, v in res["per_direction"].items():
        lines.append(f"| {d} | {v['candidates']} | {v['candidates'] - v['kept']} | {v['kept']} |")
    if res.get("judged"):
        lines += ["", "Class swaps as an independent judge sees them: the share of candidates that the group-balanced "
                      f"oracle (model {res['judge_model']}, first seed; trained with **train group labels**, used only for "
                      "this check) labels as the target class.", "",
                  "| direction | kept: judged target | pruned: judged target |", "| --- | ---: | ---: |"]
        for d, v in res["judged"].items():
            lines.append(f"| {d} | {_share(v['kept'])} | {_share(v['pruned'])} |")
    if res.get("target_birds"):
        lines += ["", "What a person sees: kept and pruned candidates that the judges of `ddb bench judges` call a target "
                      "bird (a bird of the target class in the repainted region; they read a crop around the mask, not "
                      "the whole image).", ""] + target_bird_lines(res["target_birds"])
    lines += ["", "| retraining set | WGA % | mean acc % (plain) |", "| --- | ---: | ---: |"]
    for r in res["rows"]:
        lines.append(f"| {r['method']} | {_pm(r['wga'])} | {_pm(r['mean_acc'])} |")
    lines.append("")
    lines += _gamma_lines(res["rows"])
    if res.get("difference"):
        from .seeds import _as_interval
        from .stats import verdict

        iv = {k: _as_interval(d) for k, d in res["difference"].items()}
        lines.append(f"- pruning − no pruning, paired within each training seed (95% interval over the training seeds of "
                     f"one data seed): WGA {verdict(iv['wga'])}; mean accuracy (plain) {verdict(iv['mean_acc'])}")
    lines.append(f"- wall time {res['seconds'] / 60:.1f} min" + _model_note(res))
    return "\n".join(lines) + "\n"


def bench_ti(cfg: DemoBenchConfig = DemoBenchConfig(), sizes: Sequence[int] = (0, 10, 20, 30, 40), k: float = 100,
             workdir: str = "projects/bench", doc: Optional[Path] = None, json_path: Optional[Path] = None,
             on_progress=None, cancel=None) -> dict:
    """Table 5 shape: TI set size → pruned count and WGA (size 0 = the plain class-agnostic prompt)."""
    from ..curation.decisions import summary, thresholds

    t0 = time.monotonic()
    times: dict[str, float] = {}
    base = _project(Path(workdir), cfg, on_progress)
    if base.active_erm_id is None:
        from .. import api

        api.train_erm(base, replace(cfg.erm, seed=cfg.seeds[0]), on_progress=on_progress, cancel=cancel)
    _erm_models(base, cfg, times, on_progress, cancel)  # every seed's ERM, so that the copies share them
    rows = []
    for size in sizes:
        p = _copy_after_erm(base, Path(workdir) / f"{project_name(cfg.data_seed)}-ti{size}")
        vcfg = replace(cfg, ti_size=size, k=k)
        prepare(p, vcfg, times, on_progress, cancel)
        erm_ids = _erm_models(p, vcfg, times, on_progress, cancel)
        counts = summary(p, thresholds(p), method="ddb")
        ids = _retrain_cached(p, "ddb", vcfg, times, erm_ids, on_progress=on_progress, cancel=cancel)
        row = _row_from_models(p, f"TI size {size}", ids, LABELS["ddb"], {"gamma_search": _gamma_table(p, "ddb")})
        row.update(ti_size=size, candidates=sum(v["candidates"] for v in counts.values()),
                   pruned=sum(v["candidates"] - v["kept"] for v in counts.values()), per_direction=counts)
        rows.append(row)
    return _finish(cfg, "ti", rows, times, t0, doc, json_path, "ablation-ti", ti_markdown, k=k)


def bench_ti_source(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench",
                    sources: Sequence[str] = ("none", "high_loss", "random", "val_minority"), k: float = 100,
                    doc: Optional[Path] = None, json_path: Optional[Path] = None, on_progress=None, cancel=None) -> dict:
    """Which textual-inversion images make a token that draws the target bird: per TI source, the demo built as the
    product builds it (its token recipe, masks, generation, scoring and pruning) on a copy of the first data seed's
    project after ERM, then its candidates judged by what a person sees (the target-bird judges of
    ``bench judges``, kept and pruned) and DDB retrained on the kept ones (WGA, every seed).

    "none" is the plain prompt ("a photo of a bird", no token); "val_minority" uses val group labels (the paper's
    option); the others use none. ``k`` sources per class, as ``bench ti``."""
    from ..curation.decisions import summary, thresholds

    t0 = time.monotonic()
    times: dict[str, float] = {}
    base = _project(Path(workdir), cfg, on_progress)
    if base.active_erm_id is None:
        from .. import api

        api.train_erm(base, replace(cfg.erm, seed=cfg.seeds[0]), on_progress=on_progress, cancel=cancel)
    _erm_models(base, cfg, times, on_progress, cancel)  # every seed's ERM, so that the copies share them
    rows = []
    for source in sources:
        ts = time.monotonic()
        p = _copy_after_erm(base, Path(workdir) / f"{project_name(cfg.data_seed)}-tisrc-{source}")
        vcfg = replace(cfg, k=k, ti_size=0 if source == "none" else cfg.ti_size,
                       ti_source=cfg.ti_source if source == "none" else source)
        prepare(p, vcfg, times, on_progress, cancel)
        erm_ids = _erm_models(p, vcfg, times, on_progress, cancel)
        counts = summary(p, thresholds(p), method="ddb")
        ids = _retrain_cached(p, "ddb", vcfg, times, erm_ids, on_progress=on_progress, cancel=cancel)
        row = _row_from_models(p, TI_SOURCE_WORDS.get(source, source), ids, LABELS["ddb"],
                               {"gamma_search": _gamma_table(p, "ddb")})
        row.update(source=source, ti_size=vcfg.ti_size, per_direction=counts, target_birds=judged_target_birds(p),
                   seconds=round(time.monotonic() - ts, 1))
        rows.append(row)
    return _finish(cfg, "ti-source", rows, times, t0, doc, json_path, "ablation-ti-source", ti_source_markdown, k=k)


def _seed_cell(stat: dict, seeds) -> str:
    """Mean ± std over training seeds; one seed's figure alone (a std over one draw would read as no spread)."""
    return _pm(stat) if len(seeds) > 1 else f"{100 * stat['mean']:.1f}"


ONE_DRAW = ("One training seed: each row is one draw (its token, candidates and retraining), and no interval is given; "
            "a difference between rows is not shown to be more than what another draw would move. More seeds: `--seeds`.")


TI_SOURCE_WORDS = {"none": "none (plain prompt)", **TI_WORDS}


def ti_source_markdown(res: dict) -> str:
    c = res["config"]
    seeds = c["seeds"]
    dirs = list(res["rows"][0]["target_birds"]) if res["rows"] else []
    lines = ["## Textual-inversion set: which images make a token that draws the target bird", "",
             f"Command: `{res['command']}`; K = {res['k']} per class; per textual-inversion set, the demo built on a copy "
             f"of the first data seed's project after ERM as the product builds it ({c['ti_size']} images per class, "
             f"{c['ti_steps']} steps; {c['inpaint_steps']} DDIM steps, guidance {c['guidance']}); its candidates judged by "
             "the target-bird judges (`bench judges`: a bird of the target class in the repainted region), kept and pruned "
             "at the default thresholds; DDB retrained on the kept ones, seed"
             f"{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}{' (mean ± std)' if len(seeds) > 1 else ''}; "
             f"{_gamma_words(c)}. "
             "The val minority-group set uses val group labels (the paper's option); the others use none. The judges "
             "pass some blobs and ghosts a person would not call birds (\"Do the judges agree with a person's eyes?\"): "
             "their counts are an upper bound.", "",
             "| textual-inversion images | " + " | ".join(f"{d}: target birds (kept / all)" for d in dirs)
             + " | WGA % | mean acc % (plain) |",
             "| --- | " + " | ".join("---:" for _ in dirs) + " | ---: | ---: |"]
    for r in res["rows"]:
        tb = r["target_birds"]
        cells = [f"{tb[d]['kept']['target_bird']}/{tb[d]['kept']['n']} / "
                 f"{tb[d]['kept']['target_bird'] + tb[d]['pruned']['target_bird']}/{tb[d]['kept']['n'] + tb[d]['pruned']['n']}"
                 for d in dirs]
        lines.append(f"| {TI_SOURCE_WORDS.get(r['source'], r['source'])} | " + " | ".join(cells)
                     + f" | {_seed_cell(r['wga'], seeds)} | {_seed_cell(r['mean_acc'], seeds)} |")
    lines += ["", ONE_DRAW, ""] if len(seeds) == 1 else [""]
    lines += _gamma_lines([{**r, "method": TI_SOURCE_WORDS.get(r["source"], r["source"])} for r in res["rows"]])
    lines.append(f"- wall time {res['seconds'] / 60:.1f} min" + _model_note(res))
    return "\n".join(lines) + "\n"


def ti_markdown(res: dict) -> str:
    seeds = res["config"]["seeds"]
    lines = ["## Ablation: textual inversion (the shape of the paper's Table 5)", "",
             f"Command: `{res['command']}`; K = {res['k']} per class; seed{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(map(str, seeds))}{' (mean ± std over seeds)' if len(seeds) > 1 else ''}; TI sets of {TI_WORDS[res['config'].get('ti_source', 'high_loss')]} images; "
             f"size 0 = the plain prompt \"a photo of a bird\"; "
             f"{_gamma_words(res['config'])}.", "",
             "| TI set size | candidates | pruned | WGA % | mean acc % (plain) |", "| ---: | ---: | ---: | ---: | ---: |"]
    for r in res["rows"]:
        lines.append(f"| {r['ti_size']} | {r['candidates']} | {r['pruned']} | {_seed_cell(r['wga'], seeds)} | "
                     f"{_seed_cell(r['mean_acc'], seeds)} |")
    lines += ["", ONE_DRAW, ""] if len(seeds) == 1 else [""]
    lines += _gamma_lines([{**r, "method": f"TI set size {r['ti_size']}"} for r in res["rows"]])
    lines.append(f"- wall time {res['seconds'] / 60:.1f} min" + _model_note(res))
    return "\n".join(lines) + "\n"


RECIPES = ((1, 1e-4), (1, 2e-4), (1, 5e-4), (2, 2e-4))  # (epochs, lr) of the DDB retraining


def bench_recipe(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench",
                 recipes: Sequence[tuple[int, float]] = RECIPES, doc: Optional[Path] = None,
                 json_path: Optional[Path] = None, on_progress=None, cancel=None) -> dict:
    """How the retraining recipe was chosen: DDB retrained with γ = 1 for each (epochs, lr), every seed, on the
    demo project of ``bench demo``; the recipe with the best mean val WGA (the selection metric) is marked.
    Test WGA is reported beside it, not used."""
    t0 = time.monotonic()
    times: dict[str, float] = {}
    project = _project(Path(workdir), cfg, on_progress)
    prepare(project, cfg, times, on_progress, cancel)
    erm_ids = _erm_models(project, cfg, times, on_progress, cancel)
    rows = []
    for epochs, lr in recipes:
        vcfg = replace(cfg, retrain_epochs=int(epochs), retrain_lr=float(lr), gamma_grid=(), gammas=None)
        key = f"recipe-e{epochs}-lr{lr:g}"
        ids = _retrain_cached(project, key, vcfg, times, erm_ids, on_progress=on_progress, cancel=cancel)
        metrics = [project.model(m)["metrics"] for m in ids]
        val = [m["val"]["worst_group_acc"] for m in metrics]
        row = _row_from_models(project, f"{epochs} epoch{'s' if epochs != 1 else ''}, lr {lr:g}", ids, LABELS["ddb"])
        row.update(epochs=int(epochs), lr=float(lr), val_wga=[float(v) for v in val], val_wga_mean=float(np.mean(val)),
                   best_points=[m.get("best_epoch") for m in metrics])
        rows.append(row)
    best = max(rows, key=lambda r: r["val_wga_mean"])
    for r in rows:
        r["chosen"] = r is best
    return _finish(cfg, "recipe", rows, times, t0, doc, json_path, "ablation-recipe", recipe_markdown,
                   default={"epochs": cfg.retrain_epochs, "lr": cfg.retrain_lr})


def recipe_markdown(res: dict) -> str:
    c = res["config"]
    lines = ["## Ablation: the retraining recipe", "",
             f"Command: `{res['command']}` (after `bench demo`, on its project and candidates). DDB retrained from the "
             f"ERM checkpoint with γ = 1 for each number of epochs and learning rate, seeds "
             f"{', '.join(map(str, c['seeds']))}, val checked {c.get('retrain_evals', 1)} times per epoch. The selection "
             f"metric is the mean val WGA over seeds; test WGA is shown beside it and was not used.", "",
             "| epochs | lr | val WGA % per seed | val WGA % (mean) | test WGA % | test mean acc % (plain) | chosen checks (epoch) |",
             "| ---: | ---: | --- | ---: | ---: | ---: | --- |"]
    for r in res["rows"]:
        mark = " **(best val)**" if r["chosen"] else ""
        lines.append(f"| {r['epochs']} | {r['lr']:g} | {', '.join(f'{100 * v:.1f}' for v in r['val_wga'])} | "
                     f"{100 * r['val_wga_mean']:.1f}{mark} | {_pm(r['wga'])} | {_pm(r['mean_acc'])} | "
                     f"{', '.join(str(b) for b in r['best_points'])} |")
    d = res["default"]
    best = next(r for r in res["rows"] if r["chosen"])
    same = best["epochs"] == d["epochs"] and abs(best["lr"] - d["lr"]) < 1e-12
    lines += ["", f"- the demo's recipe ({d['epochs']} epoch{'s' if d['epochs'] != 1 else ''}, lr {d['lr']:g}) "
                  f"{'is' if same else 'is not'} the one with the best mean val WGA",
              f"- wall time {res['seconds'] / 60:.1f} min" + _model_note(res)]
    return "\n".join(lines) + "\n"
