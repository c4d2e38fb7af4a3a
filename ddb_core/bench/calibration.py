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

from ..api import create_project
from ..demo.data import DemoDataConfig
from ..errors import ConfigError
from ..evaluation import GroupReport
from ..progress import ProgressFn
from ..store import Project
from ..training import TrainConfig, stored_model, train_classifier
from .docs import DOC, write_section



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
