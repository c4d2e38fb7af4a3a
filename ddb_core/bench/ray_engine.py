"""Throughput of the Ray engine (``ddb bench ray``): candidates per second generated (and scored) by
the local engine and by Ray with 1 and 2 workers, on this machine.

A small demo project (64 px, the demo's micro inpainting model, ``n`` source images per class, box
masks, the plain prompt) is prepared once; each run generates and then scores every candidate in a
fresh copy of it. The wall time of a run includes starting Ray and loading the model in every actor
(what a user waits for); the steady rate counts from the first result to the last, leaving out
starting Ray and the actors (what a long run approaches). Each figure is the median of ``repeats`` runs. On CPU each Ray worker gets ``cpus_per_worker`` cores (its torch
threads); the local engine uses torch's default threads.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

from ..project.progress import ProgressFn
from .docs import write_result

SECTION = "ray"


def _prepare(root: Path, n: int, on_progress) -> Path:
    from ..api import create_project, train_erm
    from ..demo.data import DemoDataConfig
    from ..demo.pipeline import DEMO_ERM
    from ..pipeline.generation import compute_selected_masks
    from ..method.masking import ProvidedMasker
    from ..method.selection import SelectionConfig, select
    from ..project.store import Project

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
    from ..pipeline.generation import GenerationConfig, generate, score
    from ..method.inpainting import Inpainter
    from ..method.masking import ProvidedMasker
    from ..project.store import Project

    shutil.rmtree(run_root, ignore_errors=True)
    shutil.copytree(template, run_root)
    project = Project.open(run_root)
    events: list[tuple[float, str, int]] = []  # (time, stage, done) of every progress report
    t0 = time.monotonic()
    inpainter = Inpainter.load(inpaint.model) if engine.kind == "local" else None
    generate(project, inpainter, ProvidedMasker(project.dataset_path, shape="box"), cfg=GenerationConfig(use_tokens=False),
             inpaint=inpaint, engine=engine, on_progress=lambda p: events.append((time.monotonic(), p.stage, p.done)))
    t_gen = time.monotonic() - t0
    n = project.db.execute("select count(*) from candidates").fetchone()[0]
    t1 = time.monotonic()
    score(project, n_steps=ig_steps, engine=engine,
          on_progress=lambda p: events.append((time.monotonic(), p.stage, p.done)))
    t_score = time.monotonic() - t1
    project.close()
    shutil.rmtree(run_root, ignore_errors=True)
    return {"candidates": n, "generation_s": t_gen, "scoring_s": t_score,
            "generation_steady_per_s": _steady(events, "generate"), "scoring_steady_per_s": _steady(events, "score")}


def _steady(events: list[tuple[float, str, int]], prefix: str) -> Optional[float]:
    """Results per second between the first result and the last (over every stage named ``prefix…``)."""
    last: dict[str, int] = {}
    points = []  # (time, results so far)
    for t, stage, done in events:
        if stage.startswith(prefix):
            last[stage] = done
            points.append((t, sum(last.values())))
    firsts = [p for p in points if p[1] > 0]
    if len(firsts) < 2 or firsts[-1][0] <= firsts[0][0]:
        return None
    return (firsts[-1][1] - firsts[0][1]) / (firsts[-1][0] - firsts[0][0])


def bench_ray(workdir: str = "projects/bench", n: int = 24, repeats: int = 3, steps: int = 20, ig_steps: int = 16,
              workers: Sequence[int] = (1, 2), batch_size: int = 4, doc: Optional[Path] = None,
              json_path: Optional[Path] = None, on_progress: Optional[ProgressFn] = None) -> dict:
    from ..pipeline.engines import EngineConfig
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
        for k in ("generation_steady_per_s", "scoring_steady_per_s"):
            vals = [r[k] for r in runs if r[k] is not None]
            med[k] = statistics.median(vals) if vals else None
        cands = runs[0]["candidates"]
        rows.append({"engine": name, "config": asdict(engine), "candidates": cands, "runs": runs, **med,
                     "generation_per_s": cands / med["generation_s"], "scoring_per_s": cands / med["scoring_s"]})
    by = {r["engine"]: r for r in rows}
    ratio = {k: by["ray, 2 workers"][k] / by["ray, 1 worker"][k]
             for k in ("generation_per_s", "scoring_per_s", "generation_steady_per_s", "scoring_steady_per_s")
             if by.get("ray, 2 workers", {}).get(k) and by.get("ray, 1 worker", {}).get(k)}
    res = {"rows": rows, "ratio_2_over_1": ratio, "repeats": repeats, "inpaint": asdict(inpaint), "ig_steps": ig_steps,
           "n_per_class": n, "cpu_count": os.cpu_count(), "seconds": round(time.monotonic() - t_start, 1),
           "command": f"python -m ddb_core bench ray --repeats {repeats}"}
    write_result(res, doc, json_path, SECTION, ray_markdown(res))
    return res


def ray_markdown(res: dict) -> str:
    ip = res["inpaint"]
    lines = ["## Generation and scoring on Ray", "",
             f"Command: `{res['command']}` ({res['cpu_count']} CPU cores, no GPU). A demo project at 64 px, "
             f"{res['n_per_class']} source images per class (both directions: {res['rows'][0]['candidates']} "
             f"candidates), the micro inpainting model ({ip['steps']} DDIM steps, batches of {ip['batch_size']}), "
             f"IG with {res['ig_steps']} steps. Each run generates then scores every candidate in a fresh copy; the "
             f"wall time includes starting Ray and loading the model in every actor. Medians of {res['repeats']} runs.", "",
             "| engine | generation s | candidates/s generated | steady | scoring s | candidates/s scored | steady |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def f(x):
        return "—" if x is None else f"{x:.2f}"

    for r in res["rows"]:
        lines.append(f"| {r['engine']} | {r['generation_s']:.1f} | {r['generation_per_s']:.2f} | "
                     f"{f(r.get('generation_steady_per_s'))} | {r['scoring_s']:.1f} | {r['scoring_per_s']:.2f} | "
                     f"{f(r.get('scoring_steady_per_s'))} |")
    q = res["ratio_2_over_1"]
    if q:
        lines += ["", f"- 2 workers / 1 worker, whole runs: **{q['generation_per_s']:.2f}×** generation, "
                      f"**{q['scoring_per_s']:.2f}×** scoring"
                      + (f"; steady rates: **{q['generation_steady_per_s']:.2f}×** generation" if "generation_steady_per_s" in q else "")
                      + (f", **{q['scoring_steady_per_s']:.2f}×** scoring" if "scoring_steady_per_s" in q else "")
                      + f" (each worker one core; this machine has {res['cpu_count']})"]
    lines.append(f"- wall time {res['seconds'] / 60:.1f} min in all")
    return "\n".join(lines) + "\n"
