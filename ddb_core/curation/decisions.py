"""Decisions on candidates: the project's thresholds, the rule applied with them (``method.pruning``,
Algorithm 1), the manual decisions that override it, and their append-only audit log.

Consumes stored candidate scores (never recomputes them) and thresholds; produces decisions.

Scores belong to a model: a candidate's ψ and ρ count only when they were computed by the active
ERM model (``candidates.score_model_id``); scores of another model are *stale* and the candidate is
treated as not scored until ``ddb score --rescore`` recomputes them.

Thresholds belong to a model too. They live in the project meta ``thresholds`` as
``{"by_model": {model id: {"Psi": {i: value}, "P": {method: {i': value}}, "P_default": …}}}``:

- Ψ_i defaults to the class mean of the active model (Eq. 3, ``class_stats``). A class without it
  is an error that names the command to run — never a NaN threshold that prunes everything.
- P_i' defaults to the ``DEFAULT_P_QUANTILE`` quantile of the ρ of the same method's candidates of
  target class i' (the paper's values, 0.3–2 on ResNet-50 at 224 px, do not transfer to other
  classifiers; SCGS candidates never move DDB's default). The default is computed once, from the
  candidates scored at that moment, and stored with how many it came from, so it does not drift as
  candidates are added; ``reset_thresholds`` (``ddb prune --defaults``) computes it again.

Manual decisions (``decisions`` table) override the automatic one. The audit log is append-only:
every user action — a decision on one candidate or on a batch, a threshold change, an undo — is
one ``actions`` row (what, who, when, from where: app, cli or api), and every candidate it changed
one ``audit`` row (old and new decision). ``undo`` reverts the latest action not yet undone, a
whole batch at once, by appending an action that restores the previous state; ``undo_thresholds``
does the same for threshold changes. Every read-then-write runs in ``Project.write()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from ..project.errors import ConfigError, ProjectError
from ..method.pruning import DEFAULT_P_QUANTILE, auto_keep, suggest_P
from ..project.store import Project, now

MANUAL = ("accept", "reject")
# Which methods' candidates the ψ/ρ rule prunes. SCGS itself does not prune: its candidates are
# kept automatically unless the user turns pruning on for them (``set_method_pruning``).
DEFAULT_PRUNED_METHODS = {"ddb": True, "scgs": False}


def pruned_methods(project: Project) -> dict[str, bool]:
    return {**DEFAULT_PRUNED_METHODS, **(project.get_meta("pruned_methods") or {})}


def set_method_pruning(project: Project, method: str, enabled: bool) -> dict[str, bool]:
    with project.write():
        current = pruned_methods(project)
        current[method] = bool(enabled)
        project.set_meta("pruned_methods", current)
    return current


PSI_RANGE = (0.0, 1.001)  # the values Ψ may take: keep iff ψ < Ψ, so 1.001 keeps even ψ = 1 (the app's slider too)
FRESH = "c.psi is not null and c.rho is not null and c.score_model_id = ?"  # scored by the given model


def stale_scores(project: Project) -> int:
    """How many candidates hold ψ/ρ of another model than the active ERM model."""
    return project.db.execute("select count(*) from candidates where psi is not null and "
                              "(score_model_id is null or score_model_id != ?)", [project.active_erm_id or -1]).fetchone()[0]


def _all_stored(project: Project) -> dict:
    raw = project.get_meta("thresholds") or {}
    if raw and "by_model" not in raw:  # before schema 5: one flat set, for the model active then
        mid = project.active_erm_id
        raw = {"by_model": {str(mid): {"Psi": raw.get("Psi") or {}, "P": {"ddb": raw.get("P") or {}}}}} if mid is not None else {}
    raw.setdefault("by_model", {})
    return raw


def _model_entry(raw: dict, model_id: int) -> dict:
    e = raw["by_model"].setdefault(str(model_id), {})
    e.setdefault("Psi", {})
    e.setdefault("P", {})
    e.setdefault("P_default", {})
    return e


def thresholds(project: Project) -> dict:
    """The thresholds of the active ERM model, defaults filled in (and stored when first computed).

    Returns ``{"Psi": {i: Ψ_i}, "P": {i': P_i'} (DDB's), "P_method": {method: {i': P_i'}},
    "P_default": {method: {i': {"n": …, "quantile": …}}}, "erm_model_id": id}``. Raises ``ProjectError``
    naming ``ddb select`` when a class whose candidates are pruned has no Ψ.
    """
    from ..method.selection import class_softmax_means

    n = len(project.class_names)
    mid = project.active_erm_id
    if mid is None:
        if project.db.execute("select count(*) from candidates").fetchone()[0]:
            raise ProjectError("the project has candidates but no active ERM model, so nothing can be pruned: train or "
                               "load one (`ddb erm train` / `ddb erm load`), then `ddb select` and `ddb score --rescore`")
        return {"Psi": {}, "P": {}, "P_method": {}, "P_default": {}, "erm_model_id": None}
    entry = _model_entry(_all_stored(project), mid)
    Psi = {int(k): float(v) for k, v in entry["Psi"].items()}
    means = class_softmax_means(project, required=False)
    for i in range(n):
        if i not in Psi and i in means:
            Psi[i] = means[i]
    pruned = [m for m, enabled in pruned_methods(project).items() if enabled]
    missing: list[int] = []
    if pruned:
        sources = {r[0] for r in project.db.execute(
            f"select distinct source_label from candidates where method in ({','.join('?' * len(pruned))})", pruned)}
        missing = sorted(sources - set(Psi))
    if missing:
        names = ", ".join(f"{project.class_names[i]!r}" for i in missing)
        raise ProjectError(f"Ψ (Eq. 3) of class {names} is not computed for the active ERM model (id {mid}): run "
                           f"`ddb select` (the app: Pipeline → 1. Select), which computes it from the model's softmax")
    methods = sorted({r[0] for r in project.db.execute("select distinct method from candidates")} | {"ddb"})
    todo = [(m, c) for m in methods for c in range(n) if str(c) not in (entry["P"].get(m) or {})]
    new, provisional = {}, {}
    for m, c in todo:
        rhos = [r[0] for r in project.db.execute(
            f"select c.rho from candidates c where c.method = ? and c.target_label = ? and {FRESH}", [m, c, mid])]
        if not rhos:
            continue
        total = project.db.execute("select count(*) from candidates where method = ? and target_label = ?",
                                   [m, c]).fetchone()[0]
        if len(rhos) >= total:  # every candidate of the class scored: the default is fixed from now on
            new[(m, c)] = (suggest_P(rhos), len(rhos))
        else:  # scoring under way: the default follows the scores as they come, and is not stored yet
            provisional[(m, c)] = (suggest_P(rhos), len(rhos), total)
    def fill(entry: dict) -> None:  # the new defaults, where no value is stored yet
        for (m, c), (value, count) in new.items():
            if str(c) not in (entry["P"].get(m) or {}):
                entry["P"].setdefault(m, {})[str(c)] = value
                entry["P_default"].setdefault(m, {})[str(c)] = {"n": count, "quantile": DEFAULT_P_QUANTILE, "at": now()}

    if new and project.read_only:  # what would be stored, used as it is: this user cannot store it
        fill(entry)
    elif new:  # computed once, from the candidates scored now, and stored (unless another writer got there first)
        with project.write():
            raw = _all_stored(project)
            entry = _model_entry(raw, mid)
            fill(entry)
            project.set_meta("thresholds", raw)
    P_method = {m: {int(k): float(v) for k, v in (entry["P"].get(m) or {}).items()} for m in methods}
    defaults = {m: {int(c): d for c, d in v.items()} for m, v in entry["P_default"].items()}
    for (m, c), (value, count, total) in provisional.items():
        P_method.setdefault(m, {})[c] = value
        defaults.setdefault(m, {})[c] = {"n": count, "of": total, "quantile": DEFAULT_P_QUANTILE, "provisional": True}
    return {"Psi": Psi, "P": P_method.get("ddb", {}), "P_method": P_method, "P_default": defaults, "erm_model_id": mid}


def thresholds_json(th: dict) -> dict:
    """``thresholds()`` with string keys, for JSON files (reports, bundles, benchmarks)."""
    return {"erm_model_id": th.get("erm_model_id"),
            "Psi": {str(c): v for c, v in th["Psi"].items()}, "P": {str(c): v for c, v in th["P"].items()},
            "P_method": {m: {str(c): v for c, v in d.items()} for m, d in (th.get("P_method") or {}).items()},
            "P_default": {m: {str(c): v for c, v in d.items()} for m, d in (th.get("P_default") or {}).items()}}


def set_thresholds(project: Project, Psi: Optional[dict[int, float]] = None, P: Optional[dict[int, float]] = None,
                   method: str = "ddb", who: str = "user", source: str = "api", session: Optional[str] = None) -> dict:
    """Save thresholds of the active ERM model (only the given entries change; P for ``method``).
    Read and written in one transaction, so a concurrent save of another entry is never lost; the
    change is an undoable action in the audit log (``undo_thresholds``)."""
    import copy

    n = len(project.class_names)
    mid = project.active_erm_id
    if mid is None:
        raise ProjectError("thresholds belong to an ERM model, and the project has none: train or load one first")
    for key, values in (("Psi", Psi), ("P", P)):
        for k, v in (values or {}).items():
            if not 0 <= int(k) < n:
                raise ConfigError(f"{key} threshold for class {k}: the project has classes 0..{n - 1}")
            if v is None or not np.isfinite(v):
                raise ConfigError(f"{key} threshold for class {k} must be a finite number, got {v}")
            if key == "Psi" and not PSI_RANGE[0] <= v <= PSI_RANGE[1]:  # ψ is a probability
                raise ConfigError(f"Psi threshold for class {k} must be in [0, {PSI_RANGE[1]:g}] (ψ is a probability; "
                                  f"{PSI_RANGE[1]:g} keeps even ψ = 1), got {v}")
    with project.write():
        raw = _all_stored(project)
        entry = _model_entry(raw, mid)
        before = copy.deepcopy(entry)
        for k, v in (Psi or {}).items():
            entry["Psi"][str(int(k))] = float(v)
        for k, v in (P or {}).items():
            entry["P"].setdefault(method, {})[str(int(k))] = float(v)
            (entry["P_default"].get(method) or {}).pop(str(int(k)), None)  # set by hand now
        if entry != before:
            project.set_meta("thresholds", raw)
            _action(project, "thresholds", source, who, 0, {"model": mid, "what": "set", "before": before, "after": entry},
                    session=session)
    return thresholds(project)


def reset_thresholds(project: Project, who: str = "user", source: str = "api", session: Optional[str] = None) -> dict:
    """Forget the active model's saved thresholds: Ψ back to Eq. 3, P computed again from the
    candidates scored now. Undoable (``undo_thresholds``). Returns the new thresholds."""
    mid = project.active_erm_id
    if mid is not None:
        with project.write():
            raw = _all_stored(project)
            before = raw["by_model"].pop(str(mid), None)
            project.set_meta("thresholds", raw)
            if before:
                _action(project, "thresholds", source, who, 0, {"model": mid, "what": "reset", "before": before, "after": None},
                        session=session)
    return thresholds(project)


# the kinds of ``actions`` row a threshold change writes (a save or reset; an undo of one), as an SQL tuple
THRESHOLD_KINDS = ("thresholds", "thresholds-undo")


def undo_thresholds(project: Project, who: str = "user", source: str = "api",
                    session: Optional[str] = None) -> Optional[dict]:
    """Restore the active model's thresholds as they were before its latest threshold change (a
    save or a reset) that is not yet undone. Returns the restored thresholds, or None."""
    import json

    mid = project.active_erm_id
    with project.write():
        done = _undone_ids(project)
        last = None
        for aid, detail in project.db.execute("select id, detail from actions where kind = 'thresholds' order by id desc"):
            d = json.loads(detail or "{}")
            if aid not in done and d.get("model") == mid:
                last = (aid, d)
                break
        if last is None:
            return None
        aid, d = last
        raw = _all_stored(project)
        current = raw["by_model"].get(str(mid))
        if d.get("before"):
            raw["by_model"][str(mid)] = d["before"]
        else:
            raw["by_model"].pop(str(mid), None)
        project.set_meta("thresholds", raw)
        _action(project, "thresholds-undo", source, who, 0, {"model": mid, "before": current, "after": d.get("before")},
                undoes=aid, session=session)
    return thresholds(project)


@dataclass
class Decision:
    candidate_id: int
    auto: Optional[bool]  # None when not scored yet
    manual: Optional[str]  # accept / reject / None
    kept: bool  # the final decision


def decisions(project: Project, where: str = "1=1", args: Optional[list] = None,
              th: Optional[dict] = None) -> list[Decision]:
    """Final decisions of the candidates matching ``where`` (SQL on candidates ``c``). A candidate
    scored by another model than the active ERM model (stale) counts as not scored."""
    th = th or thresholds(project)
    rows = list(project.db.query(
        f"select c.id, c.source_label, c.target_label, c.psi, c.rho, c.method, c.score_model_id, d.decision "
        f"from candidates c left join decisions d on d.candidate_id = c.id where {where} order by c.id", args or []))
    if not rows:
        return []
    mid = th.get("erm_model_id", project.active_erm_id)
    fresh = np.array([r["score_model_id"] == mid and r["psi"] is not None and r["rho"] is not None for r in rows])
    psi = np.array([r["psi"] if f else np.nan for r, f in zip(rows, fresh)], dtype=np.float64)
    rho = np.array([r["rho"] if f else np.nan for r, f in zip(rows, fresh)], dtype=np.float64)
    Psi = np.array([th["Psi"].get(r["source_label"], np.nan) for r in rows])
    P_of = th.get("P_method") or {"ddb": th["P"]}
    P = np.array([(P_of.get(r["method"]) or {}).get(r["target_label"], np.nan) for r in rows])
    keep = auto_keep(psi, rho, Psi, P)
    prune_on = pruned_methods(project)
    out = []
    for r, k, scored in zip(rows, keep, fresh):
        if not prune_on.get(r["method"], True):  # a method that does not prune (SCGS) keeps its candidates,
            auto = True  # scored or not (unscored, or stale after an ERM change)
        else:
            auto = bool(k) if scored else None
        manual = r["decision"]
        out.append(Decision(r["id"], auto, manual, manual == "accept" if manual else bool(auto)))
    return out


SOURCES = ("app", "cli", "api")


def _action(project: Project, kind: str, source: str, who: str, n: int, detail: dict,
            undoes: Optional[int] = None, session: Optional[str] = None) -> int:
    """Append one ``actions`` row (inside the caller's write transaction); returns its id. ``session``: the
    browser session that acted (the app without sign-in tells its reviewers apart by it), kept in the detail."""
    import json

    if source not in SOURCES:
        raise ConfigError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if session:
        detail = {**detail, "session": str(session)}
    return project.db["actions"].insert({"kind": kind, "source": source, "who": who, "at": now(), "n": n,
                                         "undoes": undoes, "detail": json.dumps(detail)}).last_pk


def set_decision(project: Project, candidate_ids: Iterable[int], decision: Optional[str], who: str = "user",
                 source: str = "api", detail: Optional[dict] = None, session: Optional[str] = None) -> int:
    """Set (accept / reject) or clear (None = back to automatic) the manual decision of every candidate
    in ``candidate_ids`` — one user action, applied whole or not at all, and audited: one ``actions``
    row (with ``detail``, e.g. the filter of a batch) and one ``audit`` row per candidate changed.
    Returns how many changed."""
    if decision is not None and decision not in MANUAL:
        raise ConfigError(f"decision must be 'accept', 'reject' or None (automatic), got {decision!r}")
    ids = list(dict.fromkeys(int(i) for i in candidate_ids))
    with project.write():
        current: dict[int, Optional[str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = project.db.execute(
                f"select c.id, d.decision from candidates c left join decisions d on d.candidate_id = c.id "
                f"where c.id in ({','.join('?' * len(chunk))})", chunk).fetchall()
            current.update({r[0]: r[1] for r in rows})
        missing = [i for i in ids if i not in current]
        if missing:
            raise ProjectError(f"no candidate with id {', '.join(map(str, missing[:10]))}"
                               f"{f' (and {len(missing) - 10} more)' if len(missing) > 10 else ''}; nothing was changed")
        changed = [i for i in ids if current[i] != decision]
        if not changed:
            return 0
        action = _action(project, "decision", source, who, len(changed),
                         {"decision": decision, **(detail or {}), "candidates": changed[:1000]}, session=session)
        at = now()
        if decision is None:
            project.db.conn.executemany("delete from decisions where candidate_id = ?", [(i,) for i in changed])
        else:
            project.db.conn.executemany(
                "insert into decisions (candidate_id, decision, updated_at) values (?, ?, ?) "
                "on conflict(candidate_id) do update set decision = excluded.decision, updated_at = excluded.updated_at",
                [(i, decision, at) for i in changed])
        project.db.conn.executemany(
            "insert into audit (candidate_id, old, new, who, at, action_id, source) values (?, ?, ?, ?, ?, ?, ?)",
            [(i, current[i], decision, who, at, action, source) for i in changed])
    return len(changed)


@dataclass
class Undone:
    action_id: int  # the action that was reverted
    undo_action_id: int  # the action that reverted it
    candidate_ids: list[int]
    decision: Optional[str] = None  # what the reverted action had set (None: back to automatic)
    who: str = "user"  # who made it
    skipped: list[int] = field(default_factory=list)  # changed again since by a later action: left as they are


def _undone_ids(project: Project) -> set[int]:
    return {r[0] for r in project.db.execute("select undoes from actions where undoes is not null")}


def undo(project: Project, who: str = "user", source: str = "api", session: Optional[str] = None,
         mine: Optional[dict] = None, action_id: Optional[int] = None) -> Optional[Undone]:
    """Revert the latest decision action not yet undone — one candidate or a whole batch — by
    appending an action that restores every candidate's previous decision. Nothing is deleted from
    the log. ``mine``: only an action of this reviewer, ``{"who": name}`` (a signed-in user) or
    ``{"session": id}`` (one browser session of the app without sign-in); else the project's latest,
    whoever made it. ``action_id``: that decision action (chosen from the audit log), whoever made it.
    A candidate whose decision a later action changed again is left as it is (``Undone.skipped``): an
    undo never overwrites what came after. Returns what was reverted, or None when there is nothing
    left to undo."""
    import json

    def matches(row) -> bool:
        if not mine:
            return True
        if "who" in mine:
            return row[1] == mine["who"]
        return json.loads(row[2] or "{}").get("session") == mine.get("session")

    with project.write():
        done = _undone_ids(project)
        if action_id is not None:
            last = project.db.execute("select id, who, detail from actions where kind = 'decision' and id = ?",
                                      [int(action_id)]).fetchone()
            if last is None:
                raise ProjectError(f"action {action_id} is not a decision of this project (see the audit log); nothing "
                                   f"was changed")
            if last[0] in done:
                raise ProjectError(f"action {action_id} was undone already; nothing was changed")
        else:
            last = next((r for r in project.db.execute(
                "select id, who, detail from actions where kind = 'decision' order by id desc") if r[0] not in done
                and matches(r)), None)
        if last is None:
            return None
        last_detail = json.loads(last[2] or "{}")
        rows = project.db.execute("select candidate_id, old, new from audit where action_id = ? order by id desc",
                                  [last[0]]).fetchall()
        restore: dict[int, Optional[str]] = {}
        set_to: dict[int, Optional[str]] = {}
        for cid, old, new in rows:  # the earliest old value of each candidate wins (rows are newest first)
            restore[cid] = old
            set_to.setdefault(cid, new)
        current = {r[0]: r[1] for r in project.db.execute(
            f"select c.id, d.decision from candidates c left join decisions d on d.candidate_id = c.id "
            f"where c.id in ({','.join('?' * len(restore))})", list(restore))} if restore else {}
        skipped = [cid for cid in restore if cid in current and current[cid] != set_to[cid]]
        for cid in skipped:  # changed again since: the later change stands
            del restore[cid]
        action = _action(project, "undo", source, who, len(restore), {"undoes": last[0], "skipped": skipped[:1000]},
                         undoes=last[0], session=session)
        at = now()
        for cid, old in restore.items():
            if cid not in current:
                continue  # the candidate is gone (regenerated and replaced): nothing to restore
            if old is None:
                project.db.execute("delete from decisions where candidate_id = ?", [cid])
            else:
                project.db.conn.execute(
                    "insert into decisions (candidate_id, decision, updated_at) values (?, ?, ?) on conflict(candidate_id) "
                    "do update set decision = excluded.decision, updated_at = excluded.updated_at", [cid, old, at])
            project.db.conn.execute(
                "insert into audit (candidate_id, old, new, who, at, action_id, source) values (?, ?, ?, ?, ?, ?, ?)",
                [cid, current[cid], old, who, at, action, source])
    return Undone(last[0], action, list(restore), last_detail.get("decision"), last[1], skipped)


def audit_log(project: Project, limit: int = 50) -> list[dict]:
    """The latest actions, newest first, with what they did and whether they were undone."""
    import json

    done = _undone_ids(project)
    out = []
    for r in project.db.query("select * from actions order by id desc limit ?", [int(limit)]):
        d = dict(r)
        d["detail"] = json.loads(d["detail"] or "{}")
        d["undone"] = d["id"] in done
        out.append(d)
    return out


def summary(project: Project, th: Optional[dict] = None, method: Optional[str] = None) -> dict[str, dict[str, int]]:
    """Per direction "i->i'": candidates, scored, kept automatically, kept finally, manual overrides.

    ``method`` ("ddb", "scgs") counts that method's candidates only; by default every candidate counts.
    """
    th = th or thresholds(project)
    only, only_args = ("method = ?", [method]) if method else ("1=1", [])
    dirs = list(project.db.query(f"select distinct source_label, target_label from candidates where {only} order by 1, 2",
                                 only_args))
    out = {}
    for d in dirs:
        ds = decisions(project, f"c.source_label = ? and c.target_label = ?{' and c.method = ?' if method else ''}",
                       [d["source_label"], d["target_label"], *only_args], th)
        out[f"{d['source_label']}->{d['target_label']}"] = {
            "candidates": len(ds), "scored": sum(x.auto is not None for x in ds),
            "auto_kept": sum(bool(x.auto) for x in ds), "kept": sum(x.kept for x in ds),
            "manual": sum(x.manual is not None for x in ds)}
    return out
