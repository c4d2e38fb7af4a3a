"""Scale benchmark of the review screen: a synthetic project with 120,000 candidates.

    python -m ddb_core.bench.app_scale [--n 120000] [--repeats 50] [--workdir projects/bench/scale]

Builds (once) a project whose candidates have random ψ, ρ and detection scores and point at a
pool of Waterbirds-size (500×375) generated images with their thumbnails, as generation stores them
(no diffusion needed), then measures server-side times with the app's own handlers: opening the
project (database → review model), a threshold change (counts per direction, ψ–ρ scatter and both
histograms), a gallery page of 48 thumbnails with a filter and a sort, and a lasso on the plot.
Medians and p95 over ``--repeats`` runs go to docs/benchmarks.md and docs/bench/scale*.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

POOL = 512  # distinct candidate images on disk
POOL_SIZE = (500, 375)  # w, h: Waterbirds-size candidates
BUDGETS_MS = {"open": 1500, "slider": 100, "gallery": 150, "selection": 150}  # open: max; the others: p95


def build_scale_project(root: Path, n: int, seed: int = 0):
    """A demo-sized project (tiny images) plus ``n`` candidates with random scores; reused if present."""
    from PIL import Image

    from ddb_core.api import create_project
    from ddb_core.demo.data import DemoDataConfig
    from ddb_core.project.store import Project, now

    from ddb_core.bench.real_sizes import picture as _picture
    from ddb_core.data.thumbnails import write_thumbnail

    if Project.exists(root):
        p = Project.open(root)
        pool0 = p.root / "candidates" / "pool" / "0.png"
        if p.db.execute("select count(*) from candidates where score_model_id = 1").fetchone()[0] == n and \
                pool0.exists() and Image.open(pool0).size == POOL_SIZE:
            return p
    project, _ = create_project(root, "demo", demo=DemoDataConfig(seed=seed, n_train=400, n_val=40, n_test=40), replace=Project.exists(root))
    rng = np.random.default_rng(seed)
    cand_dir = project.root / "candidates" / "pool"
    cand_dir.mkdir(parents=True, exist_ok=True)
    for k in range(POOL):
        img = _picture(rng, *POOL_SIZE, k % 2)
        Image.fromarray(img).save(cand_dir / f"{k}.png")
        write_thumbnail(project, f"candidates/pool/{k}.png", img)
    train = project.samples("train", "id, label")
    mask_rows = [{"sample_id": r["id"], "backend": "provided", "params_hash": "scale", "params": "{}", "status": "ok",
                  "score": float(rng.uniform(0.3, 1.0)), "area": 0.1, "path": None, "created_at": now()} for r in train]
    with project.write():
        # the scores belong to a stand-in ERM model (id 1, Ψ = 0.5 for both classes), as scores always do
        project.set_meta("active_erm_model", 1)
        project.db.execute("delete from class_stats")
        project.db["class_stats"].insert_all([{"erm_model_id": 1, "label": c, "mean_softmax": 0.5, "n": 1} for c in (0, 1)])
        project.db.execute("delete from decisions")
        project.db.execute("delete from audit")
        project.db.execute("delete from candidates")
        project.db.execute("delete from masks")
        project.db["masks"].insert_all(mask_rows)
        mask_ids = {r[0]: r[1] for r in project.db.execute("select sample_id, id from masks")}
        src = rng.integers(0, len(train), n)
        rows = []
        for k in range(n):
            s = train[int(src[k])]
            i = s["label"]
            rows.append({"key": f"ddb:{s['id']}:{i}->{1 - i}:scale:{k}", "method": "ddb", "source_id": s["id"],
                         "source_label": i, "target_label": 1 - i, "mask_id": mask_ids[s["id"]],
                         "path": f"candidates/pool/{k % POOL}.png", "seed": k, "prompt": "a photo of a bird",
                         "provenance": "{}", "psi": float(rng.beta(2, 2)), "rho": float(rng.normal(0.2, 0.15)), "score_model_id": 1,
                         "mask_change": float(rng.uniform(0.0, 0.4)), "created_at": now()})
        project.db["candidates"].insert_all(rows, batch_size=5000)
    from ddb_core.curation.review import keep_arrays

    keep_arrays(project)  # as generation and scoring do when they finish
    return project


def _rss_mb(peak: bool = False) -> float:
    """This process's resident memory now (from /proc), or its peak, in MiB."""
    import resource

    if peak:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return round(kb / 1024, 1)


def _stats(times: list[float]) -> dict:
    a = np.array(times) * 1000
    return {"median_ms": round(float(np.median(a)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "max_ms": round(float(a.max()), 1), "runs": len(a)}


def run(n: int = 120_000, repeats: int = 50, workdir: str = "projects/bench/scale", doc=None, json_path=None) -> dict:
    from ddb_core.curation.review import Filter, ReviewIndex
    from ddb_core.project.store import Project

    from ui import plots
    from ui.app import counts_markdown, gallery_items
    from ui.review_view import plots_at  # what a slider move draws: the plots and the state they were drawn from
    from ui.review_view import scatter_frame

    t0 = time.monotonic()
    project = build_scale_project(Path(workdir), n)
    build_s = time.monotonic() - t0
    names = project.class_names
    from ddb_core.curation.review import keep_arrays

    cold = []  # the arrays not kept (a project changed by a tool that does not keep them): read from SQLite
    for _ in range(3):
        (project.root / "cache" / "review-arrays.npz").unlink(missing_ok=True)
        t = time.perf_counter()
        ReviewIndex(Project.open(project.root))
        cold.append(time.perf_counter() - t)
    keep_arrays(project)
    opens = []  # as after a generation or scoring job, which keeps the arrays when it ends
    for _ in range(5):
        t = time.perf_counter()
        index = ReviewIndex(Project.open(project.root))
        opens.append(time.perf_counter() - t)
    rss_open = _rss_mb()
    rng = np.random.default_rng(1)
    slider, gallery, selection = [], [], []
    sorts = ["-rho", "queue", "psi", "id", "-detection"]
    queue = []  # a decision, then the next candidate in the queue (the queue's order is redone after each decision)
    for r in range(repeats):
        Psi = {0: float(rng.uniform(0.2, 0.9)), 1: float(rng.uniform(0.2, 0.9))}
        P = {0: float(rng.normal(0.2, 0.1)), 1: float(rng.normal(0.2, 0.1))}
        t = time.perf_counter()
        counts_markdown(index, Psi, P, names)
        plots_at(index, Psi, P, "0->1" if r % 2 else "1->0")
        slider.append(time.perf_counter() - t)
        f = Filter(direction=["0->1", "1->0", None][r % 3], status=["all", "auto-kept", "auto-pruned"][r % 3],
                   sort=sorts[r % len(sorts)])
        t = time.perf_counter()
        ids = index.query(f)
        gallery_items(index, ids, int(rng.integers(0, 20)))
        gallery.append(time.perf_counter() - t)
        # a lasso on the ψ–ρ plot (a random quadrilateral in the plot area) → the filtered gallery's first page
        direction = "0->1" if r % 2 else "1->0"
        t = time.perf_counter()
        pos, x, y, frame = scatter_frame(index, Psi, P, direction)
        cx, cy = frame.left + frame.width * rng.uniform(0.1, 0.5), frame.top + frame.height * rng.uniform(0.1, 0.5)
        w, h = frame.width * rng.uniform(0.2, 0.5), frame.height * rng.uniform(0.2, 0.5)
        polygon = [(cx, cy), (cx + w, cy + h * 0.1), (cx + w * 0.9, cy + h), (cx - w * 0.1, cy + h * 0.8)]
        chosen = index.ids[pos[plots.selected_in(frame, x, y, polygon)]]
        ids = index.query(Filter(ids=chosen, sort=sorts[r % len(sorts)]))
        gallery_items(index, ids, 0)
        selection.append(time.perf_counter() - t)
        t = time.perf_counter()
        cid = index.queue.next_undecided(index.Psi, index.P)
        index.manual[index.pos[cid]] = 1  # as a decision leaves the review model (the database is not the point here)
        nxt = index.queue.next_undecided(index.Psi, index.P)
        ids = index.query(Filter(sort="queue"))
        gallery_items(index, ids, 0)
        queue.append(time.perf_counter() - t)
        assert nxt != cid
    b = BUDGETS_MS
    res = {"candidates": len(index), "build_seconds": round(build_s, 1), "image_size": list(POOL_SIZE),
           "open": _stats(opens), "open_cold": _stats(cold), "slider_change": _stats(slider), "gallery_page_48": _stats(gallery),
           "plot_selection": _stats(selection), "queue_next": _stats(queue),
           "memory_mb": {"after_open": rss_open, "peak": _rss_mb(peak=True)},
           "budgets_ms": b,
           "targets": {"slider": _stats(slider)["p95_ms"] <= b["slider"],
                       "gallery": _stats(gallery)["p95_ms"] <= b["gallery"],
                       "selection": _stats(selection)["p95_ms"] <= b["selection"],
                       "queue": _stats(queue)["p95_ms"] <= b["gallery"],
                       "open": _stats(opens)["max_ms"] <= b["open"]},
           "command": f"python -m ddb_core.bench.app_scale --n {n} --repeats {repeats}"}
    from ddb_core.bench.docs import write_result

    write_result(res, doc, json_path, "scale" if n == 120_000 else f"scale-{n}", scale_markdown(res))
    return res


def scale_markdown(res: dict) -> str:
    t, b = res["targets"], res["budgets_ms"]
    ok = lambda v: "met" if v else "**not met**"
    row = lambda label, key, target: (f"| {label} | {res[key]['median_ms']} | {res[key]['p95_ms']} | {res[key]['max_ms']} | "
                                      f"{target} |")
    mem = res.get("memory_mb", {})
    w, h = res["image_size"]
    return "\n".join([
        f"## Review screen at scale ({res['candidates']:,} candidates of {w}×{h})", "",
        f"Command: `{res['command']}` — a synthetic project with {res['candidates']:,} candidates (random ψ, ρ and "
        f"detection scores; a pool of {POOL} images of {w}×{h}, Waterbirds' size, with the thumbnails generation "
        f"stores), timed server-side with the app's own handlers on this 2-core CPU machine. Generation and scoring "
        f"keep the review model's arrays when they finish (`review.keep_arrays`), so the screen opens from them; "
        f"the second row is an opening without them (every row read from SQLite).", "",
        "| operation | median ms | p95 ms | max ms | target |", "| --- | ---: | ---: | ---: | --- |",
        row("open the project (database → review model), as after a job", "open", f"max ≤ {b['open']} ms: {ok(t['open'])}"),
        row("open with the arrays not kept (all read from SQLite)", "open_cold", "—"),
        row("threshold change: counts, ψ–ρ plot, two histograms", "slider_change", f"p95 ≤ {b['slider']} ms: {ok(t['slider'])}"),
        row("gallery page: filter, sort, 48 thumbnails", "gallery_page_48", f"p95 ≤ {b['gallery']} ms: {ok(t['gallery'])}"),
        row("plot selection (lasso on the ψ–ρ plot) → filtered gallery page", "plot_selection",
            f"p95 ≤ {b['selection']} ms: {ok(t['selection'])}"),
        row("review queue: a decision → next in queue → its gallery page", "queue_next",
            f"p95 ≤ {b['gallery']} ms: {ok(t['queue'])}"),
    ]
      + ([f"", f"Memory of the process: {mem.get('after_open')} MiB resident after opening, {mem.get('peak')} MiB at its "
          f"peak (building the project included)."] if mem else []) + [""]) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="review-screen scale benchmark")
    ap.add_argument("--n", type=int, default=120_000)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--workdir", default="projects/bench/scale")
    ap.add_argument("--no-docs", action="store_true")
    a = ap.parse_args(argv)
    suffix = "" if a.n == 120_000 else f"-{a.n}"
    out = run(a.n, a.repeats, a.workdir + suffix, None if a.no_docs else "docs/benchmarks.md",
              None if a.no_docs else f"docs/bench/scale{suffix}.json")
    print(scale_markdown(out))


if __name__ == "__main__":
    main()
