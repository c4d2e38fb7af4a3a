"""SCGS and JTT+SCGS on the demo, as the SCGS paper does them (``ddb bench scgs``).

- **SCGS**: the first seed's ERM model's misclassified training images → k-means → Gaussian-density
  sampling → Grad-CAM++ masks (the high-contribution region kept) → inpainting with the image's own
  class (``method.scgs``). Per class, ``share`` × the other classes' training images are generated
  (the paper: 40% on Waterbirds), as many seeded variants of each sampled image as that takes (the paper
  sets no cap; ``max_variants`` sets one). The images join the
  training split **as ordinary samples** (one mean loss over the batch, no γ) and a model trains from
  scratch with the ERM recipe — SCGS applied to ERM, as the paper applies it.
- The share is chosen on **val** among ``shares`` with the first seed; the other seeds train with the
  choice. Generation runs once, at the largest share: a smaller share keeps the first variants of
  every sampled image, which are exactly the images a smaller generation makes (variant v of an image
  has the same seed whatever the number of variants).
- **JTT+SCGS**: JTT with the main table's chosen T and λ_up (its error set upweighted), plus the SCGS
  images as ordinary samples; the share again chosen on val.

Runs on the project of ``bench demo`` (the first data seed), reusing its ERM and JTT models.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

from ..project.progress import ProgressFn
from ..project.store import Project
from .docs import write_result
from .demo import (LABELS, DemoBenchConfig, _erm_models, _jsonable, _jtt_cached, _methods_table, _model_note, _project,
                   _row_from_models, _save_state, _state_of, _timed_stage, prepare)

SHARES = (0.1, 0.2, 0.4)
NO_CAP = 1_000_000  # variants per sampled image: as many as the share needs, as the paper


def _subset(project: Project, scfg, share: float) -> list[dict]:
    """The SCGS candidates a generation at ``share`` makes: per class, the first variants of every image."""
    from ..method.retraining import accepted_candidates
    from ..method.scgs import variants_per_class

    keep = variants_per_class(project, replace(scfg, generate_fraction=share))
    return [c for c in accepted_candidates(project, "scgs")
            if int(project_key_variant(project, c["id"])) < keep.get(int(c["source_label"]), 0)]


def project_key_variant(project: Project, candidate_id: int) -> int:
    key = project.db.execute("select key from candidates where id = ?", [candidate_id]).fetchone()[0]
    return int(key.rsplit(":", 1)[1])


def _union_plan(project: Project, cands: list[dict]):
    from ..method.retraining import RetrainConfig, generated_plan

    return generated_plan(project, RetrainConfig(method="scgs", init="scratch", ordinary=True), cands)


def _share_search(project: Project, key: str, cfg: DemoBenchConfig, scfg, shares: Sequence[float], times: dict,
                  train_one, on_progress=None, cancel=None) -> tuple[float, list[dict], dict]:
    """One run per share with the first seed (remembered under ``key``), the best by val WGA (then accuracy)."""
    from ..method.retraining import selection_key

    st = _state_of(project).get(key, {})
    runs = st.get("search", {})
    table = []
    for share in shares:
        cands = _subset(project, scfg, share)
        k = f"{share:g}:{len(cands)}"  # a share's images change with the cap on variants
        if k not in runs:
            runs[k] = _timed_stage(times, key, lambda: train_one(cfg.seeds[0], cands))
            _save_state(project, key, {**st, "search": runs})
        m = project.model(runs[k])
        val = m["metrics"].get("val") or {}
        table.append({"share": share, "images": len(cands), "model_id": runs[k], "val_wga": val.get("worst_group_acc"),
                      "val_acc": val.get("mean_acc"), "key": selection_key(m["metrics"], "auto")})
    best = max(table, key=lambda r: r["key"])
    for r in table:
        r["chosen"] = r is best
        del r["key"]
    return best["share"], table, runs


def _seeds_cached(project: Project, key: str, cfg: DemoBenchConfig, first_id: int, cands: list[dict], times: dict,
                  train_one) -> list[int]:
    st = _state_of(project).get(key, {})
    ids = st.get("ids", {}) if st.get("ids_images") == len(cands) else {}
    ids.setdefault(str(cfg.seeds[0]), first_id)
    for seed in cfg.seeds:
        if str(seed) not in ids:
            ids[str(seed)] = _timed_stage(times, key, lambda: train_one(seed, cands))
            _save_state(project, key, {**_state_of(project).get(key, {}), "ids": ids, "ids_images": len(cands)})
    _save_state(project, key, {**_state_of(project).get(key, {}), "ids": ids, "ids_images": len(cands)})
    return [ids[str(s)] for s in cfg.seeds]


def bench_scgs(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench", doc: Optional[Path] = None,
               json_path: Optional[Path] = None, on_progress: Optional[ProgressFn] = None, cancel=None,
               shares: Sequence[float] = SHARES, max_variants: Optional[int] = None) -> dict:
    from .. import api
    from ..pipeline.generation import score
    from ..method.baselines import JTTConfig, run_jtt
    from ..method.inpainting import InpaintConfig
    from ..method.scgs import SCGSConfig, generate_scgs, select_scgs
    from ..classifiers.training import train_classifier

    t0 = time.monotonic()
    times: dict[str, float] = {}
    project = _project(Path(workdir), cfg, on_progress)
    prepare(project, cfg, times, on_progress, cancel)
    erm = _erm_models(project, cfg, times, on_progress, cancel)
    rows = [_row_from_models(project, "ERM", [erm[s] for s in cfg.seeds], LABELS["erm"], seeds=cfg.seeds)]
    jtt_ids, jtt = _jtt_cached(project, cfg, times, on_progress, cancel)
    rows.append(_row_from_models(project, "JTT", jtt_ids, LABELS["jtt"], seeds=cfg.seeds))

    scfg = SCGSConfig(seed=cfg.seeds[0], max_variants=max_variants or NO_CAP, generate_fraction=max(shares))
    st = _state_of(project)
    if st.get("scgs_selection") != asdict(scfg):
        _timed_stage(times, "scgs selection", lambda: select_scgs(project, scfg))
        _save_state(project, "scgs_selection", asdict(scfg))
    inp = InpaintConfig(model=cfg.model, steps=cfg.inpaint_steps, guidance=cfg.guidance, batch_size=16)
    _timed_stage(times, "scgs generation", lambda: generate_scgs(project, api.load_inpainter(project, cfg.model), scfg,
                                                                 inp, on_progress=on_progress, cancel=cancel))
    _timed_stage(times, "scgs scoring", lambda: score(project, n_steps=cfg.ig_steps, on_progress=on_progress,
                                                      cancel=cancel))

    def scgs_one(seed, cands):
        return train_classifier(project, replace(cfg.erm, seed=seed), role="scgs",
                                name=f"SCGS ({len(cands)} images, ordinary samples) seed {seed}", make_active=False,
                                on_progress=on_progress, cancel=cancel, plan=_union_plan(project, cands)).model_id

    share, table, _ = _share_search(project, "scgs-share", cfg, scfg, shares, times, scgs_one, on_progress, cancel)
    cands = _subset(project, scfg, share)
    ids = _seeds_cached(project, "scgs-share", cfg, next(r["model_id"] for r in table if r["chosen"]), cands, times,
                        scgs_one)
    rows.append(_row_from_models(project, "SCGS", ids, LABELS["scgs"], seeds=cfg.seeds,
                                 extra={"share_search": table, "share": share, "images": len(cands)}))

    def jtt_scgs_one(seed, cands):
        return run_jtt(project, JTTConfig(train=replace(cfg.erm, seed=seed), jtt_epochs=jtt["T"], lambda_up=jtt["lambda_up"],
                                          seeds=(seed,)), on_progress=on_progress, cancel=cancel,
                       extra=_union_plan(project, cands), role="jtt+scgs").model_ids[0]

    jshare, jtable, _ = _share_search(project, "jtt+scgs-share", cfg, scfg, shares, times, jtt_scgs_one, on_progress,
                                      cancel)
    jcands = _subset(project, scfg, jshare)
    jids = _seeds_cached(project, "jtt+scgs-share", cfg, next(r["model_id"] for r in jtable if r["chosen"]), jcands,
                         times, jtt_scgs_one)
    rows.append(_row_from_models(project, "JTT+SCGS", jids, LABELS["jtt+scgs"], seeds=cfg.seeds,
                                 extra={"share_search": jtable, "share": jshare, "images": len(jcands)}))
    from ..method.inpainting import model_fingerprint

    res = {"config": _jsonable(asdict(cfg)), "rows": rows, "stage_seconds": times, "shares": list(shares),
           "max_variants": max_variants, "jtt": {"T": jtt["T"], "lambda_up": jtt["lambda_up"]},
           "seconds": round(time.monotonic() - t0, 1), "command": "python -m ddb_core bench scgs",
           "model_sha256": model_fingerprint(cfg.model)}
    write_result(res, doc, json_path, "scgs", scgs_markdown(res))
    return res


def scgs_markdown(res: dict) -> str:
    c = res["config"]
    lines = ["## SCGS on the demo", "",
             f"Command: `{res['command']}` (on the project of `bench demo`, data seed {c['data_seed']}, whose ERM and JTT "
             f"models it reuses). Seeds {', '.join(map(str, c['seeds']))} (mean ± std over seeds, test split). SCGS as its "
             f"paper: misclassified train images, k-means + Gaussian-density sampling, Grad-CAM++ masks (high region "
             f"kept), {_cap_words(res)}, no pruning; the images join the training "
             f"set as ordinary samples and a model trains from scratch with the ERM recipe. The share of generated "
             f"images (per class, of the other classes' training images) is chosen by val WGA among "
             f"{', '.join(f'{s:g}' for s in res['shares'])} with seed {c['seeds'][0]}. JTT+SCGS: JTT (T = "
             f"{res['jtt']['T']}, λ_up = {res['jtt']['lambda_up']:g}, chosen on val in `bench demo`) plus the SCGS images, "
             "its share chosen the same way.", "",
             *_methods_table(res["rows"]), ""]
    for r in res["rows"]:
        if r.get("share_search"):
            lines.append(f"- share search for {r['method']} (images, val WGA % / val accuracy %): " + ", ".join(
                f"{t['share']:g}: {t['images']}, {100 * (t['val_wga'] or 0):.1f} / {100 * (t['val_acc'] or 0):.1f}"
                f"{' (chosen)' if t['chosen'] else ''}" for t in r["share_search"]))
    searched = [r for r in res["rows"] if r.get("share_search")]
    if searched and res.get("max_variants") and len({t["images"] for r in searched for t in r["share_search"]}) == 1:
        lines.append(f"- every share gives the same {searched[0]['share_search'][0]['images']} images: the first seed's ERM "
                     f"misclassifies few training images and each gets at most {res['max_variants']} variants, so that cap "
                     "binds before any share does, and the share search trains on one set")
    lines += _differences(res)
    lines.append("- stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in res["stage_seconds"].items())
                 + f"; total {res['seconds'] / 60:.1f} min" + _model_note(res))
    return "\n".join(lines) + "\n"


def _differences(res: dict) -> list[str]:
    """SCGS − ERM and JTT+SCGS − JTT, paired within each training seed, stated only where the interval excludes 0."""
    from .stats import paired, verdict

    by = {r["method"]: r for r in res["rows"]}
    d = res["config"]["data_seed"]
    out = []
    for a, b in (("SCGS", "ERM"), ("JTT+SCGS", "JTT")):
        if a in by and b in by:
            va, vb = ({d: dict(zip(by[m].get("seeds") or range(len(by[m]["wga"]["values"])), by[m]["wga"]["values"]))}
                      for m in (a, b))
            out.append(f"- {a} − {b}, WGA, paired within each training seed (95% interval over the training seeds of one "
                       f"data seed): {verdict(paired(va, vb))}")
    return out


def _cap_words(res: dict) -> str:
    cap = res.get("max_variants")
    return (f"at most {cap} variants per sampled image" if cap else
            "as many seeded variants of each sampled image as the share needs (the paper sets no cap)")
