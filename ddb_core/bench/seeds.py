"""The demo benchmark over data seeds × training seeds: per method a mean with its 95% interval, the
paired differences that the docs state as results only where their interval excludes zero, and the
tuning each method received (``bench.stats`` has the statistics).

Consumes the per-data-seed results of ``bench.demo.bench_one``; produces the summary dict that
``bench demo`` writes to JSON, and its Markdown section.
"""

from __future__ import annotations

from typing import Optional

from .stats import Interval, interval, paired, verdict

METRICS = (("wga", "WGA"), ("mean_acc", "mean acc (plain)"), ("train_weighted_acc", "mean acc (train-weighted)"))
# (name, method A, method B): A − B within each (data seed, training seed)
COMPARISONS = (("DDB − ERM", "DDB", "ERM"), ("DDB − JTT", "DDB", "JTT"), ("DDB − DFR", "DDB", "DFR"),
               ("DDB − oracle", "DDB", "Oracle (group-balanced)"),
               ("pruning − no pruning", "DDB", "DDB without pruning"),
               ("token − plain prompt", "DDB", "DDB with the plain prompt"))
GOAL_WGA_GAIN = 0.25  # DDB WGA ≥ ERM + 25 points
GOAL_AVG_DROP = 0.05  # DDB train-weighted average within 5 points of ERM's


def _by_seed(row: dict, key: str) -> dict[int, float]:
    return {int(s): float(v) for s, v in zip(row["seeds"], row[key]["values"])}


def _values(per_data: list[dict], method: str, key: str) -> dict[int, dict[int, float]]:
    """data seed → training seed → value of ``method``'s ``key`` (test split)."""
    out = {}
    for res in per_data:
        row = next((r for r in res["rows"] if r["method"] == method), None)
        if row is not None and len(row[key]["values"]) == len(row["seeds"]):
            out[int(res["data_seed"])] = _by_seed(row, key)
    return out


def summarise(per_data: list[dict]) -> dict:
    methods = list(dict.fromkeys(r["method"] for res in per_data for r in res["rows"]))
    table = []
    for m in methods:
        row = {"method": m, "group_labels": next(r["group_labels"] for res in per_data for r in res["rows"]
                                                 if r["method"] == m)}
        for key, _ in METRICS:
            vals = _values(per_data, m, key)
            row[key] = interval({d: list(v.values()) for d, v in vals.items()}).to_dict() if vals else None
        table.append(row)
    diffs = []
    for name, a, b in COMPARISONS:
        if a not in methods or b not in methods:
            continue
        d = {"comparison": name, "a": a, "b": b}
        for key, _ in METRICS:
            va, vb = _values(per_data, a, key), _values(per_data, b, key)
            d[key] = paired(va, vb).to_dict() if va and vb else None
        diffs.append(d)
    goals = {}
    gain = next((d for d in diffs if d["comparison"] == "DDB − ERM"), None)
    if gain and gain["wga"] and gain["train_weighted_acc"]:
        goals = {"ddb_wga_ge_erm_plus_25": gain["wga"]["mean"] >= GOAL_WGA_GAIN,
                 "ddb_wga_ge_erm_plus_25_interval": gain["wga"]["lo"] is not None and gain["wga"]["lo"] >= GOAL_WGA_GAIN,
                 "ddb_avg_within_5_of_erm": gain["train_weighted_acc"]["mean"] >= -GOAL_AVG_DROP}
    return {"methods": table, "differences": diffs, "goals": goals, "per_data_seed": per_data}


def _iv(d: Optional[dict]) -> str:
    """An accuracy's mean and 95% interval in %, the interval clipped to [0, 100] (a t-interval is not)."""
    if not d:
        return "—"
    if d["lo"] is None:
        return f"{100 * d['mean']:.1f}"
    return f"{100 * d['mean']:.1f} [{100 * max(0.0, d['lo']):.1f}, {100 * min(1.0, d['hi']):.1f}]"


def resumed(pd: dict) -> bool:
    """Whether a data seed's run resumed a project made before (its stage times then count only the work
    done in that run). Results written before the flag existed: the data stage took no time."""
    return pd["resumed"] if "resumed" in pd else pd["stage_seconds"].get("data", 0.0) < 1.0


def ablation_seconds(pd: dict) -> float:
    """The stage time of a data seed's ablations (DDB without pruning, with the plain prompt) and oracle rows."""
    return sum(v for k, v in pd["stage_seconds"].items()
               if k.startswith("plain prompt") or "no-pruning" in k or "oracle" in k)


def _as_interval(d: dict) -> Interval:
    return Interval(d["mean"], d["lo"], d["hi"], d["n_data"], d["n_values"], d["scope"])


def _scope_words(res: dict) -> str:
    n_data = len(res["data_seeds"])
    n_train = len(res["config"]["seeds"])
    if n_data > 1:
        return (f"{n_data} data seeds × {n_train} training seeds; each mean has a 95% t-interval on the {n_data} "
                f"per-data-seed means ({n_data - 1} degrees of freedom): data seeds and training seeds are both random, "
                "so the interval says how the figure would move on another draw of the benchmark")
    return (f"one data seed × {n_train} training seeds; each 95% t-interval is over the training seeds only and says "
            "nothing about another draw of the data (`--data-seeds 0 1 2` gives that)")


def demo_markdown(res: dict) -> str:
    from .words import TI_WORDS, _gamma_lines, _gamma_words, _model_note

    c = res["config"]
    multi = len(res["data_seeds"]) > 1
    title = ("End-to-end demo benchmark" + (f" over {len(res['data_seeds'])} data seeds" if multi else "")
             + (" (the quick smoke preset)" if "--quick" in res["command"] else ""))
    erm = c["erm"]
    lines = [f"## {title}", "",
             f"Command: `{res['command']}`. Data seed{'s' if multi else ''} {', '.join(map(str, res['data_seeds']))}; "
             f"training seeds {', '.join(map(str, c['seeds']))}; test split. {_scope_words(res)}. Every method's seed s "
             f"starts from its own seed: ERM ({erm['arch']}, {erm['epochs']} epochs, the recipe `bench calibrate` chose "
             f"on val), DDB retrained from ERM seed s, DFR on ERM seed s, JTT's two models with seed s. "
             f"DDB: K = {c['k']} lowest-loss images per class, textual inversion on {c['ti_size']} "
             f"{TI_WORDS[c.get('ti_source', 'high_loss')]} images per class ({c['ti_steps']} steps), provided masks "
             f"({c['masker_shape']}), micro model `{c['model']}` ({c['inpaint_steps']} DDIM steps, guidance {c['guidance']}), "
             f"IG with {c['ig_steps']} steps, default thresholds (Ψ_i = Eq. 3, P = 25% quantile of ρ), retraining for "
             f"{c['retrain_epochs']} epoch{'s' if c['retrain_epochs'] != 1 else ''} at lr {c['retrain_lr']} (val checked "
             f"{c.get('retrain_evals', 1)} times per epoch), {_gamma_words(c)}. JTT: T among "
             f"{', '.join(map(str, c['jtt_epochs_grid']))} and λ_up among {', '.join(f'{x:g}' for x in c['lambda_grid'])}, "
             f"chosen by val WGA with seed {c['seeds'][0]}. DFR: its paper's procedure (L1 logistic regression on "
             f"group-balanced val subsets, C among its paper's grid on half of val, {c['dfr_fits']} fits averaged).",
             "", "Mean [95% interval], %:", "",
             "| method | group labels used | WGA | mean acc (plain) | mean acc (train-weighted) |",
             "| --- | --- | ---: | ---: | ---: |"]
    for r in res["methods"]:
        lines.append(f"| {r['method']} | {r['group_labels']} | {_iv(r['wga'])} | {_iv(r['mean_acc'])} | "
                     f"{_iv(r['train_weighted_acc'])} |")
    if res["differences"]:
        lines += ["", "Paired differences (A − B within each data seed and training seed), points [95% interval]; a "
                      "difference is stated as a result only where its interval excludes zero:", "",
                  "| comparison | WGA | mean acc (train-weighted) | mean acc (plain) |", "| --- | --- | --- | --- |"]
        for d in res["differences"]:
            cells = [verdict(_as_interval(d[k])) if d[k] else "—" for k in ("wga", "train_weighted_acc", "mean_acc")]
            lines.append(f"| {d['comparison']} | " + " | ".join(cells) + " |")
    g = res.get("goals") or {}
    if g:
        gain = next(d for d in res["differences"] if d["comparison"] == "DDB − ERM")
        lines += ["", f"- goal DDB WGA ≥ ERM + 25 points: **{'met' if g['ddb_wga_ge_erm_plus_25'] else 'not met'}** "
                      f"(mean gain {100 * gain['wga']['mean']:.1f} points; the whole interval above 25: "
                      f"{'yes' if g['ddb_wga_ge_erm_plus_25_interval'] else 'no'})",
                  f"- goal DDB train-weighted average within 5 points of ERM's: "
                  f"**{'met' if g['ddb_avg_within_5_of_erm'] else 'not met'}** (mean change "
                  f"{100 * gain['train_weighted_acc']['mean']:+.1f} points)"]
    lines += ["", "Per data seed (mean ± std over training seeds, WGA %):", "",
              "| data seed | " + " | ".join(r["method"] for r in res["methods"]) + " | wall time min |",
              "| ---: | " + " | ".join("---:" for _ in res["methods"]) + " | ---: |"]
    for pd in res["per_data_seed"]:
        by = {r["method"]: r for r in pd["rows"]}
        cells = [f"{100 * by[m['method']]['wga']['mean']:.1f} ± {100 * by[m['method']]['wga']['std']:.1f}"
                 if m["method"] in by else "—" for m in res["methods"]]
        lines.append(f"| {pd['data_seed']} | " + " | ".join(cells) + f" | {pd['seconds'] / 60:.1f} |")
    lines += ["", "Tuning (val only; the first training seed's runs):", ""]
    for pd in res["per_data_seed"]:
        t = pd.get("tuning") or {}
        jtt = t.get("JTT")
        if jtt:
            lines.append(f"- data seed {pd['data_seed']}, JTT (T, λ_up: error set, val WGA % / val accuracy %): " + ", ".join(
                f"({r['T']}, {r['lambda_up']:g}): {r['error_set']}, {100 * (r['val_wga'] or 0):.1f} / "
                f"{100 * (r['val_acc'] or 0):.1f}{' (chosen)' if r['chosen'] else ''}" for r in jtt["search"]))
        dfr = t.get("DFR")
        if dfr:
            lines.append(f"- data seed {pd['data_seed']}, DFR C per training seed: "
                         + ", ".join(f"{x:g}" for x in dfr["C"] if x is not None)
                         + ("; first seed's half-val WGA % per C: " + ", ".join(
                             f"{r['C']:g}: {100 * r['half_val_wga']:.1f}" for r in dfr["tuning"]) if dfr.get("tuning") else ""))
        lines += [ln.replace("- γ search for", f"- data seed {pd['data_seed']}, γ search for", 1)
                  for ln in _gamma_lines(pd["rows"])]
    pd0 = res["per_data_seed"][0]
    lines += ["", "Candidates per direction at the default thresholds: " + "; ".join(
        f"data seed {pd['data_seed']}: " + ", ".join(f"{d} {v['kept']}/{v['candidates']} kept" for d, v in pd["pruning"].items())
        for pd in res["per_data_seed"])]
    if any(pd.get("target_birds") for pd in res["per_data_seed"]):
        from .judges import target_bird_lines

        for pd in res["per_data_seed"]:
            if pd.get("target_birds"):
                lines += ["", f"What a person sees, data seed {pd['data_seed']}: kept and pruned candidates that the judges "
                              "of `ddb bench judges` call a target bird (a bird of the target class in the repainted "
                              "region).", ""] + target_bird_lines(pd["target_birds"])
        lines.append("")
    lines.append("- stage wall times, data seed " + f"{pd0['data_seed']} (s): "
                 + ", ".join(f"{k} {v}" for k, v in pd0["stage_seconds"].items())
                 + f"; data seed {pd0['data_seed']} alone {pd0['seconds'] / 60:.1f} min; in all {res['seconds'] / 60:.1f} min"
                 + _model_note(res))
    if any(resumed(pd) for pd in res["per_data_seed"]):
        lines.append("- resumed: data seed" + ("s " if sum(map(resumed, res["per_data_seed"])) > 1 else " ")
                     + ", ".join(str(pd["data_seed"]) for pd in res["per_data_seed"] if resumed(pd))
                     + " continued a run made before, so the wall times above count only the work done in this run, "
                       "not a run from scratch")
    fresh = [pd for pd in res["per_data_seed"] if not resumed(pd)]
    if fresh:
        lines.append("- wall time of one data seed from scratch: " + ", ".join(
            f"data seed {pd['data_seed']} {pd['seconds'] / 60:.1f} min"
            + (f" ({(pd['seconds'] - ablation_seconds(pd)) / 60:.1f} without the ablations)" if ablation_seconds(pd) else "")
            for pd in fresh) + ("; `bench demo` without `--ablations` runs none of the ablations' stages"
                                if any(ablation_seconds(pd) for pd in fresh) else ""))
    t = pd0.get("throughput") or {}
    if "overhead_ratio" in t and not resumed(pd0):
        lines.append(f"- throughput on this CPU: generation {t['generation_per_s']} candidates/s, scoring "
                     f"{t['scoring_per_s']} candidates/s (IG with {c['ig_steps']} steps); overhead ratio (masking + "
                     f"scoring + storage) / diffusion = **{t['overhead_ratio']}**")
    return "\n".join(lines) + "\n"
