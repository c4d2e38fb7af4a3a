"""The end-to-end demo benchmark: data → ERM → textual inversion → masks → generation → scoring →
pruning → retraining → report, with the baselines beside DDB (``ddb bench demo``).

One demo project per data seed d (``<workdir>/demo-d<d>``). In it, every training seed s has its own
ERM model, and every method's seed s starts from that seed: DDB retrains from ERM_s, DFR refits
ERM_s's last layer, JTT trains its identification model and its final model with seed s, the oracle
trains with seed s. The pipeline that makes DDB's candidates (selection, Ψ_i, tokens, generation,
scoring, the default thresholds) runs once per data seed, with the first seed's ERM model and with
the data seed as the seed of the textual inversion and of the generation noise: the candidates
belong to the data seed's draw — data, tokens and noise — and vary with it.

Every method is tuned on **val** only, each search on the first training seed (the other seeds train
with the choice), each grid stored in the result and printed in the docs:
- DDB: γ per class (every combination of ``gamma_grid`` over the classes), as the paper's Table 10;
- JTT: T (identification epochs) × λ_up, as the JTT paper;
- DFR: C of its L1 logistic regression on group-balanced val subsets, as the DFR paper
  (``method.baselines.run_dfr``).

With ``ablations``, each data seed also retrains DDB on every candidate (no pruning) and on
candidates made with the plain prompt (no textual inversion, its own copy of the project after ERM),
each with its own γ search, so that pruning − no pruning and token − plain prompt are paired
differences. ``bench_demo`` with several data seeds summarises them with intervals (``bench.stats``).
Every stage keeps its result in the project (models, candidates, scores) and in the meta key
``bench_demo``, so an interrupted run resumes where it stopped.

Ablations with their own commands, on the first data seed's project: ``bench pruning``, ``bench ti``,
``bench ti-source`` and ``bench recipe`` (``bench.ablations``), and ``bench scgs`` — SCGS and JTT+SCGS as the SCGS
paper does them (``bench.scgs``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..demo.pipeline import DemoPipelineConfig
from ..demo.pipeline import prepare as _prepare
from ..demo.pipeline import save_state as _save_state
from ..demo.pipeline import state as _state_of
from ..demo.pipeline import timed as _timed_stage
from ..project.errors import ProjectError
from ..method.inpainting import MICRO_MODEL, model_fingerprint
from ..project.progress import ProgressFn
from ..project.store import Project
from .docs import write_result
from .judges import judged_target_birds
from .words import _model_note  # noqa: F401 (average and scgs import it from here too)

DEFAULT_MODEL = MICRO_MODEL


@dataclass(frozen=True)
class DemoBenchConfig(DemoPipelineConfig):
    """The demo pipeline's settings (``demo.pipeline``) and what the benchmark adds: seeds, data seed,
    the retraining recipe, the baselines and every tuning grid."""

    seeds: tuple[int, ...] = (0, 1, 2)
    data_seed: int = 0
    retrain_epochs: int = 1
    retrain_lr: float = 2e-4
    retrain_evals: int = 4  # val checks per retraining epoch (model selection)
    gammas: Optional[tuple[float, ...]] = None
    # γ chosen by val WGA among these (first seed), as the paper tunes it; () = ``gammas`` as given
    gamma_grid: tuple[float, ...] = (1.0, 3.0, 10.0)
    per_class_gamma: bool = True  # one γ per class (every combination of the grid), as the paper's Table 10
    gen_ratio: float = 0.0
    jtt_epochs_grid: tuple[int, ...] = (1, 2)  # JTT's T, chosen on val with λ_up
    lambda_grid: tuple[float, ...] = (5.0, 20.0, 50.0)  # JTT's λ_up
    dfr_fits: int = 20  # DFR: balanced subsets averaged (and per C when tuning)
    # "oracle" adds the group-balanced oracle (train group labels) as a reference row
    baselines: tuple[str, ...] = ("jtt", "dfr")
    ablations: bool = False  # DDB without pruning and with the plain prompt, as paired differences
    data: Optional[dict] = None  # DemoDataConfig overrides (tests use a tiny benchmark)

    @staticmethod
    def quick() -> "DemoBenchConfig":
        """A smoke preset (≤ 5 min on 2 CPU cores): one seed, a small demo, short searches."""
        return DemoBenchConfig(seeds=(0,), k=40, ti_size=10, ti_steps=60, inpaint_steps=10, ig_steps=8,
                               retrain_epochs=1, gamma_grid=(1.0, 10.0), per_class_gamma=False, jtt_epochs_grid=(1,),
                               lambda_grid=(5.0, 20.0), baselines=("jtt", "dfr"))


def project_name(data_seed: int) -> str:
    return f"demo-d{data_seed}"


def _project(workdir: Path, cfg: DemoBenchConfig, on_progress, name: Optional[str] = None) -> Project:
    from ..api import create_project
    from ..demo.data import DemoDataConfig

    root = workdir / (name or project_name(cfg.data_seed))
    if Project.exists(root) and Project.open(root).sample_count():
        return Project.open(root)
    project, _ = create_project(root, "demo", demo=DemoDataConfig(**{"seed": cfg.data_seed, **(cfg.data or {})}),
                                replace=Project.exists(root),
                                on_progress=on_progress)
    return project


def prepare(project: Project, cfg: DemoBenchConfig, times: dict, on_progress=None, cancel=None) -> None:
    """The demo pipeline up to scored candidates, with the first seed's ERM model (``demo.pipeline``); the tokens and
    the generation noise are drawn with the data seed, so that each data seed's candidates are a new draw of both."""
    _prepare(project, cfg, times, on_progress, cancel, erm_seed=cfg.seeds[0], draw_seed=cfg.data_seed)


def _retrain_cfg(cfg: DemoBenchConfig):
    from ..method.retraining import RetrainConfig

    return RetrainConfig(train=replace(cfg.erm, epochs=cfg.retrain_epochs, lr=cfg.retrain_lr,
                                       evals_per_epoch=cfg.retrain_evals), gammas=cfg.gammas,
                         gamma_grid=tuple(cfg.gamma_grid), per_class=cfg.per_class_gamma, gen_ratio=cfg.gen_ratio,
                         seeds=tuple(cfg.seeds))


def _stat(vals: list[float]) -> dict:
    return {"mean": float(np.mean(vals)) if vals else None, "std": float(np.std(vals)) if vals else None,
            "values": vals}


def _row_from_models(project: Project, name: str, model_ids: list[int], labels: str, extra: Optional[dict] = None,
                     seeds: Optional[Sequence[int]] = None) -> dict:
    """A table row: test WGA, plain and train-weighted mean accuracy of one model per training seed."""
    tests = [project.model(m)["metrics"]["test"] for m in model_ids]
    row = {"method": name, "group_labels": labels, "model_ids": model_ids,
           "seeds": list(seeds) if seeds is not None else list(range(len(model_ids)))}
    for key, field_ in (("wga", "worst_group_acc"), ("mean_acc", "mean_acc"), ("train_weighted_acc", "train_weighted_acc")):
        row[key] = _stat([t[field_] for t in tests if t.get(field_) is not None])
    return {**row, **(extra or {})}


def _retrain_cached(project: Project, key: str, cfg: DemoBenchConfig, times: dict, erm_ids: dict[int, int],
                    candidates=None, on_progress=None, cancel=None, method: str = "ddb") -> list[int]:
    """One retraining per seed s, from ERM_s (``erm_ids``), remembered under ``key`` (a finished seed is not
    trained again). With a γ grid, the γ search runs first on the first seed (its runs remembered under
    ``key``-gamma) and the chosen γ's model is the first seed's model."""
    from ..method.retraining import _retrain_base, accepted_candidates, gamma_search, generated_plan
    from ..classifiers.training import train_classifier

    done = _state_of(project).get(key, {})
    rc = replace(_retrain_cfg(cfg), method=method)
    cands = accepted_candidates(project, method) if candidates is None else candidates
    if rc.gamma_grid:
        searched = _state_of(project).get(f"{key}-gamma", {})

        def remember(k, model_id):
            searched[k] = model_id
            _save_state(project, f"{key}-gamma", searched)

        gammas, table = _timed_stage(times, f"retrain {key}", lambda: gamma_search(
            project, replace(rc, init_model_id=erm_ids[cfg.seeds[0]]), cands, done=searched, on_done=remember,
            on_progress=on_progress, cancel=cancel, name=f"{key} ({len(cands)} generated)"))
        _save_state(project, f"{key}-gamma-table", table)
        rc = replace(rc, gammas=gammas, gamma_grid=())
        done.setdefault(str(cfg.seeds[0]), next(r["model_id"] for r in table if r["chosen"]))
        _save_state(project, key, done)
    for seed in cfg.seeds:
        if str(seed) in done:
            continue
        seed_rc = replace(rc, init_model_id=erm_ids[seed])
        plan = generated_plan(project, seed_rc, cands)
        res = _timed_stage(times, f"retrain {key}", lambda: train_classifier(
            project, replace(_retrain_base(project, seed_rc), seed=seed), role=method,
            name=f"{key} ({len(cands)} generated) from ERM seed {seed}", make_active=False, on_progress=on_progress,
            cancel=cancel, plan=plan))
        done[str(seed)] = res.model_id
        _save_state(project, key, done)
    return [done[str(s)] for s in cfg.seeds]


def _gamma_table(project: Project, key: str) -> Optional[list[dict]]:
    return _state_of(project).get(f"{key}-gamma-table")


def _erm_models(project: Project, cfg: DemoBenchConfig, times: dict, on_progress=None, cancel=None) -> dict[int, int]:
    """Seed → ERM model id: the first seed's is the active model; other seeds train the same recipe (or
    reuse a stored one)."""
    from ..classifiers.training import stored_model, train_classifier

    erm_ids = {cfg.seeds[0]: project.active_erm_id, **{int(k): v for k, v in _state_of(project).get("erm", {}).items()}}
    for seed in cfg.seeds:
        cached = stored_model(project, "erm", replace(cfg.erm, seed=seed)) if seed not in erm_ids else None
        if cached:
            erm_ids[seed] = cached["id"]
        if seed not in erm_ids:
            res = _timed_stage(times, "erm (other seeds)", lambda: train_classifier(
                project, replace(cfg.erm, seed=seed), role="erm", name=f"erm seed {seed}", make_active=False,
                on_progress=on_progress, cancel=cancel))
            erm_ids[seed] = res.model_id
        _save_state(project, "erm", {str(k): v for k, v in erm_ids.items()})
    return erm_ids


def _jtt_cached(project: Project, cfg: DemoBenchConfig, times: dict, on_progress=None, cancel=None, extra=None,
                role: str = "jtt", key: str = "baseline-jtt") -> tuple[list[int], dict]:
    """JTT with T and λ_up chosen on val (first seed), then the other seeds with the choice; each seed
    finds its own error set. Remembered under ``key``."""
    from ..method.baselines import JTTConfig, jtt_search, run_jtt

    st = _state_of(project).get(key, {})
    ids, search = st.get("ids", {}), st.get("search", {})
    Ts, lams = tuple(cfg.jtt_epochs_grid), tuple(cfg.lambda_grid)
    first = JTTConfig(train=replace(cfg.erm, seed=cfg.seeds[0]), jtt_epochs=Ts[0], lambda_up=lams[0],
                      seeds=cfg.seeds[:1])

    def remember(k, model_id):
        search[k] = model_id
        _save_state(project, key, {**st, "ids": ids, "search": search})

    (T, lam), table = _timed_stage(times, role, lambda: jtt_search(project, first, Ts, lams, done=search, on_done=remember,
                                                                   on_progress=on_progress, cancel=cancel, extra=extra,
                                                                   role=role))
    ids.setdefault(str(cfg.seeds[0]), next(r["model_id"] for r in table if r["chosen"]))
    for seed in cfg.seeds:
        if str(seed) not in ids:
            res = _timed_stage(times, role, lambda: run_jtt(
                project, JTTConfig(train=replace(cfg.erm, seed=seed), jtt_epochs=T, lambda_up=lam, seeds=(seed,)),
                on_progress=on_progress, cancel=cancel, extra=extra, role=role))
            ids[str(seed)] = res.model_ids[0]
        _save_state(project, key, {"ids": ids, "search": search, "choice": [T, lam], "table": table})
    error_sets = [(project.model(ids[str(s)])["config"].get("plan") or {}).get("jtt", {}).get("error_set")
                  for s in cfg.seeds]
    return [ids[str(s)] for s in cfg.seeds], {"search": table, "T": T, "lambda_up": lam, "error_set": error_sets}


def _baseline_cached(project: Project, name: str, cfg: DemoBenchConfig, times: dict, erm_ids: Optional[dict] = None,
                     on_progress=None, cancel=None):
    """DFR (on each seed's ERM model) or the oracle, one model per seed, remembered in the project."""
    from ..method.baselines import run_dfr, run_oracle

    key = f"baseline-{name}"
    done = _state_of(project).get(key, {})
    details = done.get("details", {})
    ids = done.get("ids", {})
    for seed in cfg.seeds:
        if str(seed) in ids:
            continue
        if name == "dfr":
            res = _timed_stage(times, "dfr", lambda: run_dfr(project, (seed,), n_fits=cfg.dfr_fits,
                                                             erm_ids={seed: (erm_ids or {}).get(seed)},
                                                             on_progress=on_progress, cancel=cancel))
            details = {**details, f"seed {seed}": {"C": res.details["C"][0]}}
        else:
            from ..classifiers.training import stored_model

            cached = stored_model(project, "oracle", replace(cfg.erm, seed=seed, sampler="group_balanced"))
            if cached:  # e.g. trained by another command on the same data and recipe
                ids[str(seed)] = cached["id"]
                _save_state(project, key, {"ids": ids, "details": {**details, "group_labels": "train+val"}})
                continue
            res = _timed_stage(times, "oracle", lambda: run_oracle(project, cfg.erm, (seed,), on_progress=on_progress,
                                                                   cancel=cancel))
        ids[str(seed)] = res.model_ids[0]
        details = {**details, "group_labels": res.group_labels}
        _save_state(project, key, {"ids": ids, "details": details})
    return [ids[str(s)] for s in cfg.seeds], details


LABELS = {"erm": "none (val groups for model selection)", "jtt": "val (model selection, T and λ_up)",
          "dfr": "val (last-layer fit)", "oracle": "train + val", "ddb": "val (model selection, γ)",
          "scgs": "val (model selection, share)", "jtt+scgs": "val (model selection, share)"}
NAMES = {"jtt": "JTT", "dfr": "DFR", "oracle": "Oracle (group-balanced)"}
NO_PRUNING, PLAIN = "DDB without pruning", "DDB with the plain prompt"


def bench_one(cfg: DemoBenchConfig, workdir: str = "projects/bench", on_progress: Optional[ProgressFn] = None,
              cancel=None) -> dict:
    """Every method on one data seed (``cfg.data_seed``): a row per method with one value per training seed."""
    from ..curation.decisions import summary, thresholds, thresholds_json

    t_start = time.monotonic()
    times: dict[str, float] = {}
    fresh = not Project.exists(Path(workdir) / project_name(cfg.data_seed))
    project = _timed_stage(times, "data", lambda: _project(Path(workdir), cfg, on_progress))
    before = _counts(project)
    prepare(project, cfg, times, on_progress, cancel)
    erm_ids = _erm_models(project, cfg, times, on_progress, cancel)
    seeds = list(cfg.seeds)
    rows = [_row_from_models(project, "ERM", [erm_ids[s] for s in seeds], LABELS["erm"], seeds=seeds)]
    tuning: dict = {}
    for b in cfg.baselines:
        if b == "jtt":
            ids, details = _jtt_cached(project, cfg, times, on_progress, cancel)
            tuning["JTT"] = details
        elif b in ("dfr", "oracle"):
            ids, details = _baseline_cached(project, b, cfg, times, erm_ids, on_progress, cancel)
            if b == "dfr":
                tuning["DFR"] = {"C": [project.model(m)["metrics"].get("C") for m in ids],
                                 "tuning": project.model(ids[0])["metrics"].get("tuning")}
        else:
            raise ProjectError(f"unknown baseline {b!r} for bench demo (jtt, dfr, oracle; SCGS has `bench scgs`)")
        rows.append(_row_from_models(project, NAMES[b], ids, LABELS[b], seeds=seeds))
    th = thresholds(project)
    counts = summary(project, th, method="ddb")
    ddb_ids = _retrain_cached(project, "ddb", cfg, times, erm_ids, on_progress=on_progress, cancel=cancel)
    rows.append(_row_from_models(project, "DDB", ddb_ids, LABELS["ddb"], seeds=seeds,
                                 extra={"accepted": {k: v["kept"] for k, v in counts.items()},
                                        "gamma_search": _gamma_table(project, "ddb")}))
    if cfg.ablations:
        every = list(project.db.query("select id, source_id, source_label, target_label, path from candidates "
                                      "where method = 'ddb' and psi is not null order by id"))
        ids = _retrain_cached(project, "ddb-no-pruning", cfg, times, erm_ids, candidates=every,
                              on_progress=on_progress, cancel=cancel)
        rows.append(_row_from_models(project, NO_PRUNING, ids, LABELS["ddb"], seeds=seeds,
                                     extra={"accepted": len(every), "gamma_search": _gamma_table(project, "ddb-no-pruning")}))
        plain = _copy_after_erm(project, Path(workdir) / f"{project_name(cfg.data_seed)}-plain")
        pcfg = replace(cfg, ti_size=0)
        pt: dict[str, float] = {}
        prepare(plain, pcfg, pt, on_progress, cancel)
        plain_erm = _erm_models(plain, pcfg, pt, on_progress, cancel)
        if plain_erm != erm_ids:
            raise ProjectError(f"{plain.root}: its ERM models {plain_erm} are not the main project's {erm_ids}")
        pcounts = summary(plain, thresholds(plain), method="ddb")
        ids = _retrain_cached(plain, "ddb", pcfg, pt, plain_erm, on_progress=on_progress, cancel=cancel)
        rows.append(_row_from_models(plain, PLAIN, ids, LABELS["ddb"], seeds=seeds,
                                     extra={"accepted": {k: v["kept"] for k, v in pcounts.items()},
                                            "gamma_search": _gamma_table(plain, "ddb"), "project": str(plain.root)}))
        times.update({f"plain prompt: {k}": v for k, v in pt.items()})
    result = {"config": _jsonable(asdict(cfg)), "data_seed": cfg.data_seed, "rows": rows, "pruning": counts,
              "target_birds": judged_target_birds(project),
              "thresholds": thresholds_json(th), "tuning": tuning, "erm_ids": {str(k): v for k, v in erm_ids.items()},
              "stage_seconds": times, "seconds": round(time.monotonic() - t_start, 1), "project": str(project.root),
              "model_sha256": model_fingerprint(cfg.model)}
    result["throughput"] = throughput(project, times, before)
    result["resumed"] = not fresh  # stage times then count only the work done in this invocation
    from ..curation.reporting import build_report, save_report

    rep = save_report(project, build_report(project, ddb_ids, erm_ids[cfg.seeds[0]], title="DDB on the demo (bench)"),
                      "table")
    result["ddb_report_id"] = rep["id"]
    return result


def bench_demo(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench",
               data_seeds: Sequence[int] = (0,), doc: Optional[Path] = None, json_path: Optional[Path] = None,
               on_progress: Optional[ProgressFn] = None, cancel=None, command: Optional[str] = None) -> dict:
    """``bench_one`` for each data seed, then the summary over data seeds × training seeds: per method a
    mean with its 95% interval, and the paired differences (``bench.seeds``)."""
    from .seeds import demo_markdown, summarise

    if not data_seeds:
        raise ProjectError("data_seeds: give at least one data seed")
    t0 = time.monotonic()
    per_data = [bench_one(replace(cfg, data_seed=d), workdir, on_progress, cancel) for d in data_seeds]
    result = summarise(per_data)
    result.update(config=_jsonable(asdict(cfg)), data_seeds=list(data_seeds), seconds=round(time.monotonic() - t0, 1),
                  model_sha256=model_fingerprint(cfg.model),
                  command=command or ("python -m ddb_core bench demo" + (" --quick" if cfg == DemoBenchConfig.quick() else "")
                                      + (f" --data-seeds {' '.join(map(str, data_seeds))}" if list(data_seeds) != [0] else "")
                                      + (" --ablations" if cfg.ablations and cfg != DemoBenchConfig.quick() else "")))
    write_result(result, doc, json_path, section_name(cfg, data_seeds), demo_markdown(result))
    return result


def section_name(cfg: DemoBenchConfig, data_seeds: Sequence[int]) -> str:
    if cfg == DemoBenchConfig.quick():
        return "demo-quick"
    return "demo" if len(data_seeds) == 1 else "demo-seeds"


def _counts(project: Project) -> dict:
    """What the project holds before a run: its last DDB candidate id and how many are scored."""
    q = project.db.execute("select coalesce(max(id), 0), count(psi) from candidates where method = 'ddb'").fetchone()
    return {"max_id": q[0], "scored": q[1]}


def throughput(project: Project, times: dict, before: Optional[dict] = None) -> dict:
    """Per-stage candidates/s on this machine and the overhead ratio (masking + scoring + storage) / diffusion.

    Diffusion time is the sum of the per-candidate inpainting times recorded in the provenance;
    storage is the rest of the generation stage (image files, rows, loading the sources). Only the
    candidates made and scored in this invocation count (``before``: ``_counts`` at its start), so a
    resumed run reports the rate of what it did, and nothing when it did nothing.
    """
    before = before or {"max_id": 0, "scored": 0}
    rows = list(project.db.query("select provenance from candidates where method = 'ddb' and id > ?", [before["max_id"]]))
    diffusion = sum(json.loads(r["provenance"]).get("seconds", 0.0) for r in rows)
    made = len(rows)
    scored = _counts(project)["scored"] - before["scored"]
    n_masks = project.db.execute("select count(*) from masks where backend = 'provided'").fetchone()[0]
    gen_t, mask_t, score_t = times.get("generation"), times.get("masks"), times.get("scoring")
    out = {"candidates": made, "scored": scored, "diffusion_seconds": round(diffusion, 1)}
    if gen_t and made:
        out["generation_per_s"] = round(made / gen_t, 2)
        out["storage_seconds"] = round(max(0.0, gen_t - diffusion), 1)
    if mask_t is not None and made:
        out["masking_per_s"] = round(n_masks / max(mask_t, 0.05), 1)
    if score_t and scored:
        out["scoring_per_s"] = round(scored / score_t, 2)
    if "generation_per_s" in out and "masking_per_s" in out and "scoring_per_s" in out and made == scored \
            and diffusion > 0:
        out["overhead_ratio"] = round((mask_t + score_t + out["storage_seconds"]) / diffusion, 3)
    return out


def _jsonable(d):
    return json.loads(json.dumps(d, default=str))


def _pm(stat: dict) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def _methods_table(rows: list[dict]) -> list[str]:
    lines = ["| method | group labels used | WGA % | mean acc % (plain) | mean acc % (train-weighted) |",
             "| --- | --- | ---: | ---: | ---: |"]
    return lines + [f"| {r['method']} | {r['group_labels']} | {_pm(r['wga'])} | {_pm(r['mean_acc'])} | "
                    f"{_pm(r['train_weighted_acc'])} |" for r in rows]


def _stage_times(res: dict) -> str:
    return ("- stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in res["stage_seconds"].items())
            + f"; total {res['seconds'] / 60:.1f} min" + _model_note(res))


# ---------------------------------------------------------------------------------------------
# What the ablations (``bench.ablations``) and the other demo benchmarks share.


def _copy_after_erm(src: Project, dst_root: Path) -> Project:
    """A copy of the bench project keeping data and ERM, without tokens, masks or candidates."""
    if Project.exists(dst_root):
        return Project.open(dst_root)
    tmp = dst_root.with_name(dst_root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    from ..project.store import DB_NAME

    skip = {"candidates", "ig", "tokens", "masks", "reports", "runs", "exports"}
    top = str(src.root.resolve())

    def ignore(folder, names):  # only the project's own top-level folders (the dataset has a masks/ too)
        if str(Path(folder).resolve()) != top:
            return []
        return [n for n in names if n in skip or n.startswith(DB_NAME)]

    shutil.copytree(src.root, tmp, ignore=ignore)
    src.db.execute("vacuum into ?", [str(tmp / DB_NAME)])  # a consistent copy of the live database
    p = Project.open(tmp)
    with p.write():
        for t in ("decisions", "audit", "candidates", "masks", "tokens", "selections", "reports"):
            p.db.execute(f"delete from {t}")
        p.set_meta("bench_demo", {})
        p.set_meta("thresholds", {})
    p.close()
    tmp.rename(dst_root)
    return Project.open(dst_root)


def _finish(cfg: DemoBenchConfig, command: str, rows: list[dict], times: dict, t0: float, doc: Optional[Path],
            json_path: Optional[Path], section: str, markdown, **extra) -> dict:
    """An ablation's result (config, rows, stage and total wall times, command, weights hash), written to docs."""
    res = {"config": _jsonable(asdict(cfg)), "rows": rows, "stage_seconds": times, **extra,
           "seconds": round(time.monotonic() - t0, 1), "command": f"python -m ddb_core bench {command}",
           "model_sha256": model_fingerprint(cfg.model)}
    write_result(res, doc, json_path, section, markdown(res))
    return res
