"""Benchmarks that write figures into ``docs/``: the demo calibration (ERM vs oracle).

``calibrate_demo`` builds one demo project per seed (data seed = training seed), trains the ERM
model with the default recipe and the group-balanced oracle (which uses train group labels), and
writes per-seed and median figures to ``docs/bench/calibration.json`` and a section of
``docs/benchmarks.md``. Finished models are reused when the command is run again, so an
interrupted benchmark resumes.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

from .api import create_project
from .demo_data import DemoDataConfig
from .errors import ConfigError
from .evaluation import GroupReport
from .progress import ProgressFn
from .store import Project
from .training import TrainConfig, stored_model, train_classifier

DOC = Path("docs/benchmarks.md")


def _train_or_reuse(project: Project, role: str, cfg: TrainConfig, on_progress) -> tuple[dict, float, bool]:
    cached = stored_model(project, role, cfg)
    if cached:
        run = [r for r in project.runs() if r["id"] == cached["run_id"]]
        return cached["metrics"], (run[0]["seconds"] if run else float("nan")), True
    res = train_classifier(project, cfg, role=role, make_active=(role == "erm"), on_progress=on_progress)
    return project.model(res.model_id)["metrics"], res.seconds, False


def calibrate_demo(seeds: Sequence[int] = (0, 1, 2), workdir: str = "projects/bench", epochs: Optional[int] = None,
                   doc: Optional[Path] = DOC, json_path: Optional[Path] = Path("docs/bench/calibration.json"),
                   demo: Optional[DemoDataConfig] = None, on_progress: Optional[ProgressFn] = None) -> dict:
    if not seeds:
        raise ConfigError("seeds must name at least one seed")
    base = TrainConfig() if epochs is None else TrainConfig(epochs=epochs)
    per_seed = []
    for seed in seeds:
        root = Path(workdir) / f"calibration-seed{seed}"
        t0 = time.monotonic()
        data_cfg = replace(demo or DemoDataConfig(), seed=seed)
        if Project.exists(root):
            project = Project.open(root)
        else:
            project, _ = create_project(root, "demo", demo=data_cfg, on_progress=on_progress)
        data_s = time.monotonic() - t0
        row = {"seed": seed, "data_seconds": round(data_s, 1)}
        for role, cfg in (("erm", replace(base, seed=seed)), ("oracle", replace(base, seed=seed, sampler="group_balanced"))):
            metrics, seconds, reused = _train_or_reuse(project, role, cfg, on_progress)
            test = GroupReport.from_dict(metrics["test"])
            row[role] = {"test": metrics["test"], "val_wga": metrics["val"]["worst_group_acc"], "best_epoch": metrics["best_epoch"],
                         "train_seconds": round(seconds, 1), "reused": reused, "config": asdict(cfg),
                         "wga": test.worst_group_acc, "worst_group": test.worst_group, "mean_acc": test.mean_acc,
                         "train_weighted_acc": test.train_weighted_acc}
        per_seed.append(row)
    result = {"seeds": list(seeds), "per_seed": per_seed, "machine": _machine(),
              "median": {role: {k: statistics.median(r[role][k] for r in per_seed) for k in ("wga", "mean_acc", "train_weighted_acc")}
                         for role in ("erm", "oracle")},
              "command": f"python -m ddb_core bench calibrate --seeds {' '.join(map(str, seeds))}" + (f" --epochs {epochs}" if epochs else ""),
              "train_config": asdict(base), "demo_config": asdict(demo or DemoDataConfig())}
    m = result["median"]
    result["criteria"] = {"erm_wga_le_50": m["erm"]["wga"] <= 0.5, "erm_mean_ge_85": m["erm"]["mean_acc"] >= 0.85,
                          "oracle_wga_ge_85": m["oracle"]["wga"] >= 0.85}
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))
    if doc:
        write_section(doc, "calibration", calibration_markdown(result))
    return result


def _machine() -> dict:
    import os

    import torch

    return {"cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine()}


def _p(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def calibration_markdown(res: dict) -> str:
    m = res["median"]
    lines = [
        "## Demo benchmark calibration: ERM vs group-balanced oracle",
        "",
        f"Command: `{res['command']}` (data seed = training seed; {res['machine']['cpu_count']} CPU cores, "
        f"torch {res['machine']['torch']}). Numbers are test-split percentages; the oracle upsamples groups "
        "with the **train group labels**, the ERM model uses none (its epoch is selected by val worst-group "
        "accuracy, i.e. with **val group labels**, the paper's setting).",
        "",
        "| model | group labels used | test WGA (median) | test mean acc, plain (median) | test mean acc, train-weighted (median) |",
        "| --- | --- | ---: | ---: | ---: |",
        f"| ERM | val (model selection) | {_p(m['erm']['wga'])} | {_p(m['erm']['mean_acc'])} | {_p(m['erm']['train_weighted_acc'])} |",
        f"| oracle (group-balanced) | train + val | {_p(m['oracle']['wga'])} | {_p(m['oracle']['mean_acc'])} | {_p(m['oracle']['train_weighted_acc'])} |",
        "",
        "Targets: ERM WGA ≤ 50% with mean accuracy ≥ 85%, oracle WGA ≥ 85%: "
        + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in res["criteria"].items()) + ".",
        "",
        "Per seed (test split; each group's accuracy with its count n):",
        "",
    ]
    groups = [g["name"] for g in res["per_seed"][0]["erm"]["test"]["groups"]]
    lines.append("| seed | model | WGA | worst group | mean plain | mean train-weighted | "
                 + " | ".join(groups) + " | best epoch | train wall time s |")
    lines.append("| --- | --- | ---: | --- | ---: | ---: | " + " | ".join("---:" for _ in groups) + " | ---: | ---: |")
    for r in res["per_seed"]:
        for role in ("erm", "oracle"):
            x = r[role]
            cells = [f"{_p(g['acc'])} (n={g['n']})" for g in x["test"]["groups"]]
            lines.append(f"| {r['seed']} | {role} | {_p(x['wga'])} | {x['worst_group']} | {_p(x['mean_acc'])} | "
                         f"{_p(x['train_weighted_acc'])} | " + " | ".join(cells) + f" | {x['best_epoch']} | {x['train_seconds']} |")
    lines += ["", f"Data generation wall time per seed (s): {', '.join(str(r['data_seconds']) for r in res['per_seed'])} "
              "(0 when the project already existed)."]
    return "\n".join(lines) + "\n"


def write_section(doc: Path, name: str, body: str) -> None:
    """Replace the section between ``<!-- name:start -->`` and ``<!-- name:end -->`` (or append it)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\nEvery figure here is written by the command named with it; none is edited by hand.\n"
    block = f"{start}\n{body}{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


# ---------------------------------------------------------------------------------------------
# Mask quality of the offline backends.


def mask_iou(pred: Optional["np.ndarray"], gt: "np.ndarray") -> float:
    """IoU of two 255-masks; a missing prediction (no detection) counts as 0."""
    import numpy as np

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

    from .imaging import load_mask, load_rgb
    from .masking import GrabCutMasker, build_masker

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
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))
    if doc:
        lines = ["## Mask quality of the offline backends", "",
                 f"Command: `{result['command']}`. Mean IoU against the demo's ground-truth object masks on {n} train "
                 f"images per seed (a miss counts as IoU 0); median over seeds {', '.join(map(str, seeds))}. "
                 "`langsam` needs GroundingDINO and SAM weights, which cannot be downloaded here, so it is not measured; "
                 "`provided` reads the ground truth itself (IoU 1 by construction).", "",
                 "| backend | mean IoU (median of seeds) | per seed | images/s (this CPU) |", "| --- | ---: | --- | ---: |"]
        for name, r in result["backends"].items():
            lines.append(f"| {name} | {r['median_mean_iou']:.3f} | {', '.join(f'{x:.3f}' for x in r['mean_iou_per_seed'])} | "
                         f"{r['images_per_s_median']:.1f} |")
        write_section(doc, "masks", "\n".join(lines) + "\n")
    return result


# ---------------------------------------------------------------------------------------------
# Precision: textual inversion in half precision, as it runs on a GPU.


def bench_precision(model: str = "data/models/micro-sd-inpainting", device: str = "auto", dtypes: Sequence[str] = ("auto",),
                    steps: int = 40, repeats: int = 3, doc: Optional[Path] = DOC,
                    json_path: Optional[Path] = Path("docs/bench/precision.json")) -> dict:
    """Textual inversion of one token on ``model`` in each of ``dtypes`` (``auto``: float16 on CUDA,
    float32 on CPU): whether every loss is finite, the dtype of the trained row and of AdamW's state,
    and the median seconds per step over ``repeats`` runs. Writes a section of docs/benchmarks.md."""
    import numpy as np

    from .device import resolve_device, resolve_dtype
    from .inpainting import Inpainter
    from .inversion import InversionConfig, learn_token

    dev = resolve_device(device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48 + 8 * k, 64, 3), dtype=np.uint8) for k in range(4)]
    rows = []
    for name in dtypes:
        dt = resolve_dtype(name, dev)
        runs = []
        for r in range(repeats):
            inp = Inpainter.load(model, device=str(dev), dtype=str(dt).removeprefix("torch."))
            t0 = time.monotonic()
            res = learn_token(inp.pipe, images, f"<probe{r}>", "bird", cfg=InversionConfig(steps=steps, batch_size=2, seed=r))
            runs.append({"seconds_per_step": (time.monotonic() - t0) / steps, "finite": bool(np.isfinite(res.loss_curve).all()),
                         "final_loss": float(np.mean(res.loss_curve[-10:])), "train_dtype": res.train_dtype,
                         "model_dtype": res.model_dtype})
        rows.append({"dtype": str(dt).removeprefix("torch."), "runs": runs,
                     "median_seconds_per_step": statistics.median(x["seconds_per_step"] for x in runs),
                     "all_finite": all(x["finite"] for x in runs), "train_dtype": runs[0]["train_dtype"]})
    res = {"device": str(dev), "device_name": _device_name(dev), "model": model, "steps": steps, "repeats": repeats,
           "rows": rows, "command": f"python -m ddb_core bench precision --device {device} --dtypes {' '.join(dtypes)}"}
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
    if doc is not None:
        write_section(doc, "precision", precision_markdown(res))
    return res


def _device_name(dev) -> str:
    if dev.type == "cuda":
        import torch

        return torch.cuda.get_device_name(dev)
    return f"{platform.processor() or platform.machine()} CPU"


def precision_markdown(res: dict) -> str:
    lines = [f"## Textual inversion in half precision ({res['device_name']})", "",
             f"`{res['command']}` — {res['steps']} steps of one token on `{res['model']}`, {res['repeats']} runs per "
             f"precision. The UNet and the VAE run in the given precision; the text encoder is moved to float32 for the "
             f"inversion, so the trained row and AdamW's state are float32.", "",
             "| model precision | every loss finite | row and optimiser state | s per step (median) |",
             "| --- | --- | --- | ---: |"]
    for r in res["rows"]:
        lines.append(f"| {r['dtype']} | {'yes' if r['all_finite'] else '**no**'} | {r['train_dtype']} | "
                     f"{r['median_seconds_per_step']:.3f} |")
    if res["device"] == "cpu":
        lines += ["", "On a CPU, float16 is refused (`--dtype float16` needs CUDA); bfloat16 runs the same half-precision "
                      "code path. The float16 run on a CUDA GPU is `--device cuda --dtypes float16` (not run here: no GPU "
                      "was available to this measurement)."]
    return "\n".join(lines)
