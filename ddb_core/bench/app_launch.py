"""First-launch benchmark: `python app.py` on a fresh demo project folder.

    python -m ddb_core.bench.app_launch [--runs 1] [--port 7871]

Starts the app as a separate process (as a user would), measures the time until the page
answers, then until the background build has stored scored candidates (reviewable), and the time
to open the then-existing project on a second launch. Writes docs/benchmarks.md ("launch").
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: ddb_core/bench/app_launch.py → ../../


def _wait_http(url: str, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return time.monotonic() - t0
        except Exception:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def _scored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as c:
            return c.execute("select count(*) from candidates where psi is not null").fetchone()[0]
    except sqlite3.Error:
        return 0


def one_run(port: int, timeout: float = 900) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ddb-launch-"))
    project = work / "demo"
    env_cmd = [sys.executable, "app.py", "--project", str(project), "--port", str(port), "--build-demo"]
    t0 = time.monotonic()
    proc = subprocess.Popen(env_cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = _wait_http(f"http://127.0.0.1:{port}/", 120)
        while _scored(project / "project.db") == 0:
            if proc.poll() is not None:
                raise RuntimeError("the app exited during the demo build")
            if time.monotonic() - t0 > timeout:
                raise TimeoutError("no scored candidate within the timeout")
            time.sleep(1.0)
        reviewable = time.monotonic() - t0
        time.sleep(3)  # let the build finish its last batch
    finally:
        proc.terminate()
        proc.wait(30)
    t1 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "app.py", "--project", str(project), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        second = _wait_http(f"http://127.0.0.1:{port}/", 120)
    finally:
        proc.terminate()
        proc.wait(30)
    n = _scored(project / "project.db")
    shutil.rmtree(work, ignore_errors=True)
    return {"page_up_s": round(page, 1), "reviewable_s": round(reviewable, 1), "second_launch_page_up_s": round(second, 1),
            "scored_candidates": n}


def main() -> None:
    ap = argparse.ArgumentParser(description="first-launch benchmark of the app")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--port", type=int, default=7871)
    ap.add_argument("--no-docs", action="store_true")
    a = ap.parse_args()
    runs = [one_run(a.port) for _ in range(a.runs)]
    med = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in ("page_up_s", "reviewable_s", "second_launch_page_up_s")}
    res = {"runs": runs, "median": med, "command": f"python -m ddb_core.bench.app_launch --runs {a.runs}"}
    md = "\n".join([
        "## First launch of the app", "",
        f"Command: `{res['command']}` — `python app.py` on a fresh project folder, as a separate process, on this "
        f"2-core CPU machine (medians over {len(runs)} run(s)).", "",
        f"- page answers after **{med['page_up_s']} s** (target ≤ 15 s)",
        f"- the background demo build (data, ERM, textual inversion, masks, generation, scoring) has reviewable, "
        f"scored candidates after **{med['reviewable_s'] / 60:.1f} min** (target ≤ 5 min)",
        f"- a later launch on the existing project answers after **{med['second_launch_page_up_s']} s**", ""]) + "\n"
    print(md)
    if not a.no_docs:
        sys.path.insert(0, str(ROOT))
        from ddb_core.bench.docs import write_result

        write_result(res, ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "bench" / "launch.json", "launch", md)


if __name__ == "__main__":
    main()
