"""The review model behind the curation app: every candidate's scores in memory, re-filtered by
thresholds in milliseconds, with gallery queries, details and batch decisions.

Consumes a project's ``candidates`` / ``decisions`` tables (read once, then kept in numpy arrays
and updated in place when a decision changes) and produces plain values: per-direction counts at
any thresholds, filtered and sorted id lists, one candidate's detail record. Decisions and
thresholds are written through ``pruning`` (so every change is audited and saved at once).
"""

from __future__ import annotations

import gc
import itertools
import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..project.errors import ConfigError, DDBError, ProjectError
from ..method.pruning import auto_keep
from .decisions import reset_thresholds, set_decision, set_thresholds, thresholds, undo, undo_thresholds
from ..project.store import Project

STATUSES = ("all", "auto-kept", "auto-pruned", "accepted", "rejected", "unscored", "stale")
SORTS = ("id", "queue", "rho", "-rho", "psi", "-psi", "detection", "-detection")  # queue: review first (ddb_core.curation.queue)
MANUAL_CODE = {None: 0, "accept": 1, "reject": 2}
HIST_BINS = 40  # bars of the ψ and ρ histograms


@dataclass
class Filter:
    direction: Optional[str] = None  # "i->j" or None for all
    status: str = "all"
    psi_range: tuple[float, float] = (-np.inf, np.inf)
    rho_range: tuple[float, float] = (-np.inf, np.inf)
    method: Optional[str] = None  # ddb / scgs / None
    sort: str = "id"
    ids: Optional[np.ndarray] = None  # only these candidates (a selection drawn on a plot); None = all

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"status filter must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.sort not in SORTS:
            raise ConfigError(f"sort must be one of {', '.join(SORTS)}, got {self.sort!r}")


_NULL = -1.7976931348623157e308  # stands for SQL NULL in the numeric arrays (then NaN)


class Positions:
    """Candidate id → position in the index's arrays (ids are sorted ascending), like a dict without
    a million Python entries."""

    def __init__(self, ids: np.ndarray):
        self.ids = ids

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, found) of an array of ids."""
        if not len(self.ids):
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        at = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        return at, self.ids[at] == ids

    def __getitem__(self, cid) -> int:
        k = int(np.searchsorted(self.ids, int(cid)))
        if k >= len(self.ids) or self.ids[k] != int(cid):
            raise KeyError(cid)
        return k

    def __contains__(self, cid) -> bool:
        try:
            self[cid]
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def get(self, cid, default=None):
        return self[cid] if cid in self else default

    def __len__(self) -> int:
        return len(self.ids)


COLUMNS = 6  # of the kept arrays: id, source + (target << 16), ψ, ρ, change inside the mask, mask id
SCORE_SORTS = ("psi", "-psi", "rho", "-rho")  # the gallery's sorts whose orders are kept with the arrays


def _score_order(vals: np.ndarray, sort: str) -> np.ndarray:
    """Positions in ``sort`` order of ``vals`` (NaN: unscored, last; ties by position, i.e. by id)."""
    vals = -vals if sort.startswith("-") else vals
    return np.argsort(np.where(np.isnan(vals), np.inf, vals), kind="stable")


def candidate_arrays(project: Project, orders: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(N x 6: id, source + (target << 16), ψ, ρ, the change inside the mask (``_NULL`` for SQL NULL), the mask's
    id (-1 for none), in id order; the positions in each
    ``SCORE_SORTS`` order when kept), read in the caller's transaction: from the copy kept in
    ``cache/review-arrays.npz`` when its stamp (the ``candidate_version`` that every change to a candidate
    advances, the count, the largest id) is the database's, else from the database, and then kept.
    ``orders``: compute and keep the sort orders too. Jobs that change candidates call this when they
    finish (``keep_arrays``), so that the review screen's next opening finds everything ready."""
    db = project.db
    version = db.execute("select v from candidate_version").fetchone()[0]
    n, top = db.execute("select count(*), coalesce(max(id), 0) from candidates").fetchone()
    stamp = np.array([version, n, top], np.int64)
    cache = project.root / "cache" / "review-arrays.npz"
    a = None
    try:
        with np.load(cache) as z:
            if np.array_equal(z["stamp"], stamp) and z["a"].shape[1:] == (COLUMNS,):
                a = z["a"]
                kept = {s: z[f"order{s}"] for s in SCORE_SORTS if f"order{s}" in z}
                if len(kept) == len(SCORE_SORTS) or not orders:
                    return a, kept
    except (OSError, KeyError, ValueError):
        pass  # missing, unreadable or of another shape: read the database
    if a is None:
        a = _read_candidate_rows(db)
    kept = {s: _score_order(np.where(a[:, 2 if "psi" in s else 3] == _NULL, np.nan, a[:, 2 if "psi" in s else 3]),
                            s).astype(np.int32) for s in SCORE_SORTS} if orders else {}
    try:  # kept for the next opening (a failure to write it only costs that opening the read)
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_name(f"review-arrays.{os.getpid()}.tmp.npz")
        np.savez(tmp, a=a, stamp=stamp, **{f"order{s}": o for s, o in kept.items()})
        os.replace(tmp, cache)
    except OSError:
        pass
    return a, kept


def _read_candidate_rows(db) -> np.ndarray:
    # one pass, six numbers a row (the cost of reading a million rows grows with their columns): id, source
    # and target packed into one integer, ψ, ρ, the change inside the mask and the mask's id; the rare rows of another method than DDB's and the scores
    # of another model than the active one (stale) come from two small queries after it
    cursor = db.execute("select id, source_label + (target_label << 16), coalesce(psi, ?), coalesce(rho, ?), "
                        "coalesce(mask_change, ?), coalesce(mask_id, -1) from candidates order by id", [_NULL, _NULL, _NULL])
    chunks = []
    gc_was_on = gc.isenabled()
    gc.disable()  # a million row tuples would trigger many needless collections
    try:
        while True:
            rows = cursor.fetchmany(100_000)
            if not rows:
                break
            chunks.append(np.fromiter(itertools.chain.from_iterable(rows), np.float64, count=COLUMNS * len(rows)))
    finally:
        if gc_was_on:
            gc.enable()
    return np.concatenate(chunks).reshape(-1, COLUMNS) if chunks else np.zeros((0, COLUMNS))


def keep_arrays(project: Project) -> None:
    """Bring the kept arrays and sort orders up to date (a job that changed candidates calls this as it ends)."""
    with project.read():
        candidate_arrays(project, orders=True)


class ReviewIndex:
    """All candidates of a project as arrays (ids, labels, ψ, ρ, detection score, manual decision)."""

    def __init__(self, project: Project):
        self.project = project
        self.reload()

    def reload(self) -> None:
        """Read every candidate into arrays, in one snapshot of the database: the four numbers per row that
        the screen needs from the arrays kept on disk when no candidate changed since they were written
        (``candidate_version``, which every change advances), else one pass over ``candidates`` in id
        order (no join: the masks' detection scores and the manual decisions are small tables looked up
        by position), then kept for the next opening. A million candidates open in about a second."""
        with self.project.read():  # the arrays, the other methods, the stale scores and the decisions: one snapshot
            self._read_candidates()
        self._derive()

    def _read_candidates(self) -> None:
        db = self.project.db
        self.synced_action = db.execute("select coalesce(max(id), 0) from actions").fetchone()[0]  # see catch_up
        mid = self.project.active_erm_id
        methods = sorted({r[0] for r in db.execute("select distinct method from candidates")} | {"ddb"})
        a, orders = candidate_arrays(self.project)
        n = len(a)
        self.ids = a[:, 0].astype(np.int64)
        self.pos = Positions(self.ids)
        pair = a[:, 1].astype(np.int64)
        self.src, self.tgt = pair & 0xFFFF, pair >> 16
        self.psi = np.where(a[:, 2] == _NULL, np.nan, a[:, 2])
        self.rho = np.where(a[:, 3] == _NULL, np.nan, a[:, 3])
        self.change = np.where(a[:, 4] == _NULL, np.nan, a[:, 4]).astype(np.float32)
        self._mask_ids = a[:, 5].astype(np.int64)
        del a
        self._det = None  # detection scores: read when first sorted or coloured by
        self._refound = None  # the object found again in the result (langsam projects): read when first needed
        self._kept_orders = orders
        self.method_names = methods
        self.method = np.full(n, methods.index("ddb"), np.int8)
        other = db.execute("select id, method from candidates where method != 'ddb'").fetchall()
        if other:
            at, found = self.pos.lookup(np.array([r[0] for r in other], np.int64))
            self.method[at[found]] = np.array([methods.index(r[1]) for r in other], np.int8)[found]
        # scores of another model than the active one are stale: kept aside, the candidate counts as not scored
        self.stale = np.zeros(n, bool)
        stale = db.execute("select id from candidates where psi is not null and (score_model_id is null or "
                           "score_model_id != ?)", [mid if mid is not None else -2]).fetchall()
        if stale:
            at, found = self.pos.lookup(np.array([r[0] for r in stale], np.int64))
            self.stale[at[found]] = True
            self.psi[self.stale] = np.nan
            self.rho[self.stale] = np.nan
            self._kept_orders = {}  # kept orders place stale scores by their values: sorted again when asked
        self.manual = np.zeros(n, np.int8)
        manual = db.execute("select candidate_id, decision from decisions").fetchall()
        if manual:
            ids = np.array([r[0] for r in manual], np.int64)
            codes = np.array([MANUAL_CODE[r[1]] for r in manual], np.int8)
            at, found = self.pos.lookup(ids)
            self.manual[at[found]] = codes[found]

    def _derive(self) -> None:
        n, methods = len(self.ids), self.method_names
        self.n_classes = len(self.project.class_names)
        pairs = np.unique(self.src * 1_000_003 + self.tgt) if n else np.zeros(0, np.int64)
        self.directions = [(int(v // 1_000_003), int(v % 1_000_003)) for v in pairs]
        self.scored = ~(np.isnan(self.psi) | np.isnan(self.rho))
        self._view_cache: dict = {}  # per direction: what the plots need that thresholds do not change
        self._orders: dict = dict(self._kept_orders)  # per sort key: every candidate's position in that order
        self._auto_memo = None
        self._queue = None
        from .decisions import pruned_methods

        on = pruned_methods(self.project)
        self.unpruned = np.array([not on.get(m, True) for m in methods], bool)[self.method] if n else np.zeros(0, bool)
        self.problem: Optional[str] = None  # why nothing can be pruned (e.g. Ψ not computed), shown by the app
        try:
            th = thresholds(self.project)
        except DDBError as e:
            th, self.problem = {"Psi": {}, "P": {}, "P_method": {}}, str(e)
        self.Psi = {int(k): float(v) for k, v in th["Psi"].items()}
        self.P = {int(k): float(v) for k, v in th["P"].items()}  # DDB's, the sliders'
        self.P_method = {m: {int(k): float(v) for k, v in d.items()} for m, d in (th.get("P_method") or {}).items()}
        self.P_default = th.get("P_default") or {}
        for i, j in self.directions:  # the plots' first draw of each direction is as quick as the next ones
            self.view(f"{i}->{j}")

    @property
    def det(self) -> np.ndarray:
        """The detection score of each candidate's mask (langsam's box score; 1.0 for most other maskers),
        looked up in the (small) masks table on first use: opening the review model does not need it."""
        if self._det is None:
            db, n, mask_ids = self.project.db, len(self), self._mask_ids
            masks = np.array(db.execute("select id, coalesce(score, ?) from masks order by id", [_NULL]).fetchall(),
                             np.float64).reshape(-1, 2)
            det = np.full(n, np.nan)
            if len(masks) and n:
                at = np.clip(np.searchsorted(masks[:, 0], mask_ids), 0, len(masks) - 1)
                found = masks[at, 0] == mask_ids
                det[found] = np.where(masks[at[found], 1] == _NULL, np.nan, masks[at[found], 1])
            self._det = det
        return self._det

    @property
    def refound(self) -> np.ndarray:
        """The score of the object found again in each result (``generation.refind_objects``; NaN where it was not
        looked for), read from the (small) refinds table on first use."""
        if self._refound is None:
            out = np.full(len(self), np.nan)
            rows = np.array(self.project.db.execute("select candidate_id, score from refinds order by candidate_id")
                            .fetchall(), np.float64).reshape(-1, 2)
            if len(rows) and len(self):
                at, found = self.pos.lookup(rows[:, 0].astype(np.int64))
                out[at[found]] = rows[found, 1]
            self._refound = out
        return self._refound

    def view(self, direction: Optional[str]) -> dict:
        """What the plots of ``direction`` ("i->j", or None for all) need that no threshold changes, computed
        once per load: positions, logit ψ, ρ, and their 0.5–99.5 percentile ranges."""
        if direction not in self._view_cache:
            if direction:
                i, j = (int(x) for x in direction.split("->"))
                pos = np.nonzero((self.src == i) & (self.tgt == j))[0]
            else:
                pos = np.arange(len(self))
            psi, rho = self.psi[pos], self.rho[pos]
            lpsi = np.log(np.clip(psi, 1e-6, 1 - 1e-6) / (1 - np.clip(psi, 1e-6, 1 - 1e-6)))
            ok = np.isfinite(psi) & np.isfinite(rho)
            lr = tuple(float(v) for v in np.percentile(lpsi[ok], [0.5, 99.5])) if ok.any() else (-4.0, 4.0)
            rr = tuple(float(v) for v in np.percentile(rho[ok], [0.5, 99.5])) if ok.any() else (0.0, 1.0)
            if rr[1] <= rr[0]:
                rr = (rr[0], rr[0] + 1.0)
            # the histograms' bars do not move with the thresholds either (only their lines do)
            # ψ on the logit scale of the ψ–ρ plot, where the values near 1 that most candidates have spread out
            psi_hist = np.histogram(lpsi[np.isfinite(psi)], bins=HIST_BINS, range=lr if lr[1] > lr[0] else (lr[0], lr[0] + 1))
            rho_hist = np.histogram(rho[np.isfinite(rho)], bins=HIST_BINS, range=rr)
            self._view_cache[direction] = {"pos": pos, "psi": psi, "lpsi": lpsi, "rho": rho, "lpsi_range": lr,
                                           "rho_range": rr, "psi_hist": psi_hist, "rho_hist": rho_hist,
                                           "pixels": {}}
        return self._view_cache[direction]

    def _p_table(self, P: dict) -> np.ndarray:
        """methods x classes: DDB's P from ``P`` (the sliders), other methods' from their stored values."""
        t = np.full((len(self.method_names), self.n_classes), np.nan)
        for mi, m in enumerate(self.method_names):
            src = P if m == "ddb" else self.P_method.get(m, {})
            for c in range(self.n_classes):
                if c in src:
                    t[mi, c] = src[c]
        return t

    def __len__(self) -> int:
        return len(self.ids)

    # -- thresholds ------------------------------------------------------------------------
    def auto(self, Psi: Optional[dict] = None, P: Optional[dict] = None) -> np.ndarray:
        """Automatic keep decision of every candidate at the given (or current) thresholds (the last
        result is remembered: the counts and the plots of one slider move ask for the same)."""
        Psi = {**self.Psi, **(Psi or {})}
        P = {**self.P, **(P or {})}
        if not len(self):
            return np.zeros(0, bool)
        key = (tuple(sorted(Psi.items())), tuple(sorted(P.items())), tuple(sorted((m, tuple(sorted(d.items())))
                                                                                  for m, d in self.P_method.items())))
        if self._auto_memo is not None and self._auto_memo[0] == key:
            return self._auto_memo[1]
        psi_t = np.array([Psi.get(c, np.nan) for c in range(self.n_classes)])[self.src]
        p_t = self._p_table(P)[self.method, self.tgt]
        keep = auto_keep(self.psi, self.rho, psi_t, p_t) | self.unpruned  # a method that does not prune keeps all
        keep.setflags(write=False)
        self._auto_memo = (key, keep)
        return keep

    def kept(self, Psi: Optional[dict] = None, P: Optional[dict] = None) -> np.ndarray:
        """Final decision: manual accept/reject, else the automatic one."""
        auto = self.auto(Psi, P)
        return np.where(self.manual == 1, True, np.where(self.manual == 2, False, auto))

    def _auto_one(self, k: int) -> Optional[bool]:
        """Automatic decision at position ``k`` at the current thresholds (None: not scored)."""
        if self.unpruned[k]:  # its method does not prune: kept, scored or not
            return True
        if not self.scored[k]:
            return None
        p = self._p_table(self.P)[self.method[k], self.tgt[k]]
        return bool(self.psi[k] < self.Psi.get(int(self.src[k]), np.nan) and self.rho[k] > p)

    def kept_one(self, k: int) -> bool:
        """Final decision of the candidate at array position ``k`` at the current thresholds."""
        if self.manual[k]:
            return bool(self.manual[k] == 1)
        return bool(self._auto_one(k))

    def counts(self, Psi: Optional[dict] = None, P: Optional[dict] = None) -> dict[str, dict[str, int]]:
        auto = self.auto(Psi, P)
        kept = np.where(self.manual == 1, True, np.where(self.manual == 2, False, auto))
        out = {}
        for i, j in self.directions:
            sel = (self.src == i) & (self.tgt == j)
            out[f"{i}->{j}"] = {"candidates": int(sel.sum()), "scored": int((sel & self.scored).sum()),
                                "auto_kept": int((sel & auto).sum()), "kept": int((sel & kept).sum()),
                                "pruned": int((sel & ~kept).sum()), "accepted": int((sel & (self.manual == 1)).sum()),
                                "rejected": int((sel & (self.manual == 2)).sum())}
        return out

    def save_thresholds(self, Psi: Optional[dict] = None, P: Optional[dict] = None, source: str = "app",
                        who: str = "user", session: Optional[str] = None) -> dict:
        """Save the given entries only (another process's saves of other entries are kept), then
        take every threshold as stored."""
        th = set_thresholds(self.project, Psi, P, who=who, source=source, session=session)
        self._take(th)
        return th

    def reset_thresholds(self, source: str = "app", who: str = "user", session: Optional[str] = None) -> dict:
        """Back to the computed defaults (Ψ from Eq. 3, P from the candidates scored now); undoable."""
        th = reset_thresholds(self.project, who=who, source=source, session=session)
        self._take(th)
        return th

    def undo_thresholds(self, source: str = "app", who: str = "user", session: Optional[str] = None) -> Optional[dict]:
        th = undo_thresholds(self.project, who=who, source=source, session=session)
        if th is not None:
            self._take(th)
        return th

    def catch_up(self) -> bool:
        """Take what was stored since this index last looked — decisions, undos and thresholds saved by another
        tab, another user or the command line (every one is an ``actions`` row): the manual decisions of the
        candidates they touched are read again, and the thresholds. One query when nothing changed. Returns
        whether anything did."""
        db = self.project.db
        last = db.execute("select coalesce(max(id), 0) from actions").fetchone()[0]
        if last == self.synced_action:
            return False
        with self.project.read():
            touched = [r[0] for r in db.execute("select distinct candidate_id from audit where action_id > ?",
                                                [self.synced_action])]
            self.sync_decisions(touched)
            try:
                self.refresh_thresholds()
            except DDBError as e:
                self.problem = str(e)
        self.synced_action = last
        return True

    def refresh_thresholds(self) -> dict:
        """Re-read the stored thresholds (another process may have changed them)."""
        th = thresholds(self.project)
        self._take(th)
        return th

    def _take(self, th: dict) -> None:
        self.Psi = {int(k): float(v) for k, v in th["Psi"].items()}
        self.P = {int(k): float(v) for k, v in th["P"].items()}
        self.P_method = {m: {int(k): float(v) for k, v in d.items()} for m, d in (th.get("P_method") or {}).items()}
        self.P_default = th.get("P_default") or {}
        self.problem = None

    # -- gallery ---------------------------------------------------------------------------
    def query(self, f: Filter, Psi: Optional[dict] = None, P: Optional[dict] = None) -> np.ndarray:
        """Ids matching the filter, sorted."""
        sel = np.ones(len(self), bool)
        if f.ids is not None:
            sel &= self.mask_of(f.ids)
        if f.direction:
            try:
                i, j = (int(x) for x in f.direction.split("->"))
            except ValueError as e:
                raise ConfigError(f"direction must look like '0->1', got {f.direction!r}") from e
            sel &= (self.src == i) & (self.tgt == j)
        if f.method:
            if f.method not in self.method_names:
                return np.zeros(0, np.int64)
            sel &= self.method == self.method_names.index(f.method)
        if f.status != "all":
            auto = self.auto(Psi, P)
            sel &= {"auto-kept": (self.manual == 0) & auto & self.scored,
                    "auto-pruned": (self.manual == 0) & ~auto & self.scored,
                    "accepted": self.manual == 1, "rejected": self.manual == 2, "unscored": ~self.scored,
                    "stale": self.stale}[f.status]
        for (lo, hi), vals in ((f.psi_range, self.psi), (f.rho_range, self.rho)):
            if lo > -np.inf or hi < np.inf:  # a bounded range also drops unscored candidates
                with np.errstate(invalid="ignore"):
                    sel &= (vals >= lo) & (vals <= hi)
        if f.sort == "id":
            return self.ids[np.nonzero(sel)[0]]
        order = self.queue.order({**self.Psi, **(Psi or {})}, {**self.P, **(P or {})}) if f.sort == "queue" \
            else self._order(f.sort)
        return self.ids[order[sel[order]]]

    @property
    def queue(self):
        """The review queue of these candidates (``ddb_core.curation.queue``), built on first use after each load."""
        if self._queue is None:
            from .queue import Queue

            self._queue = Queue(self)
        return self._queue

    def _order(self, sort: str) -> np.ndarray:
        """Every candidate's position in ``sort`` order (unscored last, ties by id), computed once per load:
        a filtered gallery then takes its members in that order in one pass instead of sorting them."""
        if sort not in self._orders:
            key = sort.lstrip("-")
            self._orders[sort] = _score_order(self.det if key == "detection" else self.psi if key == "psi" else self.rho,
                                              sort)
        return self._orders[sort]

    def mask_of(self, ids) -> np.ndarray:
        """A boolean array over the candidates: True at the given ids (ids not in the index are ignored)."""
        out = np.zeros(len(self), bool)
        at, found = self.pos.lookup(np.asarray(ids, np.int64))
        out[at[found]] = True
        return out

    # -- one candidate ---------------------------------------------------------------------
    def detail(self, cid: int) -> dict:
        rows = list(self.project.db.query(
            "select c.*, s.path as source_path, s.label as source_true_label, s.attr as source_attr, "
            "m.path as mask_path, m.backend as mask_backend, m.score as detection_score, m.status as mask_status, "
            "d.decision as manual from candidates c join samples s on s.id = c.source_id "
            "left join masks m on m.id = c.mask_id left join decisions d on d.candidate_id = c.id where c.id = ?", [int(cid)]))
        if not rows:
            raise ProjectError(f"no candidate with id {cid}")
        r = rows[0]
        k = self.pos[int(cid)]
        auto = self._auto_one(k)
        return {
            "id": r["id"], "method": r["method"], "source_label": r["source_label"], "target_label": r["target_label"],
            "direction": f"{r['source_label']}->{r['target_label']}",
            "source_path": str(self.project.dataset_path(r["source_path"])),
            "result_path": str(self.project.project_path(r["path"])),
            "mask_path": str(self.project.project_path(r["mask_path"])) if r["mask_path"] else None,
            "ig_path": str(self.project.project_path(r["ig_path"])) if r["ig_path"] else None,
            "psi": r["psi"], "rho": r["rho"], "ig_delta": r["ig_delta"],
            "probs_source": json.loads(r["probs_source"]) if r["probs_source"] else None,
            "probs_generated": json.loads(r["probs_generated"]) if r["probs_generated"] else None,
            "Psi": self.Psi.get(r["source_label"]),
            "P": (self.P if r["method"] == "ddb" else self.P_method.get(r["method"], {})).get(r["target_label"]),
            "stale": bool(self.stale[k]), "score_model_id": r["score_model_id"],
            "auto": auto, "manual": r["manual"], "kept": self.kept_one(k),
            "seed": r["seed"], "prompt": r["prompt"], "mask_backend": r["mask_backend"],
            "detection_score": r["detection_score"], "provenance": json.loads(r["provenance"]) if r["provenance"] else {},
            "mask_change": r["mask_change"], "queue": self.queue.why(k, self.Psi, self.P),
        }

    # -- decisions -------------------------------------------------------------------------
    def decide(self, ids: Sequence[int], decision: Optional[str], who: str = "user", source: str = "app",
               detail: Optional[dict] = None, session: Optional[str] = None) -> int:
        """accept / reject / None (back to automatic) for every id, as one action: saved and audited at once."""
        ids = [int(i) for i in ids]
        changed = set_decision(self.project, ids, decision, who=who, source=source, detail=detail, session=session)
        at, found = self.pos.lookup(np.array(ids, np.int64))
        self.manual[at[found]] = MANUAL_CODE[decision]
        return changed

    def undo(self, who: str = "user", source: str = "app") -> Optional[list[int]]:
        """Revert the latest decision action (a whole batch at once); returns the candidates it restored."""
        res = self.undo_action(who, source)
        return None if res is None else res.candidate_ids

    def undo_action(self, who: str = "user", source: str = "app", session: Optional[str] = None,
                    mine: Optional[dict] = None, action_id: Optional[int] = None):
        """Revert the latest decision action (of this reviewer with ``mine``, or the action ``action_id``: see
        ``decisions.undo``); returns what was undone (``decisions.Undone``) or None."""
        res = undo(self.project, who, source, session=session, mine=mine, action_id=action_id)
        if res is None:
            return None
        self.sync_decisions(res.candidate_ids)
        return res

    def sync_decisions(self, ids: Sequence[int]) -> None:
        """Re-read the manual decisions of ``ids`` from the database."""
        at, found = self.pos.lookup(np.array([int(i) for i in ids], np.int64))
        ids = [int(self.ids[k]) for k in at[found]]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            stored = dict(self.project.db.execute(
                f"select candidate_id, decision from decisions where candidate_id in ({','.join('?' * len(chunk))})",
                chunk).fetchall())
            for i in chunk:
                self.manual[self.pos[i]] = MANUAL_CODE[stored.get(i)]
