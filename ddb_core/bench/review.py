"""What a human look is worth (``ddb bench review``): on the demo, over data seeds, a simulated reviewer looks
at a budget of the candidates — in queue order (``ddb_core.curation.queue``, its map signal live: the candidate map is
computed first), in random order, or by ρ from the lowest — and accepts or rejects each one it sees by whether it
shows the target class.

- The reviewer: the group-balanced oracle of the first training seed (trained with **train group labels**,
  used only here). It accepts a candidate it sees when it classifies it as the target class.
- The judge that measures: the target-bird judges of ``bench.judges`` — another architecture (two small
  convolutional nets on a crop around the mask, not a ResNet on the whole image), trained only on scenes rendered
  for them with data seeds that no benchmark uses, so that they share neither weights, nor training images, nor
  a view of the image with the reviewer. A candidate is a success when they see a bird of the target class in the
  repainted region, a failure otherwise.
- Budgets: 0 (automatic pruning at the default thresholds), 1, 5, 10 and 25% of the candidates reviewed.
  For each: failures left in the accepted set, good ones pruned, and among the reviewed, failures found (kept
  automatically, rejected by the reviewer) beside failures let in (pruned automatically, accepted by the
  reviewer although the judge sees no target bird). Random order is averaged over ``PERMUTATIONS`` permutations
  per data seed, with the 2.5–97.5 percentile range of their sums.
- Each signal of the queue is checked against the judge: the share of failures among the candidates it flags
  (signal ≥ 0.5) against the share among all candidates.
- At the 10% budget in queue order, DDB retrains on the reviewed accepted set, every training seed from its
  own ERM model, with the γ chosen on val for automatic pruning (the same γ in both arms, so the difference
  is the review's); WGA and average accuracy are paired against automatic pruning over data seeds ×
  training seeds, with 95% intervals (``bench.stats``): a difference is stated only where its interval
  excludes zero.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..project.store import Project
from .demo import DemoBenchConfig, _baseline_cached, _erm_models, _gamma_table, _jsonable, _project, _retrain_cached, _row_from_models, prepare
from .ablations import says_target
from .docs import write_result

BUDGETS = (0.0, 0.01, 0.05, 0.10, 0.25)
ORDERS = ("queue", "random", "rho")  # rho: lowest ρ first (the least evidence of the target class in the mask)
PERMUTATIONS = 50  # random orders per data seed
FLAGGED = 0.5  # a signal flags a candidate at this value or above
KEYS = ("reviewed", "failures_left", "good_pruned", "accepted", "failures_found", "failures_let_in", "good_recovered",
        "good_lost")


def random_order_figures(auto, reviewer, judge, budgets, n_perm: int, seed: int) -> dict:
    """Each figure of ``review_outcomes`` in random order, per budget: its mean over ``n_perm`` permutations and the
    value of every permutation (for intervals over data seeds)."""
    rng = np.random.default_rng([seed, 7])
    orders = [rng.permutation(len(auto)) for _ in range(n_perm)]  # one order per permutation, for every budget
    per = [{f"{b:g}": review_outcomes(auto, reviewer, judge, order, b)[0] for b in budgets} for order in orders]
    return {f"{b:g}": {k: {"mean": float(np.mean([p[f"{b:g}"][k] for p in per])),
                           "values": [p[f"{b:g}"][k] for p in per]} for k in KEYS} for b in budgets}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a share of ``k`` in ``n``."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def signal_check(signals: dict, failure: np.ndarray, auto: Optional[np.ndarray] = None) -> dict:
    """Per signal: how many candidates it is non-zero for and flags (≥ ``FLAGGED``); among the flagged, the
    failures (by the judge) and, given the automatic decisions ``auto``, the *wrong automatic decisions* (a failure
    kept or a success pruned: where a look changes something) and of those the *kept failures* alone (what a look
    would take out of the training set), each against its share among all candidates."""
    out = {}
    wrong = (auto & failure) | (~auto & ~failure) if auto is not None else None
    for name, v in signals.items():
        flagged = v >= FLAGGED
        row = {"nonzero": int((v > 0).sum()), "flagged": int(flagged.sum()),
               "failures_flagged": int((flagged & failure).sum()), "failures_all": int(failure.sum()), "n": len(v)}
        if wrong is not None:
            row.update(wrong_flagged=int((flagged & wrong).sum()), wrong_all=int(wrong.sum()),
                       kept_failures_flagged=int((flagged & auto & failure).sum()), kept_failures_all=int((auto & failure).sum()))
        out[name] = row
    return out


def signal_verdict(flagged_k: int, flagged_n: int, all_k: int, all_n: int) -> str:
    """Whether a signal's share among what it flags is above the share among all: "higher" when its 95% interval
    lies above it, "lower" when below, else no difference shown."""
    if flagged_n == 0:
        return "— (flags none)"
    lo, hi = wilson(flagged_k, flagged_n)
    base = all_k / all_n if all_n else float("nan")
    return "**higher**" if lo > base else "**lower**" if hi < base else "no difference shown"


def signals_decision(verdicts: dict[str, list[str]]) -> str:
    """What the check decides, in words: a live signal stays when the candidates it flags hold failures or wrong
    automatic decisions more often than chance (the queue puts first where a look changes a decision); one that
    beats chance on neither is to be removed. ``verdicts``: per signal, the verdicts on failures, wrong decisions
    and kept failures (``signal_verdict``)."""
    live = {k: v for k, v in verdicts.items() if not v[1].startswith("—")}
    keep = [k for k, v in live.items() if "higher" in v[0] or "higher" in v[1]]
    drop = [k for k in live if k not in keep]
    kept_failures = [k for k, v in live.items() if "higher" in v[2]]
    quiet = [k for k in verdicts if k not in live]
    words = lambda names: ", ".join(f"*{n}*" for n in names) or "none"
    return (f"**What the check decides.** A signal stays in the queue when the candidates it flags hold failures or wrong "
            f"automatic decisions more often than chance: that is where a look changes a decision. Stay: {words(keep)}. "
            f"To remove (no better than chance at either): {words(drop)}. Not checked here (they flag nothing on these "
            f"projects): {words(quiet)}. Flag the failures that pruning *kept* more often than chance: {words(kept_failures)}"
            + (" — the queue finds the good candidates that pruning dropped, not the failures it kept." if not kept_failures
               else "."))


def review_outcomes(auto: np.ndarray, reviewer: np.ndarray, judge: np.ndarray, order: np.ndarray,
                    budget: float) -> tuple[dict, np.ndarray]:
    """(figures, final keep) after the reviewer decides the first ``budget`` share of ``order`` (positions).

    As the judge sees them: failures left in the accepted set and good ones pruned, after the review;
    among the reviewed, failures found (kept automatically, rejected by the reviewer), failures let in
    (pruned automatically, accepted by the reviewer), good ones recovered (pruned automatically, accepted)
    and good ones lost (kept automatically, rejected)."""
    n = len(auto)
    seen = np.zeros(n, bool)
    seen[order[:math.ceil(budget * n)]] = True
    final = np.where(seen, reviewer, auto)
    return {"reviewed": int(seen.sum()), "failures_left": int((final & ~judge).sum()),
            "good_pruned": int((~final & judge).sum()), "accepted": int(final.sum()),
            "failures_found": int((seen & auto & ~judge & ~reviewer).sum()),
            "failures_let_in": int((seen & ~auto & ~judge & reviewer).sum()),
            "good_recovered": int((seen & ~auto & judge & reviewer).sum()),
            "good_lost": int((seen & auto & judge & ~reviewer).sum())}, final


def judged_success(project, rows: list[dict], judges) -> np.ndarray:
    """Whether the judges see a bird of the target class in each candidate's repainted region."""
    from ..data.imaging import load_mask, load_rgb

    out = []
    for b in range(0, len(rows), 256):
        batch = rows[b:b + 256]
        out.append(judges.judge([load_rgb(project.project_path(r["path"])) for r in batch],
                                [load_mask(project.project_path(r["mask_path"])) for r in batch],
                                [r["target_label"] for r in batch])["target_bird"])
    return np.concatenate(out) if out else np.zeros(0, bool)


def bench_review(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench", doc: Optional[Path] = None,
                 json_path: Optional[Path] = None, on_progress=None, cancel=None,
                 data_seeds: Sequence[int] = (0, 1, 2)) -> dict:
    from ..curation.decisions import decisions
    from ..curation.review import Filter, ReviewIndex
    from .stats import paired

    from ..project.errors import ConfigError

    if len(cfg.seeds) < 1:
        raise ConfigError("bench review needs a training seed: its oracle reviews")
    from .judges import load_judges

    judges = load_judges()
    t0, times, per_seed = time.monotonic(), {}, {}
    auto_rows, review_rows = {}, {}
    for d in data_seeds:
        c = replace(cfg, data_seed=d)
        project = _project(Path(workdir), c, on_progress)
        prepare(project, c, times, on_progress, cancel)
        erm_ids = _erm_models(project, c, times, on_progress, cancel)
        oracle_ids, _ = _baseline_cached(project, "oracle", replace(c, seeds=tuple(c.seeds[:1])), times, None,
                                         on_progress, cancel)
        if project.db.execute("select count(*) from map_points where erm_model_id = ? and kind = 'candidate'",
                              [project.active_erm_id]).fetchone()[0] == 0:
            from .. import api

            api.compute_map(project)  # the queue's "like source" signal reads the map
        kept = {x.candidate_id: x for x in decisions(project, "c.method = 'ddb'", [])}
        rows = [r for r in project.db.query("select c.id, c.source_id, c.source_label, c.target_label, c.path, c.rho, "
                                            "m.path as mask_path from candidates c join masks m on m.id = c.mask_id "
                                            "where c.method = 'ddb' and c.psi is not null order by c.id")]
        auto = np.array([bool(kept[r["id"]].kept) for r in rows])
        reviewer, judge = says_target(project, oracle_ids[0], rows), judged_success(project, rows, judges)
        index = ReviewIndex(project)
        pos = {cid: k for k, cid in enumerate(r["id"] for r in rows)}
        orders = {"queue": np.array([pos[int(i)] for i in index.query(Filter(method="ddb", sort="queue")) if int(i) in pos]),
                  "rho": np.argsort(np.array([r["rho"] for r in rows]), kind="stable")}
        figures = {o: {f"{b:g}": review_outcomes(auto, reviewer, judge, orders[o], b)[0] for b in BUDGETS}
                   for o in ("queue", "rho")}
        random_figs = random_order_figures(auto, reviewer, judge, BUDGETS, PERMUTATIONS, d)
        figures["random"] = {b: {k: v["mean"] for k, v in f.items()} for b, f in random_figs.items()}
        at = np.array([index.pos[r["id"]] for r in rows])
        sig = index.queue.signals(index.Psi, index.P, at)
        checks = signal_check(sig, ~judge, auto)
        # retraining: automatic pruning (γ searched on val, as bench demo), and the 10% queue review with that γ
        auto_ids = _retrain_cached(project, "ddb", c, times, erm_ids, on_progress=on_progress, cancel=cancel)
        chosen = next(r["gammas"] for r in _gamma_table(project, "ddb") if r["chosen"])
        final = review_outcomes(auto, reviewer, judge, orders["queue"], 0.10)[1]
        accepted = [r for r, k in zip(rows, final) if k]
        review_ids = _retrain_cached(project, "ddb-review-queue-10", replace(c, gamma_grid=(), gammas=tuple(chosen)),
                                     times, erm_ids, candidates=accepted, on_progress=on_progress, cancel=cancel)
        auto_rows[d] = _row_from_models(project, "DDB, automatic pruning", auto_ids, "val", seeds=c.seeds)
        review_rows[d] = _row_from_models(project, "DDB, 10% reviewed in queue order", review_ids, "val + a reviewer",
                                          seeds=c.seeds)
        per_seed[d] = {"candidates": len(rows), "judged_failures_auto_kept": int((auto & ~judge).sum()),
                       "judged_failures": int((~judge).sum()),
                       "reviewer_agrees_with_judge": round(float((reviewer == judge).mean()), 3), "gammas": list(chosen),
                       "figures": figures, "random_values": {b: {k: f[k]["values"] for k in ("failures_found",
                                                                                             "failures_let_in")}
                                                             for b, f in random_figs.items()},
                       "signals": checks, "reviewer_model": oracle_ids[0], "judge": "bench.judges (target bird)"}
    diff = {}
    for key in ("wga", "mean_acc"):
        a = {d: dict(zip(cfg.seeds, review_rows[d][key]["values"])) for d in data_seeds}
        b = {d: dict(zip(cfg.seeds, auto_rows[d][key]["values"])) for d in data_seeds}
        diff[key] = paired(a, b).to_dict()
    found = {o: sum(per_seed[d]["figures"][o]["0.1"]["failures_found"] for d in data_seeds) for o in ORDERS}
    let_in = {o: sum(per_seed[d]["figures"][o]["0.1"]["failures_let_in"] for d in data_seeds) for o in ORDERS}
    recovered = {o: sum(per_seed[d]["figures"][o]["0.1"]["good_recovered"] for d in data_seeds) for o in ORDERS}
    random_range = {}
    for key in ("failures_found", "failures_let_in"):  # sums over data seeds, permutation by permutation
        sums = np.sum([per_seed[d]["random_values"]["0.1"][key] for d in data_seeds], axis=0)
        random_range[key] = [float(np.percentile(sums, 2.5)), float(np.percentile(sums, 97.5))]
    res = {"config": _jsonable(asdict(cfg)), "data_seeds": list(data_seeds), "per_data_seed": per_seed,
           "permutations": PERMUTATIONS, "found_at_10": found, "let_in_at_10": let_in, "recovered_at_10": recovered,
           "random_range_at_10": random_range,
           "target_met": found["queue"] > 0 and found["queue"] >= 2 * found["random"]
                         and found["queue"] > random_range["failures_found"][1],
           "rows": {"automatic": {d: auto_rows[d] for d in data_seeds}, "review": {d: review_rows[d] for d in data_seeds}},
           "difference": diff, "stage_seconds": times, "seconds": round(time.monotonic() - t0, 1),
           "command": f"python -m ddb_core bench review --data-seeds {' '.join(map(str, data_seeds))}"}
    write_result(res, doc, json_path, "review", review_markdown(res))
    return res


def review_markdown(res: dict) -> str:
    from ..curation.queue import SIGNALS
    from .stats import Interval, verdict

    seeds = res["data_seeds"]
    sums = lambda o, b, k: sum(res["per_data_seed"][d]["figures"][o][b][k] for d in seeds)
    n = sum(res["per_data_seed"][d]["candidates"] for d in seeds)
    fails = sum(res["per_data_seed"][d].get("judged_failures", 0) for d in seeds)
    perms = res.get("permutations", 1)
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) and v != int(v) else f"{int(v)}"
    lines = [
        "## What a human look is worth: the review queue", "",
        f"Command: `{res['command']}`. On each data seed's demo project, a simulated reviewer — the group-balanced "
        "oracle of training seed 0, trained with **train group labels** and used only here — looks at a budget of the "
        "candidates in an order and accepts the ones it classifies as the target class, rejects the others. The "
        "figures are measured by a judge that shares nothing with the reviewer: the target-bird judges of `ddb bench "
        "judges` (another architecture, on a crop around the mask, trained only on renders with data seeds no "
        "benchmark uses); a *failure* is a candidate in which they see no bird of the target class. The queue's map "
        "signal is live (the candidate map is computed first); the demo's provided masks have no detector, so *weak box* "
        "and *object lost* are 0 there. Random order is the mean of "
        f"{perms} permutations per data seed. Budget 0 is automatic pruning at the default thresholds. Summed over "
        "data seeds " + ", ".join(map(str, seeds)) + f" ({n} candidates, {fails} failures by the judge).", "",
        "Among the reviewed candidates: *failures found* were kept automatically and rejected by the reviewer, "
        "*let in* were pruned automatically and accepted although the judge sees no target bird, "
        "*recovered* were pruned automatically, accepted, and the judge sees one, *lost* the reverse.", "",
        "| order | budget | reviewed | failures left in the accepted set | good ones pruned | failures found | "
        "failures let in | good ones recovered | good ones lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for o in ORDERS:
        for b in res["per_data_seed"][seeds[0]]["figures"][o]:  # budgets as written: "0", "0.01", …
            cells = [fmt(sums(o, b, k)) for k in ("reviewed", "failures_left", "good_pruned", "failures_found",
                                                   "failures_let_in", "good_recovered", "good_lost")]
            lines.append(f"| {o} | {float(b) * 100:g}% | " + " | ".join(cells) + " |")
    f10, r10, l10 = res["found_at_10"], res.get("recovered_at_10", {}), res.get("let_in_at_10", {})
    rr = res.get("random_range_at_10", {})
    times = lambda a, b: f"{a / b:.1f}×" if b else "— (random order: none)"
    rng_txt = lambda k: (f" (95% of permutations: {rr[k][0]:g} to {rr[k][1]:g})" if k in rr else "")
    lines += ["", f"At the 10% budget the queue found {fmt(f10['queue'])} failures and let in {fmt(l10.get('queue', 0))}; "
                  f"random order found {fmt(f10['random'])}{rng_txt('failures_found')} and let in "
                  f"{fmt(l10.get('random', 0))}{rng_txt('failures_let_in')}; lowest ρ first found {fmt(f10['rho'])} and let "
                  f"in {fmt(l10.get('rho', 0))}. The queue finds {times(f10['queue'], f10['random'])} as many failures as "
                  f"random order; the target (at least twice as many, and above the permutations' range) is "
                  f"{'met' if res['target_met'] else '**not met**'}."
                  + (f" It recovered {fmt(r10['queue'])} good candidates that automatic pruning had dropped, random order "
                     f"{fmt(r10['random'])}, lowest ρ first {fmt(r10['rho'])}." if r10 else "")
                  + " The reviewer agrees with the judge on "
                  + ", ".join(f"{res['per_data_seed'][d]['reviewer_agrees_with_judge'] * 100:.0f}%" for d in seeds)
                  + " of the candidates (data seeds in order).", ""]
    if all("signals" in res["per_data_seed"][d] for d in seeds):
        lines += ["**Does each signal point where a look pays?** Per signal, summed over data seeds: the candidates it "
                  f"is non-zero for and those it flags (value ≥ {FLAGGED}); among the flagged, the share of failures "
                  "(by the judge) and the share of *wrong automatic decisions* (a failure kept or a target bird pruned: "
                  "where a look changes something), each against its share among all candidates, with the verdict of "
                  "the flagged share's 95% Wilson interval.", "",
                  "| signal | non-zero | flagged | failures: flagged / all | verdict | wrong decisions: flagged / all | "
                  "verdict | kept failures: flagged / all | verdict |",
                  "| --- | ---: | ---: | --- | --- | --- | --- | --- | --- |"]
        verdicts = {}
        for name in SIGNALS:
            c = [res["per_data_seed"][d]["signals"].get(name) for d in seeds]
            if any(x is None for x in c):
                continue
            tot = lambda k: sum(x.get(k, 0) for x in c)
            nz, fl, n = tot("nonzero"), tot("flagged"), tot("n")
            pct = lambda k, m: f"{k / m:.0%}" if m else "—"
            lines.append(f"| {name} | {nz} | {fl} | {pct(tot('failures_flagged'), fl)} / {pct(tot('failures_all'), n)} | "
                         f"{signal_verdict(tot('failures_flagged'), fl, tot('failures_all'), n)} | "
                         f"{pct(tot('wrong_flagged'), fl)} / {pct(tot('wrong_all'), n)} | "
                         f"{signal_verdict(tot('wrong_flagged'), fl, tot('wrong_all'), n)} | "
                         f"{pct(tot('kept_failures_flagged'), fl)} / {pct(tot('kept_failures_all'), n)} | "
                         f"{signal_verdict(tot('kept_failures_flagged'), fl, tot('kept_failures_all'), n)} |")
            verdicts[name] = [signal_verdict(tot(k + "_flagged"), fl, tot(k + "_all"), n)
                              for k in ("failures", "wrong", "kept_failures")]
        lines += ["", signals_decision(verdicts), ""]
    lines += ["Retrained on the 10% review in queue order against automatic pruning (γ chosen on val for automatic "
              "pruning, the same in both arms), paired over data seeds × training seeds:", ""]
    for key, label in (("wga", "worst-group accuracy"), ("mean_acc", "average accuracy")):
        iv = Interval(**{k: v for k, v in res["difference"][key].items() if k != "shown"})
        lines.append(f"- {label}: {verdict(iv)}")
    lines += ["", f"- wall time of this run {res['seconds'] / 60:.1f} min (models and candidates that an earlier run "
                  "finished are reused, not timed again)"]
    return "\n".join(lines) + "\n"
