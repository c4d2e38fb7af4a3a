"""The project store: one folder per project.

    <project>/project.db     SQLite (sqlite-utils, WAL mode, schema through ``Migrations``)
    <project>/models/        classifier checkpoints (state_dict files)
    <project>/runs/<id>/     per-run state (resume files, reports)
    <project>/dataset/       the demo benchmark, when the project was made from it

The schema and its steps are in ``migrations.py``. Tables: ``meta`` (project settings as JSON values), ``samples`` (one row per dataset image: path,
label, split, spurious attribute, ground-truth mask path, and the active ERM model's per-sample
loss and softmax once computed), ``models`` (checkpoints with architecture, hash and metrics),
``runs`` (every stage run with its full config, status and timings).

Every write that spans more than one statement, or reads before it writes, happens inside
``with project.write():`` — a transaction that takes SQLite's write lock at once (``BEGIN
IMMEDIATE``), so a connection that committed in between cannot make it fail, and the busy timeout
(30 s) applies when another process (the CLI beside the app) is writing. Connections are per
thread, so the app's worker threads and the UI thread can share one ``Project``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Optional

import sqlite_utils

from .errors import ProjectError
from .migrations import migrations

DB_NAME = "project.db"
SPLITS = ("train", "val", "test")

_HOST = socket.gethostname()


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a zombie counts as gone)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def connect(path: str | os.PathLike, read_only: bool = False) -> sqlite_utils.Database:
    """A sqlite-utils Database on ``path`` in WAL mode, with a generous busy timeout; ``read_only``: opened with
    SQLite's read-only mode (a project whose file or folder this user cannot write), where every write is refused
    by SQLite itself."""
    if read_only:
        from urllib.parse import quote

        uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        try:
            conn.execute("select count(*) from sqlite_master").fetchone()
        except sqlite3.OperationalError:  # a WAL file whose shared memory cannot be made here: read it as it lies
            conn.close()
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=30, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA query_only = ON")
        return db
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.enable_wal()
    db.execute("PRAGMA foreign_keys = ON")
    return db


def writable(root: Path) -> bool:
    """Whether this user can write the project's database and its folder (SQLite writes a journal beside it)."""
    db_file = Path(root) / DB_NAME
    return os.access(db_file, os.W_OK) and os.access(root, os.W_OK | os.X_OK)


class Project:
    """A project folder and its database. Use ``Project.create`` or ``Project.open``."""

    def __init__(self, root: str | os.PathLike, read_only: bool = False):
        self.root = Path(root).resolve()
        self._local = threading.local()
        self.read_only = read_only  # opened read-only: this user cannot write the project (every write is refused)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike, name: Optional[str] = None) -> "Project":
        root = Path(root)
        if (root / DB_NAME).exists():
            raise ProjectError(f"a project already exists at {root / DB_NAME}; open it instead, or choose another folder")
        root.mkdir(parents=True, exist_ok=True)
        project = cls(root)
        migrations.apply(project.db)
        project.set_meta("name", name or root.resolve().name)
        project.set_meta("created_at", now())
        return project

    @classmethod
    def open(cls, root: str | os.PathLike) -> "Project":
        """Open an existing project, migrating its schema to the current version."""
        root = Path(root)
        if not (root / DB_NAME).exists():
            raise ProjectError(f"no project at {root}: {root / DB_NAME} does not exist (create one with `ddb init`)")
        db_file = root / DB_NAME
        if db_file.is_dir() or db_file.stat().st_size == 0:
            raise ProjectError(f"{db_file} is {'a folder' if db_file.is_dir() else 'empty (0 bytes)'}, not a project "
                               f"database; restore it from a backup (nothing was written to it)")
        project = cls(root, read_only=not writable(root))
        try:
            tables = {r[0] for r in project.db.execute("select name from sqlite_master where type = 'table'")}
            if tables and "meta" not in tables:
                project.close()
                raise ProjectError(f"{db_file} is an SQLite database of another program (tables "
                                   f"{', '.join(sorted(tables)[:5])}), not a project database; its tables were left as they are")
            if "_sqlite_migrations" in tables:  # a project written by a newer release: refused, never written
                known = {m.name for m in migrations._migrations}
                newer = [r[0] for r in project.db.execute(
                    "select name from _sqlite_migrations where migration_set = ? order by id", [migrations.name])
                    if r[0] not in known]
                if newer:
                    project.close()
                    raise ProjectError(f"{db_file} was written by a newer DDB Studio (schema step {newer[-1]}, which this "
                                       f"release does not know); update DDB Studio to open it. Nothing was written")
            if project.read_only:
                if migrations.pending(project.db):
                    project.close()
                    raise ProjectError(f"{root} is read-only for this user and its database needs a schema update "
                                       "from this release; open it once where it can be written. Nothing was written")
            else:
                migrations.apply(project.db)
        except sqlite3.DatabaseError as e:
            raise ProjectError(f"{root / DB_NAME} is not a readable project database: {e}") from e
        return project

    def check_integrity(self) -> None:
        """SQLite's ``quick_check`` of the whole file: a damaged project is refused before anything writes to it
        (``ProjectError``, saying to restore it from a backup)."""
        try:
            problems = [r[0] for r in self.db.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as e:
            problems = [str(e)]
        if problems != ["ok"]:
            raise ProjectError(f"{self.root / DB_NAME} is damaged ({'; '.join(problems)[:300]}); restore it from a "
                               f"backup. Nothing was written")

    @classmethod
    def exists(cls, root: str | os.PathLike) -> bool:
        return (Path(root) / DB_NAME).exists()

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.root / DB_NAME, read_only=self.read_only)
        return db

    @contextlib.contextmanager
    def write(self):
        """A write transaction holding SQLite's write lock from its first statement (``BEGIN
        IMMEDIATE``): read-then-write code inside it never meets "database is locked" because another
        connection committed in between; waiting for another writer uses the busy timeout. Nested
        blocks become savepoints. Commits at the end, rolls back on any exception."""
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.rollback()
            raise
        else:
            db.conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self):
        """A read transaction: every query inside sees one snapshot of the database (WAL), whatever
        other connections commit meanwhile. Inside a transaction already, it is that one."""
        db = self.db
        if db.conn.in_transaction:
            yield db
            return
        db.conn.execute("BEGIN")
        try:
            yield db
        finally:
            if db.conn.in_transaction:
                db.conn.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- meta ------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self.db["meta"].upsert({"key": key, "value": json.dumps(value)}, pk="key")

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = list(self.db.query("select value from meta where key = ?", [key]))
        return json.loads(rows[0]["value"]) if rows else default

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.db.query("select key, value from meta")}

    @property
    def class_names(self) -> list[str]:
        names = self.get_meta("class_names")
        if not names:
            raise ProjectError(f"project {self.root} has no dataset yet (import one with `ddb init`)")
        return names

    @property
    def attr_names(self) -> list[str]:
        return self.get_meta("attr_names") or []

    # -- paths -----------------------------------------------------------------------------
    @property
    def dataset_root(self) -> Path:
        root = self.get_meta("dataset_root")
        if root is None:
            raise ProjectError(f"project {self.root} has no dataset yet (import one with `ddb init`)")
        p = Path(root)
        return p if p.is_absolute() else (self.root / p).resolve()

    def dataset_path(self, rel: str) -> Path:
        return self.dataset_root / rel

    def project_path(self, rel: str) -> Path:
        """A path inside the project folder; refuses anything that escapes it."""
        p = (self.root / rel).resolve()
        if not p.is_relative_to(self.root):
            raise ProjectError(f"path {rel!r} is outside the project folder {self.root}")
        return p

    # -- samples ---------------------------------------------------------------------------
    def sample_count(self, split: Optional[str] = None) -> int:
        if split is None:
            return self.db["samples"].count
        return self.db.execute("select count(*) from samples where split = ?", [split]).fetchone()[0]

    def samples(self, split: Optional[str] = None, columns: str = "*") -> list[dict]:
        if split is None:
            return list(self.db.query(f"select {columns} from samples order by id"))
        return list(self.db.query(f"select {columns} from samples where split = ? order by id", [split]))

    def group_counts(self, split: str) -> dict[tuple[int, int], int]:
        rows = self.db.query(
            "select label, attr, count(*) as n from samples where split = ? and attr is not null group by label, attr", [split]
        )
        return {(r["label"], r["attr"]): r["n"] for r in rows}

    def store_sample_scores(self, model_id: int, rows: Iterable[tuple[int, float, list[float], int]]) -> None:
        """(sample id, loss, softmax, prediction) of every sample, in one transaction."""
        with self.write():
            self.db.conn.executemany(
                "update samples set erm_model_id = ?, erm_loss = ?, erm_probs = ?, erm_pred = ? where id = ?",
                [(model_id, float(loss), json.dumps([round(float(p), 6) for p in probs]), int(pred), int(sid))
                 for sid, loss, probs, pred in rows],
            )

    # -- models ----------------------------------------------------------------------------
    def add_model(self, *, name: str, role: str, path: Path, arch: str, num_classes: int, image_size: int,
                  metrics: dict, config: dict, run_id: Optional[int]) -> int:
        rel = os.path.relpath(path, self.root)
        row = {
            "name": name, "role": role, "path": rel, "arch": arch, "num_classes": num_classes,
            "image_size": image_size, "sha256": file_sha256(path), "metrics": json.dumps(metrics),
            "config": json.dumps(config), "run_id": run_id, "created_at": now(),
        }
        return self.db["models"].insert(row).last_pk

    def model(self, model_id: int) -> dict:
        rows = list(self.db.query("select * from models where id = ?", [model_id]))
        if not rows:
            raise ProjectError(f"no model with id {model_id} in {self.root / DB_NAME}")
        return _decode_model(rows[0])

    def models(self, role: Optional[str] = None) -> list[dict]:
        q, args = ("select * from models where role = ? order by id", [role]) if role else ("select * from models order by id", [])
        return [_decode_model(r) for r in self.db.query(q, args)]

    def update_model_metrics(self, model_id: int, metrics: dict) -> None:
        self.db["models"].update(model_id, {"metrics": json.dumps(metrics)})

    @property
    def active_erm_id(self) -> Optional[int]:
        return self.get_meta("active_erm_model")

    def active_erm(self) -> dict:
        mid = self.active_erm_id
        if mid is None:
            raise ProjectError(f"project {self.root} has no ERM model yet (train one with `ddb erm train` or load one with `ddb erm load`)")
        return self.model(mid)

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, stage: str, config: dict) -> int:
        return self.db["runs"].insert({
            "stage": stage, "config": json.dumps(config, sort_keys=True, default=str), "config_hash": config_hash(config),
            "status": "running", "started_at": now(), "pid": os.getpid(), "host": _HOST,
        }).last_pk

    @contextlib.contextmanager
    def recorded_run(self, stage: str, config: dict):
        """A run row for the work inside the block: "running" with this process's id while it works (so a
        killed process shows as "interrupted"), then "done", "cancelled" or "failed" with the reason."""
        import time

        run_id, t0 = self.start_run(stage, config), time.monotonic()
        try:
            yield run_id
        except BaseException as e:
            self.end_run_with(run_id, e, time.monotonic() - t0)
            raise
        self.finish_run(run_id, "done", seconds=time.monotonic() - t0)

    def end_run_with(self, run_id: int, e: BaseException, seconds: float) -> None:
        """Mark a run ended by ``e``: "cancelled" (a cancel or Ctrl-C) or "failed", with the reason."""
        from .errors import Cancelled

        if isinstance(e, (Cancelled, KeyboardInterrupt)):
            self.finish_run(run_id, "cancelled", seconds=seconds, error=str(e) or "interrupted")
        else:
            self.finish_run(run_id, "failed", seconds=seconds, error=f"{type(e).__name__}: {e}")

    def claim_run(self, run_id: int) -> None:
        """This process takes over a run it resumes (its status back to running)."""
        self.db["runs"].update(run_id, {"status": "running", "error": None, "pid": os.getpid(), "host": _HOST})

    def mark_interrupted_runs(self) -> list[int]:
        """Runs still "running" whose process on this machine is gone (killed, crashed) become
        "interrupted" (the same command resumes them). Returns their ids."""
        dead = [r["id"] for r in self.db.query("select id, pid, host from runs where status = 'running'")
                if r["pid"] is not None and r["host"] == _HOST and not _alive(r["pid"])]
        if dead and not self.read_only:  # a read-only project shows them as it finds them
            with self.write():
                for rid in dead:
                    self.db["runs"].update(rid, {"status": "interrupted", "finished_at": now(),
                                                 "error": "the process running it stopped (killed or crashed); "
                                                          "the same command resumes it"})
        return dead

    def finish_run(self, run_id: int, status: str, *, seconds: float, error: Optional[str] = None,
                   result: Optional[dict] = None) -> None:
        self.db["runs"].update(run_id, {
            "status": status, "finished_at": now(), "seconds": round(seconds, 3), "error": error,
            "result": json.dumps(result) if result is not None else None,
        })

    def set_run_progress(self, run_id: int, done: int, total: int) -> None:
        self.db["runs"].update(run_id, {"progress_done": done, "progress_total": total})

    def runs(self, stage: Optional[str] = None) -> list[dict]:
        q, args = ("select * from runs where stage = ? order by id", [stage]) if stage else ("select * from runs order by id", [])
        return list(self.db.query(q, args))

    def resumable_run(self, stage: str, config: dict) -> Optional[dict]:
        """The latest unfinished run of ``stage`` with exactly this config, if any."""
        self.mark_interrupted_runs()
        rows = list(self.db.query(
            "select * from runs where stage = ? and config_hash = ? and status in "
            "('running', 'failed', 'cancelled', 'interrupted') order by id desc limit 1", [stage, config_hash(config)]))
        if not rows:
            return None
        r = rows[0]
        if r["status"] == "running" and r["pid"] not in (None, os.getpid()) and (r["host"] != _HOST or _alive(r["pid"])):
            raise ProjectError(f"run {r['id']} ({stage}) with this configuration is running in process {r['pid']} on "
                               f"{r['host']}; wait for it or stop it, then run the command again to resume it")
        return r

    def run_dir(self, run_id: int) -> Path:
        d = self.root / "runs" / str(run_id)
        d.mkdir(parents=True, exist_ok=True)
        return d


def _decode_model(row: dict) -> dict:
    row = dict(row)
    row["metrics"] = json.loads(row["metrics"]) if row.get("metrics") else {}
    row["config"] = json.loads(row["config"]) if row.get("config") else {}
    return row
