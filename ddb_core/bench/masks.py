"""Masking backends against the demo's ground truth: mean IoU of grabcut and gradcam masks with the
demo's object masks, and images per second (``ddb bench masks``)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

from ..project.errors import ConfigError
from ..project.store import Project
from .calibration import _machine
from .docs import DOC, write_result


def mask_iou(pred: Optional["np.ndarray"], gt: "np.ndarray") -> float:
    """IoU of two 255-masks; a missing prediction (no detection) counts as 0."""

    if pred is None:
        return 0.0
    a, b = pred == 255, gt == 255
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def bench_masks(project_dir: str = "projects/demo", n: int = 200, seeds: Sequence[int] = (0, 1, 2),
                doc: Optional[Path] = DOC, json_path: Optional[Path] = Path("docs/bench/masks.json")) -> dict:
    """Mean IoU against the demo ground truth of grabcut (box, saliency) and gradcam (ERM model).

    Each seed draws ``n`` train images of the project; the figure is the median over seeds.
    """
    import numpy as np

    from ..data.imaging import load_mask, load_rgb
    from ..method.masking import GrabCutMasker, build_masker

    project = Project.open(project_dir)
    rows = [r for r in project.samples("train") if r["mask_path"]]
    if not rows:
        raise ConfigError(f"project {project_dir} has no ground-truth masks to compare with")
    backends = {"grabcut (centre box)": GrabCutMasker(init="box"), "grabcut (saliency)": GrabCutMasker(init="saliency")}
    if project.active_erm_id is not None:
        for t in (0.3, 0.5):
            backends[f"gradcam (Grad-CAM++ of the ERM model, threshold {t})"] = build_masker("gradcam", project=project, threshold=t, target="label")
    per = {name: [] for name in backends}
    speed = {name: [] for name in backends}
    for seed in seeds:
        pick = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
        sample = [rows[k] for k in pick]
        imgs = [load_rgb(project.dataset_path(r["path"])) for r in sample]
        gts = [load_mask(project.dataset_path(r["mask_path"]), im.shape[:2]) for r, im in zip(sample, imgs)]
        for name, masker in backends.items():
            t0 = time.monotonic()
            res = []
            for k in range(0, len(imgs), 32):
                res += masker.mask(imgs[k:k + 32], "bird", samples=sample[k:k + 32])
            speed[name].append(len(imgs) / (time.monotonic() - t0))
            per[name].append(float(np.mean([mask_iou(r.mask, g) for r, g in zip(res, gts)])))
    result = {"project": project_dir, "n": n, "seeds": list(seeds), "machine": _machine(),
              "command": f"python -m ddb_core bench masks -p {project_dir} --n {n} --seeds {' '.join(map(str, seeds))}",
              "backends": {name: {"mean_iou_per_seed": per[name], "median_mean_iou": statistics.median(per[name]),
                                  "images_per_s_median": statistics.median(speed[name])} for name in backends}}
    write_result(result, doc, json_path, "masks", masks_markdown(result))
    return result


def masks_markdown(result: dict) -> str:
    n, seeds = result["n"], result["seeds"]
    lines = ["## Mask quality of the offline backends", "",
             f"Command: `{result['command']}`. Mean IoU against the demo's ground-truth object masks on {n} train "
             f"images per seed (a miss counts as IoU 0); median over seeds {', '.join(map(str, seeds))}. "
             "`langsam` needs GroundingDINO and SAM weights, which cannot be downloaded here, so it is not measured; "
             "`provided` reads the ground truth itself (IoU 1 by construction).", "",
             "| backend | mean IoU (median of seeds) | per seed | images/s (this CPU) |", "| --- | ---: | --- | ---: |"]
    for name, r in result["backends"].items():
        lines.append(f"| {name} | {r['median_mean_iou']:.3f} | {', '.join(f'{x:.3f}' for x in r['mean_iou_per_seed'])} | "
                     f"{r['images_per_s_median']:.1f} |")
    return "\n".join(lines) + "\n"


