"""Evaluation reports of a retraining run (one model per seed) against the ERM model.

Consumes stored models (checkpoints) and the project's test split; produces a report dict with,
for the run and for the "before" model: per-group accuracy with counts, WGA and the worst group,
the plain and the train-weighted average accuracy (labelled), the before → after deltas, and
bootstrap 95% intervals (test samples resampled with replacement; with several seeds, each
resample scores the mean over seeds, and deltas are paired on the same resample). Saved as
``report.json``, ``report.md``, ``groups.png`` (per-group accuracy before/after) and
``curves.png`` (training curves) under ``<project>/reports/<id>/``, and as a ``reports`` row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..project.errors import ProjectError
from ..project.store import Project, now

N_BOOT = 1000


def test_predictions(project: Project, model_id: int, split: str = "test") -> np.ndarray:
    """Predicted class of every sample of ``split`` (id order), recomputed from the checkpoint."""
    from ..project.device import resolve_device
    from ..classifiers.models import load_classifier, predict
    from ..project.settings import compute_device
    from ..classifiers.training import split_dataset

    m = project.model(model_id)
    model, _a, _n = load_classifier(project.project_path(m["path"]), m["arch"], m["num_classes"],
                                    device=resolve_device(compute_device(project)), what="report predictions")
    ds, _rows = split_dataset(project, split, m["image_size"])
    return predict(model, ds).argmax(1).numpy()


def _metrics(correct: np.ndarray, group: np.ndarray, n_groups: int, train_w: np.ndarray) -> dict:
    """Vectorised over the leading axes: correct (..., n) bool, group (n,) ints in [0, n_groups)."""
    onehot = np.eye(n_groups, dtype=np.float64)[group]  # n x G
    counts = onehot.sum(0)
    hits = correct.astype(np.float64) @ onehot  # ... x G
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = hits / counts
    nonempty = counts > 0
    wga = np.min(np.where(nonempty, acc, np.inf), axis=-1)
    w = train_w * nonempty
    weighted = (np.nan_to_num(acc) * w).sum(-1) / w.sum() if w.sum() > 0 else np.full(wga.shape, np.nan)
    return {"group_acc": acc, "wga": wga, "mean_acc": correct.mean(-1), "weighted_acc": weighted}


def bootstrap(correct_by_seed: np.ndarray, group: np.ndarray, n_groups: int, train_w: np.ndarray,
              idx: np.ndarray) -> dict:
    """Bootstrap distribution of the seed-mean metrics: correct_by_seed S x n, idx B x n resamples."""
    out = {"group_acc": [], "wga": [], "mean_acc": [], "weighted_acc": []}
    for s in range(correct_by_seed.shape[0]):
        res = _metrics_resampled(correct_by_seed[s], group, n_groups, train_w, idx)
        for k in out:
            out[k].append(res[k])
    import warnings

    with warnings.catch_warnings():  # a group absent from a resample is NaN there, and left out
        warnings.simplefilter("ignore", RuntimeWarning)
        return {k: np.nanmean(np.stack(v), axis=0) for k, v in out.items()}


def _metrics_resampled(correct: np.ndarray, group: np.ndarray, n_groups: int, train_w: np.ndarray,
                       idx: np.ndarray) -> dict:
    """Metrics on each resample (B x n index matrix), with group counts varying per resample."""
    g = group[idx]  # B x n
    c = correct[idx].astype(np.float64)
    counts = np.stack([(g == k).sum(1) for k in range(n_groups)], 1).astype(np.float64)  # B x G
    hits = np.stack([((g == k) * c).sum(1) for k in range(n_groups)], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = hits / counts
    nonempty = counts > 0
    wga = np.min(np.where(nonempty, acc, np.inf), axis=1)
    w = train_w[None, :] * nonempty
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = (np.nan_to_num(acc) * w).sum(1) / w.sum(1)
    return {"group_acc": acc, "wga": wga, "mean_acc": c.mean(1), "weighted_acc": weighted}


def _ci(samples: np.ndarray) -> list[Optional[float]]:
    s = samples[np.isfinite(samples)]
    return [float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))] if s.size else [None, None]


def build_report(project: Project, model_ids: Sequence[int], baseline_id: Optional[int] = None,
                 title: str = "retraining", n_boot: int = N_BOOT, seed: int = 0,
                 split: str = "test", preds: Optional[dict[int, np.ndarray]] = None) -> dict:
    """The report dict (no files written). ``preds`` may pass precomputed predictions by model id."""
    if not model_ids:
        raise ProjectError("a report needs at least one model")
    rows = project.samples(split, "id, label, attr")
    if not rows:
        raise ProjectError(f"project {project.root} has no {split} samples to report on")
    classes, attrs = project.class_names, project.attr_names
    has_groups = bool(attrs) and all(r["attr"] is not None for r in rows)
    n_attr = max(1, len(attrs)) if has_groups else 1
    labels = np.array([r["label"] for r in rows])
    group = labels * n_attr + (np.array([r["attr"] for r in rows]) if has_groups else 0)
    n_groups = len(classes) * n_attr
    names = [f"{c}/{a}" for c in classes for a in attrs] if has_groups else list(classes)
    tc = project.group_counts("train")
    train_w = np.array([tc.get((k // n_attr, k % n_attr), 0) for k in range(n_groups)], dtype=np.float64) if has_groups \
        else np.ones(n_groups)
    preds = dict(preds or {})

    def correct_of(ids: Sequence[int]) -> np.ndarray:
        for mid in ids:
            if mid not in preds:
                preds[mid] = test_predictions(project, mid, split)
        return np.stack([preds[mid] == labels for mid in ids])

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    after_c = correct_of(model_ids)
    after_point = [_metrics(c, group, n_groups, train_w) for c in after_c]
    after_boot = bootstrap(after_c, group, n_groups, train_w, idx)
    before = None
    if baseline_id is not None:
        before_c = correct_of([baseline_id])
        before_point = _metrics(before_c[0], group, n_groups, train_w)
        before_boot = bootstrap(before_c, group, n_groups, train_w, idx)
        before = {"model_id": baseline_id, "name": project.model(baseline_id)["name"]}

    def summarise(points, boot) -> dict:
        mean = {k: np.nanmean(np.stack([p[k] for p in points]), axis=0) for k in ("group_acc", "wga", "mean_acc", "weighted_acc")}
        std = {k: np.nanstd(np.stack([p[k] for p in points]), axis=0) for k in ("wga", "mean_acc", "weighted_acc")}
        g_counts = np.bincount(group, minlength=n_groups)
        worst = int(np.nanargmin(np.where(g_counts > 0, mean["group_acc"], np.nan))) if (g_counts > 0).any() else None
        return {
            "groups": [{"name": names[k], "n": int(g_counts[k]),
                        "acc": None if g_counts[k] == 0 else float(mean["group_acc"][k]),
                        "ci95": _ci(boot["group_acc"][:, k]) if g_counts[k] else [None, None]} for k in range(n_groups)],
            "worst_group_acc": float(mean["wga"]), "worst_group_acc_std": float(std["wga"]),
            "worst_group_acc_ci95": _ci(boot["wga"]), "worst_group": names[worst] if worst is not None else None,
            "mean_acc": float(mean["mean_acc"]), "mean_acc_std": float(std["mean_acc"]), "mean_acc_ci95": _ci(boot["mean_acc"]),
            "train_weighted_acc": float(mean["weighted_acc"]), "train_weighted_acc_std": float(std["weighted_acc"]),
            "train_weighted_acc_ci95": _ci(boot["weighted_acc"]),
        }

    report = {
        "title": title, "split": split, "n": int(len(labels)), "has_group_labels": has_groups, "n_boot": n_boot,
        "bootstrap_seed": seed, "seeds": len(model_ids),
        "models": [{"id": mid, "name": project.model(mid)["name"]} for mid in model_ids],
        "after": summarise(after_point, after_boot),
        "per_seed": [{"model_id": mid, "worst_group_acc": float(p["wga"]), "mean_acc": float(p["mean_acc"]),
                      "train_weighted_acc": float(p["weighted_acc"])} for mid, p in zip(model_ids, after_point)],
    }
    if before is not None:
        report["before"] = {**before, **summarise([before_point], before_boot)}
        deltas = {}
        for key, bkey in (("worst_group_acc", "wga"), ("mean_acc", "mean_acc"), ("train_weighted_acc", "weighted_acc")):
            deltas[key] = {"delta": report["after"][key] - report["before"][key],
                           "ci95": _ci(after_boot[bkey] - before_boot[bkey])}
        report["delta"] = deltas
    report["history"] = {mid: _history(project, mid) for mid in model_ids}
    return report


def _history(project: Project, model_id: int) -> list[dict]:
    return project.model(model_id)["metrics"].get("history", [])


def _pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{100 * x:.1f}"


def _ci_txt(ci) -> str:
    return "" if not ci or ci[0] is None else f" [{_pct(ci[0])}, {_pct(ci[1])}]"


def report_markdown(report: dict) -> str:
    a, b = report["after"], report.get("before")
    lines = [f"## {report['title']}", "",
             f"{report['split']} split, {report['n']} samples; {report['seeds']} seed(s) "
             f"(models {', '.join(str(m['id']) for m in report['models'])}); 95% bootstrap intervals from "
             f"{report['n_boot']} resamples of the {report['split']} samples.", ""]
    recipe = report.get("recipe")
    if recipe:
        kept = "; ".join(f"model {k['model_id']}: the val check at epoch {k['epoch']:g} (of {k['checks']} checks)"
                         for k in recipe["kept_checks"])
        lines += [f"Recipe: {recipe['epochs']} epoch(s), lr {recipe['lr']:g}, batch {recipe['batch_size']}, "
                  f"{recipe['evals_per_epoch']} val check(s) per epoch, share of generated samples per batch "
                  f"{recipe['gen_ratio']:g}, from {recipe['init']}. Kept (the best val check): {kept}.", ""]
    if b:
        lines += ["| group | n | before % | after % | change |", "| --- | ---: | ---: | ---: | ---: |"]
        for ga, gb in zip(a["groups"], b["groups"]):
            change = "—" if ga["acc"] is None else f"{100 * (ga['acc'] - gb['acc']):+.1f}"
            lines.append(f"| {ga['name']} | {ga['n']} | {_pct(gb['acc'])}{_ci_txt(gb['ci95'])} | "
                         f"{_pct(ga['acc'])}{_ci_txt(ga['ci95'])} | {change} |")
    else:
        lines += ["| group | n | accuracy % |", "| --- | ---: | ---: |"]
        for ga in a["groups"]:
            lines.append(f"| {ga['name']} | {ga['n']} | {_pct(ga['acc'])}{_ci_txt(ga['ci95'])} |")
    lines.append("")
    rows = [("worst-group accuracy", "worst_group_acc"), ("average accuracy, plain mean over samples", "mean_acc"),
            ("average accuracy, weighted by train group shares", "train_weighted_acc")]
    for label, key in rows:
        std = f" ± {_pct(a[key + '_std'])}" if report["seeds"] > 1 else ""
        txt = f"- {label}: **{_pct(a[key])}%**{std}{_ci_txt(a[key + '_ci95'])}"
        if b:
            d = report["delta"][key]
            txt += f" (before {_pct(b[key])}%; change {100 * d['delta']:+.1f} points{_ci_txt(d['ci95'])})"
        lines.append(txt)
    lines.append(f"- worst group: {a['worst_group']}" + (f" (before: {b['worst_group']})" if b else ""))
    if report.get("gammas"):
        lines.append("- γ per generated target class: " + ", ".join(f"{g:g}" for g in report["gammas"]))
    if report.get("gamma_search"):
        from ..method.retraining import gamma_label

        lines.append("- γ chosen by val WGA: " + "; ".join(
            f"{gamma_label(t)}: val WGA {_pct(t['val_wga'])}%, val accuracy {_pct(t['val_acc'])}%"
            f"{' (chosen)' if t['chosen'] else ''}" for t in report["gamma_search"]))
    for w in report.get("retrain_warnings") or []:
        lines.append(f"- **warning**: {w}")
    if report["seeds"] > 1:
        lines.append("- per seed: " + "; ".join(f"model {p['model_id']}: WGA {_pct(p['worst_group_acc'])}%, "
                                                f"mean {_pct(p['mean_acc'])}%" for p in report["per_seed"]))
    return "\n".join(lines) + "\n"


def plot_groups(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = report["after"], report.get("before")
    names = [g["name"] for g in a["groups"]]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(names)), 3.4), dpi=110)
    width = 0.38 if b else 0.6

    def bars(summary, offset, label, colour):
        vals = np.array([np.nan if g["acc"] is None else 100 * g["acc"] for g in summary["groups"]])
        lo = np.array([np.nan if g["ci95"][0] is None else 100 * g["ci95"][0] for g in summary["groups"]])
        hi = np.array([np.nan if g["ci95"][1] is None else 100 * g["ci95"][1] for g in summary["groups"]])
        err = np.nan_to_num(np.stack([vals - lo, hi - vals]).clip(min=0))
        ax.bar(x + offset, np.nan_to_num(vals), width, yerr=err, capsize=3, label=label, color=colour)

    if b:
        bars(b, -width / 2, f"before ({b['name']})", "#9aa5b1")
        bars(a, width / 2, report["title"], "#2f6db5")
    else:
        bars(a, 0, report["title"], "#2f6db5")
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylabel(f"{report['split']} accuracy %")
    ax.set_ylim(0, 105)
    # below the axes: inside, it covered bars (the one group that changed, most often the lowest)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    ax.set_title("per-group accuracy (95% bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def val_checks(history: list[dict]) -> list[dict]:
    """Every val check of a training history in order — the checks inside an epoch (``evals_per_epoch``)
    and the one at its end — as {"epoch": position in epochs, "val_wga", "val_acc"}."""
    out = []
    for h in history:
        out += [c for c in h.get("checks", []) if "val_acc" in c]
        if "val_acc" in h:
            out.append({"epoch": h["epoch"], "val_wga": h.get("val_wga"), "val_acc": h["val_acc"]})
    return out


def plot_curves(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), dpi=110)
    for mid, hist in report["history"].items():
        if not hist:
            continue
        points = [p for h in hist for p in h.get("loss_points", [])]  # several per epoch (older runs: one)
        if points:
            axes[0].plot([p["epoch"] for p in points], [p["loss"] for p in points], marker="o", markersize=3,
                         label=f"model {mid}")
        else:
            axes[0].plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], marker="o", label=f"model {mid}")
        checks = val_checks(hist)
        if checks:
            at = [c["epoch"] for c in checks]
            line, = axes[1].plot(at, [100 * (c.get("val_wga") or 0) for c in checks], marker="o", markersize=3,
                                 label=f"model {mid} val WGA")
            axes[1].plot(at, [100 * (c.get("val_acc") or 0) for c in checks], linestyle="--", color=line.get_color(),
                         label=f"model {mid} val acc")
    axes[0].set_title("training loss (mean since the previous point)", fontsize=10)
    axes[1].set_title("validation accuracy %", fontsize=10)
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("epoch (a point per val check)")
    for ax in axes:
        if ax.lines:  # below the axes, off the curves
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def save_report(project: Project, report: dict, kind: str = "retrain") -> dict:
    """Write JSON, Markdown and PNGs under ``<project>/reports/<id>/`` and a ``reports`` row."""
    md = report_markdown(report)
    rid = project.db["reports"].insert({
        "title": report["title"], "kind": kind, "model_ids": json.dumps([m["id"] for m in report["models"]]),
        "baseline_model_id": (report.get("before") or {}).get("model_id"), "summary": "{}", "markdown": md,
        "dir": "", "created_at": now()}).last_pk
    out = project.root / "reports" / str(rid)
    out.mkdir(parents=True, exist_ok=True)
    report = {**report, "id": rid, "files": {"json": "report.json", "markdown": "report.md",
                                             "groups_plot": "groups.png", "curves_plot": "curves.png"}}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    (out / "report.md").write_text(md)
    plot_groups(report, out / "groups.png")
    plot_curves(report, out / "curves.png")
    project.db["reports"].update(rid, {"summary": json.dumps(report, default=float),
                                       "dir": os.path.relpath(out, project.root)})
    return report


def reports(project: Project) -> list[dict]:
    rows = project.db.query("select id, title, kind, model_ids, baseline_model_id, dir, created_at from reports order by id")
    return [{**r, "model_ids": json.loads(r["model_ids"])} for r in rows]


def load_report(project: Project, report_id: int) -> dict:
    rows = list(project.db.query("select summary from reports where id = ?", [report_id]))
    if not rows:
        raise ProjectError(f"no report with id {report_id} in project {project.root}")
    return json.loads(rows[0]["summary"])
