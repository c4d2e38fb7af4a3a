"""Pruning (Algorithm 1): keep x' iff ψ < Ψ_i and ρ > P_i'; manual decisions override.

Consumes stored candidate scores (never recomputes them) and thresholds; produces decisions.
Thresholds live in the project meta ``thresholds``: ``{"Psi": {i: value}, "P": {i': value}}``.
Ψ_i defaults to the computed class mean (Eq. 3, ``class_stats``); P_i' defaults to a quantile of
that target class's ρ distribution (the paper's values, 0.3–2 on ResNet-50 at 224 px, do not
transfer to other classifiers). Manual decisions (``decisions`` table) override the automatic
one; every change writes an ``audit`` row (who, when, old, new), and ``undo`` walks it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from .errors import ConfigError, ProjectError
from .selection import class_softmax_means
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


def thresholds(project: Project) -> dict[str, dict[int, float]]:
    """The project's current Ψ (per source class) and P (per target class), defaults filled in."""
    stored = project.get_meta("thresholds") or {}
    n = len(project.class_names)
    Psi = {int(k): float(v) for k, v in (stored.get("Psi") or {}).items()}
    P = {int(k): float(v) for k, v in (stored.get("P") or {}).items()}
    try:
        means = class_softmax_means(project)
    except ProjectError:
        means = {}
    for i in range(n):
        if i not in Psi and i in means:
            Psi[i] = means[i]
        if i not in P:
            P[i] = suggest_P(r["rho"] for r in project.db.query(
                "select rho from candidates where target_label = ? and rho is not null", [i]))
    return {"Psi": Psi, "P": P}


def set_thresholds(project: Project, Psi: Optional[dict[int, float]] = None, P: Optional[dict[int, float]] = None) -> dict:
    """Save thresholds with the project (only the given entries change)."""
    n = len(project.class_names)
    current = project.get_meta("thresholds") or {}
    out = {"Psi": dict(current.get("Psi") or {}), "P": dict(current.get("P") or {})}
    for key, values in (("Psi", Psi), ("P", P)):
        for k, v in (values or {}).items():
            if not 0 <= int(k) < n:
                raise ConfigError(f"{key} threshold for class {k}: the project has classes 0..{n - 1}")
            if not np.isfinite(v):
                raise ConfigError(f"{key} threshold for class {k} must be a finite number, got {v}")
            out[key][str(int(k))] = float(v)
    project.set_meta("thresholds", out)
    return thresholds(project)


@dataclass
class Decision:
    candidate_id: int
    auto: Optional[bool]  # None when not scored yet
    manual: Optional[str]  # accept / reject / None
    kept: bool  # the final decision


def decisions(project: Project, where: str = "1=1", args: Optional[list] = None,
              th: Optional[dict] = None) -> list[Decision]:
    """Final decisions of the candidates matching ``where`` (SQL on candidates ``c``)."""
    th = th or thresholds(project)
    rows = list(project.db.query(
        f"select c.id, c.source_label, c.target_label, c.psi, c.rho, c.method, d.decision from candidates c "
        f"left join decisions d on d.candidate_id = c.id where {where} order by c.id", args or []))
    if not rows:
        return []
    psi = np.array([np.nan if r["psi"] is None else r["psi"] for r in rows])
    rho = np.array([np.nan if r["rho"] is None else r["rho"] for r in rows])
    Psi = np.array([th["Psi"].get(r["source_label"], np.nan) for r in rows])
    P = np.array([th["P"].get(r["target_label"], np.nan) for r in rows])
    keep = auto_keep(psi, rho, Psi, P)
    prune_on = pruned_methods(project)
    keep = np.array([k if prune_on.get(r["method"], True) else True for k, r in zip(keep, rows)], dtype=bool)
    out = []
    for r, k, scored in zip(rows, keep, ~(np.isnan(psi) | np.isnan(rho))):
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
    with project.db.atomic():
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
    with project.db.atomic():
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
