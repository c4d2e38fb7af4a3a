
import pytest

from ddb_core.project.errors import ProjectError
from ddb_core.project.store import Project, connect
from ddb_core.project.migrations import migrations


def test_old_schema_is_migrated_on_open_and_keeps_its_rows(tmp_path):
    db = connect(tmp_path / "project.db")
    migrations.apply(db, stop_before="m002_run_progress")  # a project written by schema version 1
    db["samples"].insert({"key": "a.png", "path": "a.png", "label": 1, "split": "train", "attr": 0})
    db["runs"].insert({"stage": "x", "status": "done"})
    assert "progress_done" not in db["runs"].columns_dict
    db.close()
    project = Project.open(tmp_path)
    assert "progress_done" in project.db["runs"].columns_dict
    assert [m.name for m in migrations.applied(project.db)] == [m.name for m in migrations._migrations]
    assert migrations.pending(project.db) == []
    assert project.samples()[0]["key"] == "a.png" and project.runs()[0]["stage"] == "x"


def test_wal_mode_and_meta_roundtrip(tmp_path):
    p = Project.create(tmp_path / "p", name="demo")
    assert p.db.journal_mode == "wal"
    p.set_meta("thresholds", {"P": [0.1, 0.2]})
    assert Project.open(tmp_path / "p").get_meta("thresholds") == {"P": [0.1, 0.2]}
    assert p.get_meta("name") == "demo"


def test_failed_multi_row_write_leaves_nothing(tiny_project):
    ids = [r["id"] for r in tiny_project.samples()]
    bad_rows = [(ids[0], 0.1, [0.5, 0.5], 0), (ids[1], "not-a-number", [0.5, 0.5], 0)]
    with pytest.raises(ValueError):
        tiny_project.store_sample_scores(1, bad_rows)
    assert all(r["erm_loss"] is None for r in tiny_project.samples())


def test_paths_outside_the_project_are_refused(tmp_path):
    p = Project.create(tmp_path / "p")
    assert p.project_path("models/x.pt") == (tmp_path / "p" / "models" / "x.pt").resolve()
    with pytest.raises(ProjectError, match="outside the project"):
        p.project_path("../../etc/passwd")


def test_open_missing_or_corrupt_project(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        Project.open(tmp_path / "none")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "project.db").write_bytes(b"garbage" * 100)
    with pytest.raises(ProjectError, match="not a readable project database"):
        Project.open(tmp_path / "bad")
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(tmp_path / "bad")


def test_a_project_of_a_newer_schema_is_refused_and_not_written(tmp_path):
    import hashlib

    import pytest

    from ddb_core.project.errors import ProjectError
    from ddb_core.project.store import Project

    p = Project.create(tmp_path / "p")
    p.db.execute("insert into _sqlite_migrations (migration_set, name, applied_at) values ('ddb_core', 'm999_future', 'x')")
    p.db.conn.commit()
    p.close()
    before = hashlib.sha256((tmp_path / "p" / "project.db").read_bytes()).hexdigest()
    with pytest.raises(ProjectError, match="written by a newer DDB Studio.*m999_future"):
        Project.open(tmp_path / "p")
    assert hashlib.sha256((tmp_path / "p" / "project.db").read_bytes()).hexdigest() == before
