"""What a human look is worth (``ddb bench review``): on the demo, over data seeds, a simulated reviewer looks
at a budget of the candidates — in queue order (``ddb_core.queue``), in random order, or by ρ from the
lowest — and accepts or rejects each one it sees by whether it shows the target class.

- The reviewer: the group-balanced oracle of the first training seed (trained with **train group labels**,
  used only here). It accepts a candidate it sees when it classifies it as the target class.
- The judge that measures: the group-balanced oracle of the second training seed — another model than the
  reviewer, so that the figures do not score the reviewer against itself.
- Budgets: 0 (automatic pruning at the default thresholds), 1, 5, 10 and 25% of the candidates reviewed.
  For each: failed generations left in the accepted set (the judge does not see the target class), good
  ones wrongly pruned (the judge sees it, and they are out), and failures found (the reviewer removed an
  automatically kept failure).
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

from ..store import Project
from .demo import (DemoBenchConfig, _baseline_cached, _erm_models, _gamma_table, _jsonable, _project, _retrain_cached,
                   _row_from_models, prepare, says_target)
from .docs import write_result

BUDGETS = (0.0, 0.01, 0.05, 0.10, 0.25)
ORDERS = ("queue", "random", "rho")  # rho: lowest ρ first (the least evidence of the target class in the mask)


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


def bench_review(cfg: DemoBenchConfig = DemoBenchConfig(), workdir: str = "projects/bench", doc: Optional[Path] = None,
                 json_path: Optional[Path] = None, on_progress=None, cancel=None,
                 data_seeds: Sequence[int] = (0, 1, 2)) -> dict:
    from ..decisions import decisions
    from ..review import Filter, ReviewIndex
    from .stats import paired

    from ..errors import ConfigError

    if len(cfg.seeds) < 2:
        raise ConfigError("bench review needs two training seeds at least: the oracle of the first reviews, the "
                          "oracle of the second judges")
    t0, times, per_seed = time.monotonic(), {}, {}
    auto_rows, review_rows = {}, {}
    for d in data_seeds:
        c = replace(cfg, data_seed=d)
        project = _project(Path(workdir), c, on_progress)
        prepare(project, c, times, on_progress, cancel)
        erm_ids = _erm_models(project, c, times, on_progress, cancel)
        oracle_ids, _ = _baseline_cached(project, "oracle", replace(c, seeds=tuple(c.seeds[:2])), times, None,
                                         on_progress, cancel)
        kept = {x.candidate_id: x for x in decisions(project, "c.method = 'ddb'", [])}
        rows = [r for r in project.db.query("select id, source_id, source_label, target_label, path, rho from candidates "
                                            "where method = 'ddb' and psi is not null order by id")]
        auto = np.array([bool(kept[r["id"]].kept) for r in rows])
        reviewer, judge = says_target(project, oracle_ids[0], rows), says_target(project, oracle_ids[1], rows)
        index = ReviewIndex(project)
        pos = {cid: k for k, cid in enumerate(r["id"] for r in rows)}
        orders = {"queue": np.array([pos[int(i)] for i in index.query(Filter(method="ddb", sort="queue")) if int(i) in pos]),
                  "random": np.random.default_rng(d).permutation(len(rows)),
                  "rho": np.argsort(np.array([r["rho"] for r in rows]), kind="stable")}
        figures = {o: {f"{b:g}": review_outcomes(auto, reviewer, judge, orders[o], b)[0] for b in BUDGETS} for o in ORDERS}
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
                       "reviewer_agrees_with_judge": round(float((reviewer == judge).mean()), 3), "gammas": list(chosen),
                       "figures": figures, "reviewer_model": oracle_ids[0], "judge_model": oracle_ids[1]}
    diff = {}
    for key in ("wga", "mean_acc"):
        a = {d: dict(zip(cfg.seeds, review_rows[d][key]["values"])) for d in data_seeds}
        b = {d: dict(zip(cfg.seeds, auto_rows[d][key]["values"])) for d in data_seeds}
        diff[key] = paired(a, b).to_dict()
    found = {o: sum(per_seed[d]["figures"][o]["0.1"]["failures_found"] for d in data_seeds) for o in ORDERS}
    recovered = {o: sum(per_seed[d]["figures"][o]["0.1"]["good_recovered"] for d in data_seeds) for o in ORDERS}
    res = {"config": _jsonable(asdict(cfg)), "data_seeds": list(data_seeds), "per_data_seed": per_seed,
           "found_at_10": found, "recovered_at_10": recovered, "target_met": found["queue"] >= 2 * found["random"] and found["queue"] > 0,
           "rows": {"automatic": {d: auto_rows[d] for d in data_seeds}, "review": {d: review_rows[d] for d in data_seeds}},
           "difference": diff, "stage_seconds": times, "seconds": round(time.monotonic() - t0, 1),
           "command": f"python -m ddb_core bench review --data-seeds {' '.join(map(str, data_seeds))}"}
    write_result(res, doc, json_path, "review", review_markdown(res))
    return res


def review_markdown(res: dict) -> str:
    from .stats import Interval, verdict

    seeds = res["data_seeds"]
    sums = lambda o, b, k: sum(res["per_data_seed"][d]["figures"][o][b][k] for d in seeds)
    n = sum(res["per_data_seed"][d]["candidates"] for d in seeds)
    lines = [
        "## What a human look is worth: the review queue", "",
        f"Command: `{res['command']}`. On each data seed's demo project, a simulated reviewer — the group-balanced "
        "oracle of training seed 0, trained with **train group labels** and used only here — looks at a budget of the "
        "candidates in an order and accepts the ones it classifies as the target class, rejects the others. The "
        "figures are measured by another model, the oracle of training seed 1. Budget 0 is automatic pruning at the "
        "default thresholds. Summed over data seeds " + ", ".join(map(str, seeds)) + f" ({n} candidates).", "",
        "Among the reviewed candidates: *failures found* were kept automatically and rejected by the reviewer, "
        "*let in* were pruned automatically and accepted although the judge does not see the target class, "
        "*recovered* were pruned automatically, accepted, and the judge sees the target class, *lost* the reverse.", "",
        "| order | budget | reviewed | failures left in the accepted set | good ones pruned | failures found | "
        "failures let in | good ones recovered | good ones lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for o in ORDERS:
        for b in res["per_data_seed"][seeds[0]]["figures"][o]:  # budgets as written: "0", "0.01", …
            lines.append(f"| {o} | {float(b) * 100:g}% | {sums(o, b, 'reviewed')} | {sums(o, b, 'failures_left')} | "
                         f"{sums(o, b, 'good_pruned')} | {sums(o, b, 'failures_found')} | "
                         f"{sums(o, b, 'failures_let_in')} | {sums(o, b, 'good_recovered')} | {sums(o, b, 'good_lost')} |")
    f10, r10 = res["found_at_10"], res.get("recovered_at_10", {})
    times = lambda a, b: f"{a / b:.1f}×" if b else "— (random order: none)"
    lines += ["", f"At the 10% budget the queue found {f10['queue']} failures, random order {f10['random']} "
                  f"({times(f10['queue'], f10['random'])}), lowest ρ first {f10['rho']}; the target (at least twice "
                  f"random order's) is {'met' if res['target_met'] else '**not met**'}."
                  + (f" It recovered {r10['queue']} good candidates that automatic pruning had dropped, random order "
                     f"{r10['random']} ({times(r10['queue'], r10['random'])}), lowest ρ first {r10['rho']}." if r10 else "")
                  + " The reviewer agrees with the judge on "
                  + ", ".join(f"{res['per_data_seed'][d]['reviewer_agrees_with_judge'] * 100:.0f}%" for d in seeds)
                  + " of the candidates (data seeds in order).", "",
              "Retrained on the 10% review in queue order against automatic pruning (γ chosen on val for automatic "
              "pruning, the same in both arms), paired over data seeds × training seeds:", ""]
    for key, label in (("wga", "worst-group accuracy"), ("mean_acc", "average accuracy")):
        iv = Interval(**{k: v for k, v in res["difference"][key].items() if k != "shown"})
        lines.append(f"- {label}: {verdict(iv)}")
    lines += ["", f"- wall time of this run {res['seconds'] / 60:.1f} min (models and candidates that an earlier run "
                  "finished are reused, not timed again)"]
    return "\n".join(lines) + "\n"
