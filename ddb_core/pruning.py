"""Pruning (Algorithm 1): keep x' iff ψ < Ψ_i and ρ > P_i'; manual decisions override.

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

Manual decisions (``decisions`` table) override the automatic one; every change writes an
``audit`` row (who, when, old, new), and ``undo`` walks it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from .errors import ConfigError, ProjectError
from .store import Project, now

DEFAULT_P_QUANTILE = 0.25
MANUAL = ("accept", "reject")
# Which methods' candidates the ψ/ρ rule prunes. SCGS itself does not prune: its candidates are
# kept automatically unless the user turns pruning on for them (``set_method_pruning``).
DEFAULT_PRUNED_METHODS = {"ddb": True, "scgs": False}


def pruned_methods(project: Project) -> dict[str, bool]:
    return {**DEFAULT_PRUNED_METHODS, **(project.get_meta("pruned_methods") or {})}


def set_method_pruning(project: Project, method: str, enabled: bool) -> dict[str, bool]:
    current = pruned_methods(project)
    current[method] = bool(enabled)
    project.set_meta("pruned_methods", current)
    return current


def auto_keep(psi: np.ndarray, rho: np.ndarray, Psi: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Algorithm 1 on arrays: ψ < Ψ_i (Eq. 3) and ρ > P_i' (Eq. 5). NaN scores are not kept."""
    with np.errstate(invalid="ignore"):
        return (psi < Psi) & (rho > P)


def suggest_P(rhos: Iterable[float], quantile: float = DEFAULT_P_QUANTILE) -> float:
    r = np.asarray([x for x in rhos if x is not None and np.isfinite(x)], dtype=np.float64)
    return float(np.quantile(r, quantile)) if r.size else 0.0


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
    from .selection import class_softmax_means

    n = len(project.class_names)
    mid = project.active_erm_id
    if mid is None:
        if project.db.execute("select count(*) from candidates").fetchone()[0]:
            raise ProjectError("the project has candidates but no active ERM model, so nothing can be pruned: train or "
                               "load one (`ddb erm train` / `ddb erm load`), then `ddb select` and `ddb score --rescore`")
        return {"Psi": {}, "P": {}, "P_method": {}, "P_default": {}, "erm_model_id": None}
    with project.write():
        raw = _all_stored(project)
        entry = _model_entry(raw, mid)
        Psi = {int(k): float(v) for k, v in entry["Psi"].items()}
        means = class_softmax_means(project, required=False)
        for i in range(n):
            if i not in Psi and i in means:
                Psi[i] = means[i]
        on = pruned_methods(project)
        missing: list[int] = []
        pruned = [m for m, enabled in on.items() if enabled]
        if pruned:
            sources = {r[0] for r in project.db.execute(
                f"select distinct source_label from candidates where method in ({','.join('?' * len(pruned))})", pruned)}
            missing = sorted(sources - set(Psi))
        if missing:
            names = ", ".join(f"{project.class_names[i]!r}" for i in missing)
            raise ProjectError(f"Ψ (Eq. 3) of class {names} is not computed for the active ERM model (id {mid}): run "
                               f"`ddb select` (the app: Pipeline → 1. Select), which computes it from the model's softmax")
        changed = False
        methods = sorted({r[0] for r in project.db.execute("select distinct method from candidates")} | {"ddb"})
        P_method: dict[str, dict[int, float]] = {}
        for m in methods:
            stored = {int(k): float(v) for k, v in (entry["P"].get(m) or {}).items()}
            for c in range(n):
                if c in stored:
                    continue
                rhos = [r[0] for r in project.db.execute(
                    f"select c.rho from candidates c where c.method = ? and c.target_label = ? and {FRESH}", [m, c, mid])]
                if rhos:  # computed once, from the candidates scored now, and stored
                    stored[c] = suggest_P(rhos)
                    entry["P"].setdefault(m, {})[str(c)] = stored[c]
                    entry["P_default"].setdefault(m, {})[str(c)] = {"n": len(rhos), "quantile": DEFAULT_P_QUANTILE,
                                                                   "at": now()}
                    changed = True
            P_method[m] = stored
        if changed:
            project.set_meta("thresholds", raw)
    defaults = {m: {int(c): d for c, d in v.items()} for m, v in entry["P_default"].items()}
    return {"Psi": Psi, "P": P_method.get("ddb", {}), "P_method": P_method, "P_default": defaults, "erm_model_id": mid}


def thresholds_json(th: dict) -> dict:
    """``thresholds()`` with string keys, for JSON files (reports, bundles, benchmarks)."""
    return {"erm_model_id": th.get("erm_model_id"),
            "Psi": {str(c): v for c, v in th["Psi"].items()}, "P": {str(c): v for c, v in th["P"].items()},
            "P_method": {m: {str(c): v for c, v in d.items()} for m, d in (th.get("P_method") or {}).items()},
            "P_default": {m: {str(c): v for c, v in d.items()} for m, d in (th.get("P_default") or {}).items()}}


def set_thresholds(project: Project, Psi: Optional[dict[int, float]] = None, P: Optional[dict[int, float]] = None,
                   method: str = "ddb") -> dict:
    """Save thresholds of the active ERM model (only the given entries change; P for ``method``)."""
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
    with project.write():
        raw = _all_stored(project)
        entry = _model_entry(raw, mid)
        for k, v in (Psi or {}).items():
            entry["Psi"][str(int(k))] = float(v)
        for k, v in (P or {}).items():
            entry["P"].setdefault(method, {})[str(int(k))] = float(v)
            (entry["P_default"].get(method) or {}).pop(str(int(k)), None)  # set by hand now
        project.set_meta("thresholds", raw)
    return thresholds(project)


def reset_thresholds(project: Project) -> dict:
    """Forget the active model's saved thresholds: Ψ back to Eq. 3, P computed again from the
    candidates scored now. Returns the new thresholds."""
    mid = project.active_erm_id
    if mid is not None:
        with project.write():
            raw = _all_stored(project)
            raw["by_model"].pop(str(mid), None)
            project.set_meta("thresholds", raw)
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
    keep = np.array([k if prune_on.get(r["method"], True) else True for k, r in zip(keep, rows)], dtype=bool)
    out = []
    for r, k, scored in zip(rows, keep, fresh):
        auto = bool(k) if scored else None
        manual = r["decision"]
        out.append(Decision(r["id"], auto, manual, manual == "accept" if manual else bool(auto)))
    return out


def set_decision(project: Project, candidate_ids: Iterable[int], decision: Optional[str], who: str = "user") -> int:
    """Set (accept / reject) or clear (None = back to automatic) the manual decision; audited."""
    if decision is not None and decision not in MANUAL:
        raise ConfigError(f"decision must be 'accept', 'reject' or None (automatic), got {decision!r}")
    ids = list(candidate_ids)
    changed = 0
    with project.write():
        for cid in ids:
            row = list(project.db.query("select c.id, d.decision from candidates c left join decisions d "
                                        "on d.candidate_id = c.id where c.id = ?", [cid]))
            if not row:
                raise ProjectError(f"no candidate with id {cid}")
            old = row[0]["decision"]
            if old == decision:
                continue
            if decision is None:
                project.db.execute("delete from decisions where candidate_id = ?", [cid])
            else:
                project.db["decisions"].upsert({"candidate_id": cid, "decision": decision, "updated_at": now()}, pk="candidate_id")
            project.db["audit"].insert({"candidate_id": cid, "old": old, "new": decision, "who": who, "at": now()})
            changed += 1
    return changed


def undo(project: Project, who: str = "user") -> Optional[int]:
    """Revert the latest audited change (restoring its old value); returns the candidate id."""
    rows = list(project.db.query("select * from audit order by id desc limit 1"))
    if not rows:
        return None
    last = rows[0]
    with project.write():
        if last["old"] is None:
            project.db.execute("delete from decisions where candidate_id = ?", [last["candidate_id"]])
        else:
            project.db["decisions"].upsert({"candidate_id": last["candidate_id"], "decision": last["old"],
                                            "updated_at": now()}, pk="candidate_id")
        project.db.execute("delete from audit where id = ?", [last["id"]])
    return last["candidate_id"]


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
