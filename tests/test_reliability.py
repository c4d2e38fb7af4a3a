"""Decisions that cannot be lost: an append-only audit log whose undo reverts whole actions,
concurrent writers (app and command line) on one project, a server that cannot be misused, and
destructive actions that ask first."""

from __future__ import annotations

import http.cookiejar
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from ddb_core import api
from ddb_core.cli import main
from ddb_core.project.errors import DDBError, ProjectError
from ddb_core.curation.decisions import audit_log, set_decision, set_thresholds, thresholds, undo, undo_thresholds

ROOT = Path(__file__).resolve().parents[1]


def _decisions(p) -> dict:
    return dict(p.db.execute("select candidate_id, decision from decisions").fetchall())


def _audit(p) -> list:
    return p.db.execute("select id, candidate_id, old, new, action_id, source from audit order by id").fetchall()


# -- the audit log -------------------------------------------------------------------------------

def test_undo_appends_to_the_log_and_reverts_a_whole_batch(candidates_project):
    p = candidates_project
    ids = [r[0] for r in p.db.execute("select id from candidates order by id")]
    assert set_decision(p, ids[:1], "accept", source="app") == 1
    assert set_decision(p, ids, "reject", source="app", detail={"filter": {"direction": "all"}}) == len(ids)
    before = _audit(p)
    assert len(before) == 1 + len(ids)
    res = undo(p, source="app")  # the batch, all of it
    assert sorted(res.candidate_ids) == sorted(ids)
    assert _decisions(p) == {ids[0]: "accept"}
    after = _audit(p)
    assert after[:len(before)] == before and len(after) == len(before) + len(ids)  # appended, nothing deleted
    assert undo(p, source="cli").candidate_ids == [ids[0]]  # then the single decision
    assert _decisions(p) == {}
    assert undo(p) is None  # nothing left: undo actions are not undone by undo
    log = audit_log(p)
    assert [a["kind"] for a in log] == ["undo", "undo", "decision", "decision"]
    assert [a["undone"] for a in log] == [False, False, True, True]
    assert log[2]["detail"]["filter"] == {"direction": "all"} and log[2]["n"] == len(ids)
    assert {a["source"] for a in log} == {"app", "cli"}
    with pytest.raises(ProjectError, match="no candidate with id 999999; nothing was changed"):
        set_decision(p, [ids[0], 999999], "accept")
    assert _decisions(p) == {}


def test_threshold_changes_are_undoable_actions(candidates_project):
    p = candidates_project
    first = thresholds(p)
    set_thresholds(p, Psi={0: 0.25}, source="app")
    set_thresholds(p, P={1: 0.5}, source="cli")
    assert thresholds(p)["Psi"][0] == 0.25 and thresholds(p)["P"][1] == 0.5
    assert undo_thresholds(p)["P"][1] == first["P"][1]  # the latest change first
    assert thresholds(p)["Psi"][0] == 0.25
    api.prune(p, reset=True, source="app")
    assert thresholds(p)["Psi"][0] == first["Psi"][0]
    assert undo_thresholds(p)["Psi"][0] == 0.25  # the reset is undone too
    kinds = [a["kind"] for a in audit_log(p)]
    assert kinds.count("thresholds") == 3 and kinds.count("thresholds-undo") == 2


def test_cli_decide_undo_and_audit(candidates_project, capsys):
    p = candidates_project
    ids = [r[0] for r in p.db.execute("select id from candidates order by id")][:3]
    root = str(p.root)
    assert main(["decide", "-p", root, *map(str, ids), "--reject", "--who", "ann"]) == 0
    assert "3 of 3 candidates changed" in capsys.readouterr().out
    assert main(["audit", "-p", root]) == 0
    assert "cli  ann: reject on 3 candidate(s)" in capsys.readouterr().out
    assert main(["undo", "-p", root]) == 0 and _decisions(p) == {}
    assert main(["decide", "-p", root, "424242", "--accept"]) == 2
    assert "no candidate with id 424242" in capsys.readouterr().err


# -- concurrent writers ----------------------------------------------------------------------------

WRITER = """
import sys
from ddb_core.project.store import Project
from ddb_core.curation.decisions import set_decision, set_thresholds
p = Project.open(sys.argv[1])
ids = [int(x) for x in sys.argv[2].split(",")]
for k, cid in enumerate(ids):
    set_decision(p, [cid], "accept" if k % 2 else "reject", who="writer", source="cli")
    set_thresholds(p, P={1: k / 1000}, source="cli")
print("ok")
"""


def test_app_and_command_line_write_one_project_at_once(candidates_project):
    """Hundreds of decisions and threshold saves from app threads, a writer process and `ddb` commands,
    all at once: no error, and every write is there at the end."""
    p = candidates_project
    row = p.db.execute("select * from candidates order by id limit 1").fetchone()
    cols = [d[0] for d in p.db.execute("select * from candidates limit 0").description]
    base = dict(zip(cols, row))
    with p.write():
        for k in range(400):
            p.db["candidates"].insert({**base, "id": None, "key": f"copy-{k}"})
    ids = [r[0] for r in p.db.execute("select id from candidates order by id")]
    app_ids, proc_ids, cli_ids = ids[:150], ids[150:300], ids[300:330]
    index = api.review_index(p)
    errors = []

    def app_decisions():
        try:
            for cid in app_ids:
                index.decide([cid], "accept", source="app")
        except Exception as e:  # noqa: BLE001 - any failure is the test's failure
            errors.append(e)

    def app_thresholds():
        try:
            for k in range(120):
                index.save_thresholds(Psi={0: k / 1000})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(p.root), ",".join(map(str, proc_ids))], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=app_decisions), threading.Thread(target=app_thresholds)]
    for t in threads:
        t.start()
    cli = []
    for k in range(0, len(cli_ids), 10):
        cli.append(subprocess.run([sys.executable, "-m", "ddb_core", "decide", "-p", str(p.root),
                                   *map(str, cli_ids[k:k + 10]), "--reject"], cwd=ROOT, env=env, capture_output=True, text=True))
    cli.append(subprocess.run([sys.executable, "-m", "ddb_core", "prune", "-p", str(p.root), "--P", "0=0.123"],
                              cwd=ROOT, env=env, capture_output=True, text=True))
    for t in threads:
        t.join(300)
    out, err = writer.communicate(timeout=300)
    assert not errors, errors
    assert writer.returncode == 0 and out.strip() == "ok", err
    for c in cli:
        assert c.returncode == 0, c.stderr
    final = _decisions(p)
    assert all(final[c] == "accept" for c in app_ids)
    assert all(final[c] == ("accept" if k % 2 else "reject") for k, c in enumerate(proc_ids))
    assert all(final[c] == "reject" for c in cli_ids)
    assert len(_audit(p)) == len(app_ids) + len(proc_ids) + len(cli_ids)  # one row per change, none lost
    th = thresholds(p)
    assert th["Psi"][0] == 0.119 and th["P"][1] == (len(proc_ids) - 1) / 1000 and th["P"][0] == 0.123  # no lost save


# -- the server ----------------------------------------------------------------------------------

def test_a_public_address_needs_auth_or_an_explicit_insecure(tmp_path):
    out = subprocess.run([sys.executable, "app.py", "--project", str(tmp_path / "p"), "--host", "0.0.0.0", "--no-build"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--auth" in out.stderr and "--insecure" in out.stderr
    bad = subprocess.run([sys.executable, "app.py", "--auth", "nopassword"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "USER:PASS" in bad.stderr


def test_sign_in_and_only_pages_files_are_served(candidates_project):
    from ui.app import build_app, launch_kwargs

    p = candidates_project
    (p.root / "reports" / "7").mkdir(parents=True)
    (p.root / "reports" / "7" / "groups.png").write_bytes((ROOT / "docs" / "images" / "review.png").read_bytes())
    app = build_app(str(p.root), build_demo=False)
    try:
        app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                   auth=[("ann", "s3cret")], **launch_kwargs(str(p.root)))
        url = app.local_url
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + "config", timeout=30)
        assert err.value.code == 401
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with pytest.raises(urllib.error.HTTPError):
            opener.open(url + "login", data=urllib.parse.urlencode({"username": "ann", "password": "wrong"}).encode(), timeout=30)
        opener.open(url + "login", data=urllib.parse.urlencode({"username": "ann", "password": "s3cret"}).encode(), timeout=30)
        assert "DDB Studio" in opener.open(url + "config", timeout=30).read().decode()
        served = opener.open(url + f"gradio_api/file={p.root}/reports/7/groups.png", timeout=30)
        assert served.status == 200 and served.read()[:4] == b"\x89PNG"
        model = p.active_erm()["path"]
        for rel in ("project.db", model, f"tokens/{next((p.root / 'tokens').iterdir()).name}", "candidates"):
            with pytest.raises(urllib.error.HTTPError) as err:
                opener.open(url + f"gradio_api/file={p.root}/{rel}", timeout=30)
            assert err.value.code in (403, 404), rel
    finally:
        app.close()


def test_paths_from_the_browser_stay_in_the_allowed_folders(tmp_path):
    from ui.app import check_path

    allowed = tmp_path / "data"
    (allowed / "ds").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    roots = [allowed.resolve()]
    assert check_path(str(allowed / "ds"), roots, "dataset folder") == str(allowed / "ds")
    assert check_path("stabilityai/stable-diffusion-2-inpainting", roots, "model", hub=True) == "stabilityai/stable-diffusion-2-inpainting"
    for bad in (str(tmp_path / "secret"), str(allowed / ".." / "secret"), "/etc/passwd", "~/.ssh"):
        with pytest.raises(DDBError, match="outside the folders this server may read.*--data-root"):
            check_path(bad, roots, "dataset folder")
    (allowed / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(DDBError, match="outside"):
        check_path(str(allowed / "link"), roots, "checkpoint")


# -- destructive actions ---------------------------------------------------------------------------

def test_reimport_over_candidates_says_what_exists_and_waits_for_consent(candidates_project, tiny_dataset, capsys):
    from conftest import db_dump

    p = candidates_project
    set_decision(p, [p.db.execute("select min(id) from candidates").fetchone()[0]], "accept")
    before = db_dump(p)
    with pytest.raises(ProjectError) as err:
        api.create_project(p.root, "waterbirds", tiny_dataset, replace=True)
    msg = str(err.value)
    assert "8 candidates" in msg and "1 manual decisions" in msg and "--delete-derived" in msg and "Nothing was changed" in msg
    assert db_dump(p) == before
    assert main(["init", "-p", str(p.root), "--format", "waterbirds", "--source", str(tiny_dataset), "--replace",
                 "--delete-derived"]) == 0
    assert p.db.execute("select count(*) from candidates").fetchone()[0] == 0 and p.active_erm_id is None
    assert p.db.execute("select count(*) from audit").fetchone()[0] == 1  # the log is kept
