"""How long the review screen takes to show an action, measured in a real browser (Debian's Chromium with Playwright).

    python -m ddb_core.bench.review_browser [--project projects/demo] [--scale 120000] [--presses 30] [--runs 3]

The app runs in this process on a copy of the project; a page opens its Review screen. For each key press (`r`,
reject and move on; `a`, accept) and each change of the gallery's decision filter, the time runs from the key press
(or the click on the filter's option) to the last change of anything on the screen that the action redraws — the
ψ–ρ plot, the histograms, the counts, the gallery, the five panels, the candidate's text — once the screen agrees
with the database (the plot's dots are the stored decisions) and has been still for 0.6 s. A mutation observer in
the page records when each part last changed; the clock starts at the page's own key or mouse event (so the
automation's time to find and press the option is not counted). With ``--scale N`` the same is measured on the synthetic project of
``bench.app_scale`` with N candidates. Medians and p95 go to docs/benchmarks.md ("review-browser").
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

BUDGET_MS = 1000  # p95, key press → last part drawn; and for a filter change
QUIET_MS = 600  # the screen counts as drawn when nothing changed for this long

OBSERVER_JS = """
() => {
  window.__ddbLast = performance.now();
  const watched = ['#scatter', '#gallery', '#counts', '#review-info', '#panel-source', '#panel-mask', '#panel-result',
                   '#panel-softmax', '#panel-ig', '#page-info'];
  const obs = new MutationObserver(() => { window.__ddbLast = performance.now(); });
  for (const sel of watched) {
    const el = document.querySelector(sel);
    if (el) obs.observe(el, {subtree: true, childList: true, attributes: true, characterData: true});
  }
  // the time of the person's input itself (the browser's key or click event), not of the automation's call
  for (const kind of ['keydown', 'mousedown']) {
    document.addEventListener(kind, () => { window.__ddbInput = performance.now(); }, true);
  }
  // an image counts as drawn when it has loaded
  document.addEventListener('load', (e) => { if (e.target.tagName === 'IMG') window.__ddbLast = performance.now(); }, true);
}
"""


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms, float)
    return {"n": int(a.size), "median_ms": round(float(np.median(a)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "max_ms": round(float(a.max()), 1)}


def _settle(page, t0: float, ready, timeout_s: float = 60) -> float:
    """Wait until ``ready()`` holds and the page has been still for QUIET_MS; the ms from the input (the page's key
    or mouse event after ``t0``, page clock) to its last change."""
    start = time.time()
    t0 = max(t0, page.evaluate("() => window.__ddbInput || 0"))
    while not ready():
        if time.time() - start > timeout_s:
            raise TimeoutError("the screen did not reach the database's state")
        page.wait_for_timeout(50)
    while True:
        now, last = page.evaluate("() => [performance.now(), window.__ddbLast]")
        if now - last >= QUIET_MS:
            return max(0.0, last - t0)
        if time.time() - start > timeout_s:
            raise TimeoutError("the screen did not settle")
        page.wait_for_timeout(50)


def measure(project_dir: Path, presses: int = 30, filters: int = 10, height: int = 1800) -> dict:
    from playwright.sync_api import sync_playwright

    from ddb_core.curation.decisions import decisions, thresholds
    from ddb_core.project.store import Project
    from ui.app import build_app, launch_kwargs
    from ui.screenshot import BROWSER_ARGS, CHROMIUM, open_review

    p = Project.open(project_dir)

    def n_decided() -> int:
        p.db.conn.commit()
        return p.db.execute("select count(*) from decisions").fetchone()[0]

    def agrees(page) -> bool:
        shown = json.loads(page.locator("#plot-state textarea, #plot-state input").first.input_value() or "{}")
        if not shown.get("direction"):
            return False
        i, j = (int(x) for x in shown["direction"].split("->"))
        th = thresholds(p)
        rows = {r[0]: (r[1], r[2]) for r in p.db.execute("select id, source_label, target_label from candidates")}
        dots = {"pruned": 0, "kept": 0, "accepted": 0, "rejected": 0}
        for d in decisions(p, th=th):
            if rows[d.candidate_id] != (i, j) or d.auto is None:
                continue
            dots[{"accept": "accepted", "reject": "rejected"}.get(d.manual) or ("kept" if d.auto else "pruned")] += 1
        return shown["dots"] == dots

    app = build_app(str(project_dir), build_demo=False)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
               **launch_kwargs(str(project_dir)))
    keys, filter_ms = [], []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": height})
            # the synthetic project's candidates have no softmax or IG map to show: the three image panels
            scored = p.db.execute("select count(*) from candidates where ig_path is not null").fetchone()[0]
            open_review(page, app.local_url, panels=None if scored else ("panel-source", "panel-mask", "panel-result"))
            page.wait_for_timeout(2000)
            page.evaluate(OBSERVER_JS)
            page.locator("body").click(position={"x": 5, "y": 5})
            for k in range(presses):
                before = n_decided()
                t0 = page.evaluate("() => performance.now()")
                page.keyboard.press("r" if k % 2 == 0 else "a")
                keys.append(_settle(page, t0, lambda: n_decided() > before and agrees(page)))
            for k in range(filters):
                label = "manually rejected" if k % 2 == 0 else "all"
                box = page.get_by_label("decision", exact=True)
                box.click()
                option = page.get_by_role("option", name=label, exact=True)
                option.wait_for()
                t0 = page.evaluate("() => performance.now()")
                option.click()
                filter_ms.append(_settle(page, t0, lambda: box.input_value() == label))
            browser.close()
    finally:
        app.close()
    n = p.db.execute("select count(*) from candidates").fetchone()[0]
    return {"candidates": n, "key_press": _stats(keys), "filter_change": _stats(filter_ms)}


def _measure_apart(project: Path, presses: int, filters: int, out: Path) -> dict:
    """``measure`` in a process of its own, as a user runs one app on one project (apps measured one after another
    in one process slowed the later ones: the earlier apps' objects stay in the interpreter)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "ddb_core.bench.review_browser", "--measure-one", str(project),
                    "--presses", str(presses), "--filters", str(filters), "--json-out", str(out)], check=True)
    return json.loads(out.read_text())


def _over_runs(results: list[dict]) -> dict:
    """One row from several runs of ``measure``: each statistic the median over the runs, and every run's p95."""
    import statistics

    out = {"candidates": results[0]["candidates"], "runs": len(results)}
    for part in ("key_press", "filter_change"):
        out[part] = {k: round(statistics.median(r[part][k] for r in results), 1) for k in ("median_ms", "p95_ms", "max_ms")}
        out[part]["n"] = sum(r[part]["n"] for r in results)
        out[part]["p95_per_run"] = [r[part]["p95_ms"] for r in results]
    return out


def run(project: str = "projects/demo", scale: int = 0, presses: int = 30, filters: int = 10, doc=None,
        json_path=None, runs: int = 1) -> dict:
    """Both measurements on fresh copies, ``runs`` times each (the decisions they make never reach the project)."""
    from ddb_core.bench.app_scale import build_scale_project
    from ddb_core.project.errors import ProjectError
    from ddb_core.project.store import Project

    if not Project.exists(project):
        raise ProjectError(f"{project}: no project there (python app.py builds the demo)")
    def measured(source: Path) -> dict:
        results = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / "project"
                shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*.db-wal", "*.db-shm"))
                results.append(_measure_apart(copy, presses, filters, Path(tmp) / "result.json"))
        return _over_runs(results)

    rows = [{"project": project, **measured(Path(project))}]
    if scale:
        root = Path("projects/bench") / f"scale-review-{scale}"
        build_scale_project(root, scale)
        rows.append({"project": f"synthetic, {scale:,} candidates", **measured(root)})
    res = {"rows": rows, "budget_ms": BUDGET_MS, "quiet_ms": QUIET_MS,
           "met": all(r["key_press"]["p95_ms"] <= BUDGET_MS and r["filter_change"]["p95_ms"] <= BUDGET_MS for r in rows),
           "runs": runs,
           "command": f"python -m ddb_core.bench.review_browser --project {project}" + (f" --scale {scale}" if scale else "")
                      + f" --presses {presses} --filters {filters}" + (f" --runs {runs}" if runs > 1 else "")}
    from ddb_core.bench.docs import write_result

    write_result(res, doc, json_path, "review-browser", browser_markdown(res))
    return res


def browser_markdown(res: dict) -> str:
    ok = lambda v: "met" if v <= res["budget_ms"] else "**not met**"
    lines = ["## The review screen in the browser: from a key press to the last part drawn", "",
             f"Command: `{res['command']}` — the app and headless Chromium on this 2-core CPU machine, on a copy of each "
             f"project, each run a process of its own. A key press (`r` or `a`, alternately) is timed from the page's key event to the last change of the plots, "
             f"counts, gallery, panels and text, once the plot shows the stored decisions and nothing changed for "
             f"{res['quiet_ms']} ms; a filter change (the gallery's decision filter) from the page's mouse event on the option. "
             f"Budget: p95 ≤ {res['budget_ms']} ms."
             + (f" Each figure is the median over {res['runs']} runs, each on a fresh copy and a fresh browser; the "
                f"p95 of every run is listed." if res.get("runs", 1) > 1 else ""), "",
             "| project | candidates | key press median ms | p95 ms | max ms | filter median ms | p95 ms | budget | p95 of each run, keys / filter |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in res["rows"]:
        k, f = r["key_press"], r["filter_change"]
        each = lambda d: ", ".join(f"{v:g}" for v in d.get("p95_per_run", [d["p95_ms"]]))
        lines.append(f"| {r['project']} | {r['candidates']:,} | {k['median_ms']} | {k['p95_ms']} | {k['max_ms']} | "
                     f"{f['median_ms']} | {f['p95_ms']} | keys {ok(k['p95_ms'])}, filter {ok(f['p95_ms'])} | "
                     f"{each(k)} / {each(f)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default="projects/demo")
    ap.add_argument("--scale", type=int, default=0, help="also a synthetic project of this many candidates (e.g. 120000)")
    ap.add_argument("--presses", type=int, default=30)
    ap.add_argument("--filters", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="runs per project, each on a fresh copy (default: %(default)s)")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--measure-one", metavar="PROJECT", help=argparse.SUPPRESS)  # one run, in this process
    ap.add_argument("--json-out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.measure_one:
        Path(a.json_out).write_text(json.dumps(measure(Path(a.measure_one), a.presses, a.filters)))
        return
    if a.runs < 1 or a.presses < 1 or a.filters < 1:
        ap.error("--runs, --presses and --filters must be at least 1")
    from ddb_core.bench.docs import DOC

    res = run(a.project, a.scale, a.presses, a.filters, doc=None if a.no_docs else DOC,
              json_path=None if a.no_docs else Path("docs/bench/review-browser.json"), runs=a.runs)
    print(browser_markdown(res))


if __name__ == "__main__":
    main()
