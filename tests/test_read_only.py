"""A project this user cannot write opens read-only: the reading commands work, the writing ones say so."""

import hashlib

from ddb_core.cli import main
from ddb_core.project.store import Project


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_read_only_project_reads_and_refuses_every_write_by_name(candidates_project, monkeypatch, capsys):
    import ddb_core.project.store as store

    root = candidates_project.root
    with candidates_project.write():  # the P defaults not stored yet: `queue` would store them on a writable project
        candidates_project.db.execute("delete from meta where key = 'thresholds'")
    candidates_project.db.execute("pragma wal_checkpoint(truncate)")
    candidates_project.close()
    before = _sha(root / "project.db")
    # the root user of this machine can write every file; the permission check is what a user without it meets
    monkeypatch.setattr(store, "writable", lambda r: False)
    assert Project.open(root).read_only
    p = ["-p", str(root)]
    for argv in (["status"], ["queue", "-n", "3"], ["audit", "--limit", "3"]):
        assert main([*argv, *p]) == 0, argv
    capsys.readouterr()
    cid = str(Project.open(root).db.execute("select min(id) from candidates").fetchone()[0])
    for argv, name in ((["decide", cid, "--accept"], "decide"), (["prune", "--Psi", "0=0.5"], "prune")):
        assert main([*argv, *p]) == 2
        err = capsys.readouterr().err
        assert f"is read-only for this user" in err and f"`ddb {name}` writes to it; nothing was written" in err
        assert "Traceback" not in err
    assert _sha(root / "project.db") == before
    monkeypatch.undo()
    opened = Project.open(root)
    assert not opened.read_only and opened.get_meta("thresholds") is None  # nothing was stored while read-only


def test_the_app_says_a_read_only_project_cannot_be_changed():
    import sqlite3

    import gradio as gr
    import pytest

    from ui.state import safe

    def write():
        raise sqlite3.OperationalError("attempt to write a readonly database")

    with pytest.raises(gr.Error, match="read-only for this user .*Nothing was written"):
        safe(write)()

    def other():
        raise sqlite3.OperationalError("no such table: x")

    with pytest.raises(sqlite3.OperationalError):  # anything else is not dressed up as read-only
        safe(other)()
