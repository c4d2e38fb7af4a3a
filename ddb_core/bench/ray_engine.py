"""Throughput of the Ray engine (``ddb bench ray``): candidates per second generated (and scored) by
the local engine and by Ray with 1 and 2 workers, on this machine.

A small demo project (64 px, the demo's micro inpainting model, ``n`` source images per class, box
masks, the plain prompt) is prepared once; each run generates and then scores every candidate in a
fresh copy of it. The wall time of a run includes starting Ray and loading the model in every actor
(what a user waits for). Each figure is the median of ``repeats`` runs. On CPU each Ray worker gets ``cpus_per_worker`` cores (its torch
threads); the local engine uses torch's default threads.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

from ..progress import ProgressFn

SECTION = "ray"


def _prepare(root: Path, n: int, on_progress) -> Path:
    from ..api import create_project, train_erm
    from ..demo.data import DemoDataConfig
    from ..demo.pipeline import DEMO_ERM
    from ..generation import compute_selected_masks
    from ..method.masking import ProvidedMasker
    from ..method.selection import SelectionConfig, select
    from ..store import Project

    if Project.exists(root) and Project.open(root).get_meta("ray_bench_ready"):
        return root
    shutil.rmtree(root, ignore_errors=True)
    project, _ = create_project(root, "demo", demo=DemoDataConfig(seed=0, n_train=600, n_val=150, n_test=150, workers=1),
                                on_progress=on_progress)
    train_erm(project, replace(DEMO_ERM, epochs=1), on_progress=on_progress)
    select(project, SelectionConfig(k=n, ti_size=0))
    compute_selected_masks(project, ProvidedMasker(project.dataset_path, shape="box"))
    project.set_meta("ray_bench_ready", True)
    project.close()
    return root


def _one_run(template: Path, run_root: Path, engine, inpaint, ig_steps: int) -> dict:
    from ..generation import GenerationConfig, generate, score
    from ..method.inpainting import Inpainter
    from ..method.masking import ProvidedMasker
    from ..store import Project

    shutil.rmtree(run_root, ignore_errors=True)
    shutil.copytree(template, run_root)
    project = Project.open(run_root)
    t0 = time.monotonic()
    inpainter = Inpainter.load(inpaint.model) if engine.kind == "local" else None
    generate(project, inpainter, ProvidedMasker(project.dataset_path, shape="box"), cfg=GenerationConfig(use_tokens=False),
             inpaint=inpaint, engine=engine)
    t_gen = time.monotonic() - t0
    n = project.db.execute("select count(*) from candidates").fetchone()[0]
    t1 = time.monotonic()
    score(project, n_steps=ig_steps, engine=engine)
    t_score = time.monotonic() - t1
    project.close()
    shutil.rmtree(run_root, ignore_errors=True)
    return {"candidates": n, "generation_s": t_gen, "scoring_s": t_score}


def bench_ray(workdir: str = "projects/bench", n: int = 24, repeats: int = 3, steps: int = 20, ig_steps: int = 16,
              workers: Sequence[int] = (1, 2), batch_size: int = 4, doc: Optional[Path] = None,
              json_path: Optional[Path] = None, on_progress: Optional[ProgressFn] = None) -> dict:
    from ..engines import EngineConfig
    from ..method.inpainting import MICRO_MODEL, InpaintConfig

    t_start = time.monotonic()
    template = _prepare(Path(workdir) / "ray-bench", n, on_progress)
    inpaint = InpaintConfig(model=MICRO_MODEL, steps=steps, guidance=7.5, batch_size=batch_size)
    configs = [("local", EngineConfig())] + [(f"ray, {w} worker{'s' if w != 1 else ''}", EngineConfig(kind="ray", workers=w))
                                             for w in workers]
    rows = []
    for name, engine in configs:
        runs = [_one_run(template, Path(workdir) / "ray-bench-run", engine, inpaint, ig_steps) for _ in range(repeats)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("generation_s", "scoring_s")}
        cands = runs[0]["candidates"]
        rows.append({"engine": name, "config": asdict(engine), "candidates": cands, "runs": runs, **med,
                     "generation_per_s": cands / med["generation_s"], "scoring_per_s": cands / med["scoring_s"]})
    by = {r["engine"]: r for r in rows}
    ratio = {k: by["ray, 2 workers"][k] / by["ray, 1 worker"][k] for k in ("generation_per_s", "scoring_per_s")} \
        if "ray, 2 workers" in by and "ray, 1 worker" in by else {}
    res = {"rows": rows, "ratio_2_over_1": ratio, "repeats": repeats, "inpaint": asdict(inpaint), "ig_steps": ig_steps,
           "n_per_class": n, "cpu_count": os.cpu_count(), "seconds": round(time.monotonic() - t_start, 1),
           "command": f"python -m ddb_core bench ray --repeats {repeats}"}
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
    if doc:
        from .docs import write_section

        write_section(doc, SECTION, ray_markdown(res))
    return res


def ray_markdown(res: dict) -> str:
    ip = res["inpaint"]
    lines = ["## Generation and scoring on Ray", "",
             f"Command: `{res['command']}` ({res['cpu_count']} CPU cores, no GPU). A demo project at 64 px, "
             f"{res['n_per_class']} source images per class (both directions: {res['rows'][0]['candidates']} "
             f"candidates), the micro inpainting model ({ip['steps']} DDIM steps, batches of {ip['batch_size']}), "
             f"IG with {res['ig_steps']} steps. Each run generates then scores every candidate in a fresh copy; the "
             f"wall time includes starting Ray and loading the model in every actor. Medians of {res['repeats']} runs.", "",
             "| engine | generation s | candidates/s generated | scoring s | candidates/s scored |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for r in res["rows"]:
        lines.append(f"| {r['engine']} | {r['generation_s']:.1f} | {r['generation_per_s']:.2f} | {r['scoring_s']:.1f} | "
                     f"{r['scoring_per_s']:.2f} |")
    if res["ratio_2_over_1"]:
        q = res["ratio_2_over_1"]
        lines += ["", f"- 2 workers / 1 worker: **{q['generation_per_s']:.2f}×** generation, "
                      f"**{q['scoring_per_s']:.2f}×** scoring (each worker one core; this machine has "
                      f"{res['cpu_count']})"]
    lines.append(f"- wall time {res['seconds'] / 60:.1f} min in all")
    return "\n".join(lines) + "\n"
