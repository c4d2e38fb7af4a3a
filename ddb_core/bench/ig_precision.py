"""What float16 autocast does to ρ (``ddb bench ig-precision``): every scored candidate of a project scored again by
its active ERM model twice, with integrated gradients in float32 (the default) and with the classifier's forward under
float16 autocast (``ddb score --ig-dtype float16``: the baseline, the path points, the gradients and the sums stay
float32), on the device asked for. Reported: the relative change of ρ and the change of ψ, and how many candidates
change their automatic decision at the project's thresholds.

On a CPU this is PyTorch's CPU float16 autocast: the same number format, other kernels than CUDA's, so it measures
the rounding, not a particular GPU's arithmetic; run it on CUDA for that.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from .docs import DOC, write_result


def bench_ig_precision(project_dir: str = "projects/demo", limit: int = 80, n_steps: int = 50, device: str = "auto",
                       doc: Optional[Path] = DOC, json_path: Optional[Path] = Path("docs/bench/ig-precision.json")) -> dict:
    import torch

    from ..curation.decisions import thresholds
    from ..project.device import resolve_device
    from ..data.imaging import load_mask, load_rgb
    from ..method.scoring import score_candidates
    from ..classifiers.models import load_classifier
    from ..project.store import Project

    project = Project.open(project_dir)
    erm = project.active_erm()
    dev = resolve_device(device)
    model, _a, _n = load_classifier(project.project_path(erm["path"]), erm["arch"], erm["num_classes"], device=dev,
                                    what="ig precision")
    rows = list(project.db.query(
        "select c.id, c.source_label, c.target_label, c.path, s.path as source_path, m.path as mask_path from candidates c "
        "join samples s on s.id = c.source_id join masks m on m.id = c.mask_id where c.psi is not null and "
        "c.method = 'ddb' order by c.id limit ?", [int(limit)]))
    src = [load_rgb(project.dataset_path(r["source_path"])) for r in rows]
    gen = [load_rgb(project.project_path(r["path"])) for r in rows]
    msk = [load_mask(project.project_path(r["mask_path"]), im.shape[:2]) for r, im in zip(rows, src)]
    labels = ([r["source_label"] for r in rows], [r["target_label"] for r in rows])

    def half_forward(x):  # as ``score_candidates`` does on CUDA with half: float16 inside the model, float32 out
        with torch.autocast(dev.type, dtype=torch.float16):
            return model(x).float()

    out, seconds = {}, {}
    for name, fn in (("float32", model), ("float16", half_forward)):
        t0 = time.monotonic()
        out[name] = score_candidates(fn, src, gen, msk, *labels, erm["image_size"], n_steps=n_steps)
        seconds[name] = time.monotonic() - t0
    rho32 = np.array([s.rho for s in out["float32"]])
    rho16 = np.array([s.rho for s in out["float16"]])
    psi32 = np.array([s.psi for s in out["float32"]])
    psi16 = np.array([s.psi for s in out["float16"]])
    rel = np.abs(rho16 - rho32) / np.maximum(np.abs(rho32), 1e-12)
    th = thresholds(project)
    Psi = {int(k): float(v) for k, v in th["Psi"].items()}
    P = {int(k): float(v) for k, v in th["P"].items()}
    keep = lambda psi, rho: np.array([p < Psi.get(i, np.nan) and r > P.get(j, np.nan)
                                      for p, r, i, j in zip(psi, rho, *labels)])
    flips = int((keep(psi32, rho32) != keep(psi16, rho16)).sum())
    project.close()
    res = {"project": str(project_dir), "candidates": len(rows), "n_steps": n_steps, "device": str(dev),
           "erm": {"arch": erm["arch"], "image_size": erm["image_size"]},
           "rho_relative_change": {"median": float(np.median(rel)), "p95": float(np.percentile(rel, 95)),
                                   "max": float(rel.max())},
           "psi_abs_change": {"median": float(np.median(np.abs(psi16 - psi32))), "max": float(np.abs(psi16 - psi32).max())},
           "decision_flips": flips, "seconds": seconds,
           "command": f"python -m ddb_core bench ig-precision --project {project_dir} --limit {limit}"}
    write_result(res, doc, json_path, "ig-precision", ig_precision_markdown(res))
    return res


def ig_precision_markdown(res: dict) -> str:
    r, p = res["rho_relative_change"], res["psi_abs_change"]
    cpu = res["device"].startswith("cpu")
    return "\n".join([
        "## Integrated gradients in float16: what it does to ρ", "",
        f"Command: `{res['command']}` — the first {res['candidates']} scored candidates of the project, each scored "
        f"again by its ERM model ({res['erm']['arch']} at {res['erm']['image_size']} px) with {res['n_steps']} IG steps, "
        f"in float32 (the default on every device) and with the classifier's forward under float16 autocast (`ddb "
        f"score --ig-dtype float16`; the baseline, the path points, the gradients and the sums stay float32), on "
        f"{res['device']}"
        + (" (PyTorch's CPU float16 autocast: the same number format, other kernels than CUDA's)" if cpu else "")
        + ".", "",
        "| | median | p95 | max |", "| --- | ---: | ---: | ---: |",
        f"| relative change of ρ | {r['median']:.2e} | {r['p95']:.2e} | {r['max']:.2e} |",
        f"| absolute change of ψ | {p['median']:.2e} | | {p['max']:.2e} |", "",
        f"Automatic decisions that change at the project's thresholds: {res['decision_flips']} of {res['candidates']}. "
        f"Seconds: float32 {res['seconds']['float32']:.1f}, float16 {res['seconds']['float16']:.1f}.", ""])
