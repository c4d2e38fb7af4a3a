"""kill -9 of the app process in the middle of a retraining and of a batch decision: after a restart
the project is consistent — no half-applied batch, the run marked interrupted and resumed by the
same action."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_app(project: Path):
    from gradio_client import Client

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--project", str(project), "--port", str(port), "--no-build"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while True:
        try:
            return proc, Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None:
                raise AssertionError(f"the app exited: {proc.stderr.read()}")
            if time.time() - t0 > 120:
                proc.kill()
                raise
            time.sleep(0.5)


def _kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _q(db: Path, sql: str, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def _wait(pred, timeout: float, what: str) -> None:
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_kill_during_retraining_then_resume(candidates_project):
    from ddb_core.curation.decisions import set_thresholds

    p = candidates_project
    set_thresholds(p, Psi={0: 1.0, 1: 1.0}, P={0: -1e9, 1: -1e9})  # every candidate goes in
    db = p.root / "project.db"
    args = ("1.0", "", 2e-4, 30, 1, 16, "0", 0.0, False)  # γ, γ grid, lr, epochs, val checks, batch, seeds, generated share, per class
    proc, client = _start_app(p.root)
    try:
        client.predict(*args, api_name="/retrain")
        _wait(lambda: any((r[0] or 0) >= 2 for r in _q(db, "select progress_done from runs where stage = 'train-ddb'")),
              240, "two finished epochs")
    finally:
        _kill(proc)
    (run_id, status, done), = _q(db, "select id, status, progress_done from runs where stage = 'train-ddb'")
    assert status == "running" and 2 <= done < 30  # killed: nobody could mark it
    proc, client = _start_app(p.root)  # the app finds the dead run
    try:
        assert _q(db, "select status from runs where id = ?", run_id) == [("interrupted",)]
        assert "the same command resumes it" in _q(db, "select error from runs where id = ?", run_id)[0][0]
        client.predict(*args, api_name="/retrain")  # the same action resumes it
        _wait(lambda: _q(db, "select status from runs where id = ?", run_id)[0][0] == "done", 600, "the resumed run")
    finally:
        _kill(proc)
    assert [r[0] for r in _q(db, "select id from runs where stage = 'train-ddb'")] == [run_id]  # resumed, not restarted
    assert _q(db, "select count(*) from models where role = 'ddb'") == [(1,)]


def test_kill_during_a_batch_decision_leaves_all_or_nothing(candidates_project):
    p = candidates_project
    db = p.root / "project.db"
    row = p.db.execute("select * from candidates order by id limit 1").fetchone()
    cols = [d[0] for d in p.db.execute("select * from candidates limit 0").description]
    base = {k: v for k, v in zip(cols, row) if k != "id"}
    names = list(base)
    with p.write():  # many candidates, so that a batch over all of them takes a while
        p.db.conn.executemany(f"insert into candidates ({', '.join(names)}) values ({', '.join('?' * len(names))})",
                              [tuple(f"bulk-{k}" if c == "key" else base[c] for c in names) for k in range(150_000)])
    n = p.db.execute("select count(*) from candidates").fetchone()[0]
    p.close()
    proc, client = _start_app(p.root)
    try:
        client.predict(api_name="/load")
        out = client.predict("reject", "", "all", "id", "", "", "", api_name="/batch_ask")
        msg = out if isinstance(out, str) else out[0]
        assert f"reject {n} candidates" in msg
        job = client.submit(api_name="/batch_confirm")
        time.sleep(0.8)
        finished_before_kill = job.done()
    finally:
        _kill(proc)
    decided = _q(db, "select count(*) from decisions")[0][0]
    audit = _q(db, "select count(*) from audit")[0][0]
    actions = _q(db, "select count(*), coalesce(sum(n), 0) from actions")[0]
    assert decided in (0, n), decided  # no half-applied batch
    assert audit == decided and actions == ((1, n) if decided else (0, 0))
    assert _q(db, "pragma integrity_check") == [("ok",)]
    if not finished_before_kill:
        print(f"killed mid-batch: {decided} of {n} applied")
