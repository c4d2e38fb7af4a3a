"""The app's state, shared by every screen: the open project, its review model, the one background
job at a time, the lock of the inpainting model, and the folders a browser may name.

Screen modules take an ``AppState`` explicitly in every handler; nothing here draws a component.
"""

from __future__ import annotations

import functools
import sqlite3
import os
import re
import threading
from pathlib import Path
from typing import Callable, Optional

import gradio as gr

from ddb_core import api
from ddb_core.project.errors import DDBError
from ddb_core.project.jobs import BackgroundJob
from ddb_core.project.store import DB_NAME, Project


# Every key press and click of a review action (a decision, an undo, a move, a saved threshold) is processed, in the
# order it was made: queued ("multiple"; Gradio's default "once" drops an event that arrives while one runs) and run
# one at a time in one group (the handlers read the shown candidate from the session's state as the previous left it).
ORDERED = {"trigger_mode": "multiple", "concurrency_id": "review-actions", "concurrency_limit": 1}
# The redraw after an action (plots, map, badges): one at a time, after the action it follows.
REDRAW = {"concurrency_id": "review-redraw", "concurrency_limit": 1}
# A step that follows an action (``.then``): asked for while the same step of an earlier action is still pending, it
# runs again once that one ends, from what the project holds then. Gradio's default for ``.then`` ("once") drops it:
# at a reviewer's pace the redraw after the last key's save was dropped while the previous key's was queued, and that
# one, read before the last save, left the plot one key behind the project.
AFTER = {**REDRAW, "trigger_mode": "always_last"}


def safe(fn: Callable) -> Callable:
    """``fn`` with core errors (``DDBError``) shown as plain messages in the page; the signature is
    kept, so Gradio passes what ``fn`` asks for."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DDBError as e:
            raise gr.Error(str(e)) from None
        except sqlite3.OperationalError as e:
            if "readonly" in str(e) or "read-only" in str(e):  # a project this user cannot write (opened read-only)
                raise gr.Error("This project is read-only for this user (its database or its folder cannot be "
                               "written): it can be looked at, not changed. Nothing was written.") from None
            raise
    return wrapped


def user_of(request=None) -> str:
    """Who acts, for the audit log: the signed-in user when the app runs with --auth, else "user"
    (the request of the event being handled, from Gradio's context, when none is given)."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    name = getattr(request, "username", None) if request is not None else None
    return str(name) if name else "user"


def session_of(request=None) -> str:
    """The browser session of the event being handled (one page load; each tab has its own)."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    return str(getattr(request, "session_hash", None) or "")


def reviewer(request=None) -> dict:
    """Whose actions `u` undoes: the signed-in user's (``{"who": name}``), or without sign-in this browser
    session's (``{"session": id}``) — never another reviewer's."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    name = getattr(request, "username", None) if request is not None else None
    return {"who": str(name)} if name else {"session": session_of(request)}


HUB_ID = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")  # org/name, or a name (sam_vit_b)


def check_path(value, roots: list[Path], what: str, hub: bool = False) -> str:
    """A path typed into the browser, resolved (``..`` and symbolic links followed), if it lies in one of
    ``roots`` (the folders the person who started the server allows); else a ``DDBError``.

    With ``hub`` (model fields), a hub id — ``org/name`` or a bare name in the hub's characters — that names no
    local file or folder passes as it is (loaders look for a local folder first, so one that exists is a
    path). Anything else is a path: a separator, a leading ``.`` or ``~``, a name that exists here. Returns the resolved path, or the hub id. Handlers check
    again when the work starts (``AppState.path``), so a folder made in between cannot walk round it."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DDBError(f"{what} must be a path or a hub id (text), got {type(value).__name__} {value!r}")
    text = value.strip()
    if not text:
        return text
    if any(ord(c) < 32 for c in text):
        raise DDBError(f"{what} {text[:80]!r} contains a control character (a NUL byte or a line break)")
    if len(text) > 1024 or any(len(part) > 255 for part in text.split("/")):
        raise DDBError(f"{what} {text[:80]!r}… is too long for a path (at most 1024 characters, 255 per name)")
    is_hub = hub and HUB_ID.fullmatch(text) is not None and ".." not in text.split("/")
    p = Path(text).expanduser()
    try:
        exists = os.path.lexists(p)
    except (OSError, ValueError) as e:
        raise DDBError(f"{what} {text[:80]!r} cannot be used as a path ({e})") from None
    if is_hub and not exists:
        return text  # a model id on the hub
    real = Path(os.path.realpath(p))
    if any(real == r or real.is_relative_to(r) for r in roots):
        return str(real)
    raise DDBError(f"{what} {text!r} is outside the folders this server may read ({', '.join(map(str, roots))}); "
                   f"start the app with --data-root FOLDER to allow another")


def load_image(path: Optional[str], shape: Optional[tuple[int, int]] = None, mask: bool = False):
    """An image at its own size, or a mask at ``shape`` (its image's height and width); None without a path."""
    from ddb_core.data.imaging import load_mask, load_rgb

    if not path:
        return None
    return load_mask(path, shape) if mask else load_rgb(path)


class AppState:
    """The open project, its review model, and the one background job at a time."""

    def __init__(self, project_dir: str, build_demo: bool, data_roots: Optional[list] = None):
        self.project_dir = Path(project_dir)
        # folders whose paths the browser may name (datasets, checkpoints, models); the project's always
        roots = [Path(r) for r in (data_roots or [Path.cwd()])] + [self.project_dir, Path(__file__).resolve().parents[1] / "data"]
        self.data_roots = list(dict.fromkeys(Path(os.path.realpath(r)) for r in roots))
        self.model_lock = threading.Lock()  # one user of the inpainting model at a time
        self.last_export: Optional[tuple[str, str]] = None  # (message, file) of the latest export job
        self.job: Optional[BackgroundJob] = None
        self.last_job: Optional[int] = None
        self._index = None
        self._index_candidates = ""
        # per browser session: the project version its review screen was last drawn from whole, and the thresholds
        # its sliders show (a threshold moved on a screen that shows others is refused: see ui/review.py)
        self.shown: dict[str, dict] = {}
        self._project = None  # (the database file's identity, the project opened on it)
        self._inpainter = self._inpainter_ref = None
        if Project.exists(self.project_dir):
            self.project().mark_interrupted_runs()  # runs of a process that was killed
        if build_demo and not self._ready():
            self.start("build the demo project", self._build_demo, uses_model=True)

    # -- project -----------------------------------------------------------------------------
    def exists(self) -> bool:
        return Project.exists(self.project_dir)

    def project(self) -> Project:
        """The open project, opened once (each opening was a new database connection and a schema check, several per
        key press) and again when its database file is another one (a rebuilt demo, a restored backup)."""
        try:
            st = (self.project_dir / DB_NAME).stat()
            key = (st.st_dev, st.st_ino)
        except OSError:
            key = None
        cached = self._project
        if key is None or cached is None or cached[0] != key:
            cached = self._project = (key, Project.open(self.project_dir))
        return cached[1]

    def class_names(self) -> list[str]:
        return self.project().class_names if self.exists() and self.project().get_meta("class_names") else []

    def _ready(self) -> bool:
        if not self.exists():
            return False
        p = self.project()
        return p.sample_count() > 0 and p.active_erm_id is not None and \
            p.db.execute("select count(*) from candidates where psi is not null").fetchone()[0] > 0

    def _build_demo(self, on_progress, cancel):
        project = api.build_demo_project(self.project_dir, on_progress=on_progress, cancel=cancel)
        return api.prepare_demo_candidates(project, quick=True, on_progress=on_progress, cancel=cancel)

    def index(self, reload: bool = False):
        """The review model; rebuilt when the number of candidates or of scores changed, and brought up to date
        with every decision and threshold stored since it last looked (another tab, user or ``ddb``)."""
        if not self.exists():
            return None
        p = self.project()
        n = self._candidates_version(p)
        if reload or self._index is None or self._index_candidates != n:
            self._index = api.review_index(p)
            self._index_candidates = n
        else:
            self._index.catch_up()
        return self._index

    @staticmethod
    def _candidates_version(p) -> int:
        """Advanced by every change to a candidate (a trigger of the store): one row to read, at any size."""
        return p.db.execute("select v from candidate_version").fetchone()[0]

    def version(self) -> tuple:
        """What the project holds, as (its candidates and scores, its latest action — each decision, undo and
        threshold change is one): every stored change alters it."""
        if not self.exists():
            return ("", 0)
        p = self.project()
        last = p.db.execute("select coalesce(max(id), 0) from actions").fetchone()[0]
        return (self._candidates_version(p), last)

    def changed_elsewhere(self, version: tuple) -> bool:
        """Whether the project at ``version`` differs from what this session's screen was drawn from by anything
        but this session's own actions (whose screen updates follow them)."""
        shown = self.shown.get(session_of(), {}).get("version")
        if shown is None or shown == version:  # None: the page's first drawing is still on its way
            return False
        if shown[0] != version[0]:
            return True
        return self.project().db.execute(
            "select count(*) from actions where id > ? and coalesce(json_extract(detail, '$.session'), '') != ?",
            [shown[1], session_of()]).fetchone()[0] > 0

    def mark_shown(self, index, sliders: bool, version: str) -> None:
        """This session's screen now shows ``index`` as the project held it at ``version`` (read before the index,
        so that a change made while drawing is drawn by the next poll); ``sliders``: its sliders too."""
        entry = self.shown.setdefault(session_of(), {})
        th = (dict(index.Psi), dict(index.P)) if index is not None else ({}, {})
        if sliders:
            entry["thresholds"] = th
        if entry.get("thresholds") == th:
            entry["version"] = version  # else the poll draws it whole, sliders included

    def inpainter(self):
        """The project's inpainting model, loaded once (tokens are loaded into it as needed)."""
        s = self.check_settings()
        ref = (s["inpaint_model"], s["device"], s["dtype"])  # another model or device: load it again
        if self._inpainter is None or self._inpainter_ref != ref:
            self._inpainter = None  # the old one's memory first
            self._inpainter = api.load_inpainter(self.project(), s["inpaint_model"])
            self._inpainter_ref = ref
        return self._inpainter

    def path(self, value: str, what: str, hub: bool = False) -> str:
        return check_path(value, self.data_roots, what, hub=hub)

    def check_settings(self) -> dict:
        """The project's pipeline settings, their model paths checked against the allowed folders now, as
        they are about to be used (a setting saved by the command line, or a folder made since, is caught)."""
        s = api.pipeline_settings(self.project())
        from ddb_core.method.inpainting import resolve_model_ref

        self.path(resolve_model_ref(s["inpaint_model"]), "inpainting model", hub=True)
        for key in ("dino", "sam"):
            if key in (s["masker_options"] or {}):
                self.path(s["masker_options"][key], f"masker option {key}", hub=True)
        return s

    # -- jobs ----------------------------------------------------------------------------------
    def start(self, name: str, fn: Callable, uses_model: bool = False) -> str:
        """Run ``fn`` as the one background job; ``uses_model`` jobs hold the inpainting model's lock."""
        if self.job is not None and self.job.running:
            return f"**{self.job.name}** is still running; cancel it or wait for it to finish."
        if uses_model:
            inner = fn

            def fn(on_progress, cancel):
                if not self.model_lock.acquire(timeout=1.0):
                    raise DDBError("the inpainting model is busy (a preview or a regeneration); try again in a moment")
                try:
                    return inner(on_progress=on_progress, cancel=cancel)
                finally:
                    self.model_lock.release()
        self.job = BackgroundJob(name, fn)
        return self.job_markdown()

    def with_model(self, what: str, fn: Callable):
        """Run ``fn`` now if no job is using the inpainting model, else say why not."""
        if not self.model_lock.acquire(blocking=False):
            raise DDBError(f"cannot {what} now: the inpainting model is in use by "
                           f"{self.job.name if self.job is not None and self.job.running else 'another request'}; "
                           f"wait for it to finish")
        try:
            return fn()
        finally:
            self.model_lock.release()

    def job_markdown(self) -> str:
        if self.job is None:
            return "No background work."
        s = self.job.snapshot()
        if s.state == "running":
            p = s.progress
            if p is None:
                return f"**{s.name}**: starting…"
            eta = f", about {p.eta_s:.0f}s left" if p.eta_s else ""
            rate = f", {p.rate:.2f}/s" if p.rate else ""
            return f"**{s.name}** — {p.stage}: {p.done}/{p.total}{rate}{eta} {p.message}"
        if s.state == "done":
            return f"**{s.name}**: done in {s.finished - s.started:.0f}s."
        return f"**{s.name}**: {s.state} — {s.error}"


def started(state: AppState, name: str, fn: Callable, uses_model: bool = False):
    """(job status, timer) after starting a background job: the timer polls until it is done."""
    return state.start(name, fn, uses_model=uses_model), gr.Timer(active=True)
