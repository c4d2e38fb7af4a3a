"""A generation job killed with SIGKILL mid-run, then resumed, gives the rows and pixels of an uninterrupted run."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _ddb(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "ddb_core", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def _rows(db: Path):
    with sqlite3.connect(db) as c:
        return c.execute("select key, source_id, seed, prompt, path from candidates order by key").fetchall()


def test_sigkill_mid_generation_then_resume(scored_project_template, tmp_path):
    from ddb_core.demo.micro_sd import MicroSDConfig, build_pipeline

    model = tmp_path / "tiny-model"
    build_pipeline(MicroSDConfig()).save_pretrained(model)
    base = tmp_path / "base"
    shutil.copytree(scored_project_template, base)
    p = _ddb("invert", "-p", str(base), "--model", str(model), "--steps", "2", "--batch-size", "2")
    assert p.wait(300) == 0, p.stderr.read()
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    shutil.copytree(base, killed)
    shutil.copytree(base, straight)
    gen = ["generate", "--model", str(model), "--steps", "3", "--guidance", "2", "--batch-size", "1"]
    p = _ddb(*gen, "-p", str(straight))
    assert p.wait(300) == 0, p.stderr.read()
    expected = _rows(straight / "project.db")
    assert len(expected) == 8
    # Kill -9 as soon as some (not all) candidates are stored.
    p = _ddb(*gen, "-p", str(killed))
    t0 = time.time()
    while time.time() - t0 < 300:
        n = len(_rows(killed / "project.db")) if (killed / "project.db").exists() else 0
        if n >= 2:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    partial = _rows(killed / "project.db")
    assert 2 <= len(partial) < 8
    for key, *_rest, path in partial:  # every stored row has its complete image
        assert np.asarray(Image.open(killed / path)).shape == (32, 32, 3)
    p = _ddb(*gen, "-p", str(killed))
    assert p.wait(300) == 0, p.stderr.read()
    assert _rows(killed / "project.db") == expected
    for key, *_rest, path in expected:
        assert np.array_equal(np.asarray(Image.open(killed / path)), np.asarray(Image.open(straight / path)))
    # `ddb score` killed while it works: its run is on record, and `ddb status` shows it as interrupted.
    p = _ddb("score", "-p", str(killed), "--n-steps", "400")
    t0 = time.time()
    while time.time() - t0 < 120:
        with sqlite3.connect(killed / "project.db") as c:
            if c.execute("select count(*) from runs where stage = 'score' and status = 'running'").fetchone()[0]:
                break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    out = subprocess.run([sys.executable, "-m", "ddb_core", "status", "-p", str(killed)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert any("score" in line and "interrupted" in line for line in out.stdout.splitlines()), out.stdout
