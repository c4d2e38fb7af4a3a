"""Review and decisions: ``ddb prune``, ``decide``, ``undo``, ``audit``, ``queue``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .common import command, _add_project, _class_values, _print_pruning, _open


def _prune_args(p):
    _who(p)
    p.add_argument("--Psi", nargs="+", metavar="CLASS=VALUE", help="Psi_i per source class (default: the computed mean, Eq. 3)")
    p.add_argument("--P", nargs="+", metavar="CLASS=VALUE", help="P_i' per target class (default: a quantile of its rho)")
    p.add_argument("--undo", action="store_true",
                   help="restore the thresholds as they were before the latest change (a save or a reset) not yet undone")
    p.add_argument("--defaults", action="store_true",
                   help="forget the saved thresholds of the active ERM model first: Psi from Eq. 3, P computed again "
                        "from the candidates scored now")


@command("prune", "set the Psi/P thresholds and show kept/pruned counts per direction", _prune_args)
def _prune(a, progress):
    from .. import api
    from ..curation.decisions import undo_thresholds

    project = _open(a)
    Psi, P = _class_values(a.Psi, "--Psi"), _class_values(a.P, "--P")
    if a.undo and undo_thresholds(project, who=a.who, source="cli") is None:
        print("no threshold change of the active ERM model to undo")
    th, counts = api.prune(project, Psi, P, reset=a.defaults, source="cli", who=a.who)
    _print_pruning(project, th, counts)
    return 0


def _who(p):
    _add_project(p)
    p.add_argument("--who", default=os.environ.get("USER", "cli"), help="recorded in the audit log (default: $USER)")


def _decide_args(p):
    _who(p)
    p.add_argument("ids", type=int, nargs="+", help="candidate ids (see the app, or the export manifest)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--accept", action="store_const", const="accept", dest="decision")
    g.add_argument("--reject", action="store_const", const="reject", dest="decision")
    g.add_argument("--auto", action="store_const", const="auto", dest="decision", help="back to the automatic decision")


@command("decide", "accept or reject candidates by id (one audited action), or set them back to automatic", _decide_args)
def _decide(a, progress):
    from ..curation.decisions import set_decision

    n = set_decision(_open(a), a.ids, None if a.decision == "auto" else a.decision, who=a.who, source="cli")
    print(f"{n} of {len(set(a.ids))} candidates changed ({a.decision}); `ddb undo` reverts this action")
    return 0


@command("undo", "revert the latest decision action not yet undone (a whole batch at once)", _who)
def _undo(a, progress):
    from ..curation.decisions import undo

    res = undo(_open(a), who=a.who, source="cli")
    if res is None:
        print("nothing to undo")
    else:
        print(f"reverted action {res.action_id} ({len(res.candidate_ids)} candidates) with action {res.undo_action_id}")
    return 0


def _audit_args(p):
    _add_project(p)
    p.add_argument("--limit", type=int, default=30, help="actions to list (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")


@command("audit", "the audit log: every decision, batch, undo and threshold change, newest first", _audit_args)
def _audit(a, progress):
    from ..curation.decisions import audit_log

    rows = audit_log(_open(a), a.limit)
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("the audit log is empty")
    for r in rows:
        d = r["detail"]
        what = {"decision": lambda: f"{d.get('decision') or 'automatic'} on {r['n']} candidate(s)"
                                    + (f" (filter {d['filter']})" if d.get("filter") else ""),
                "undo": lambda: f"undo of action {r['undoes']} ({r['n']} candidate(s))",
                "thresholds": lambda: f"thresholds {d.get('what')} (ERM model {d.get('model')})",
                "thresholds-undo": lambda: f"undo of threshold change {r['undoes']}"}.get(r["kind"], lambda: r["kind"])()
        print(f"{r['id']:>6}  {r['at']}  {r['source']:<3}  {r['who']}: {what}{'  [undone]' if r['undone'] else ''}")
    return 0


def _queue_args(p):
    _add_project(p)
    p.add_argument("-n", "--limit", type=int, default=30, help="candidates to list, 0 for all (default: %(default)s)")
    p.add_argument("--direction", help="only this direction, e.g. '0->1' (quoted: > is the shell's)")
    p.add_argument("--all", action="store_true", help="also the decided candidates (at the back of the queue)")
    p.add_argument("--csv", metavar="FILE", help="write the queue as CSV (id, direction, priority, every signal, "
                                                 "decision, result path), '-' for standard output; an existing file "
                                                 "only with --force, never inside the project's stores")
    p.add_argument("--force", action="store_true", help="with --csv: replace an existing file")


@command("queue", "the review queue: the candidates worth a look first, with the signals that put them there", _queue_args)
def _queue(a, progress):
    import csv

    from ..project.errors import ConfigError
    from ..curation.queue import SIGNALS
    from ..curation.review import Filter, ReviewIndex

    if a.limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {a.limit}")
    if a.force and not a.csv:
        raise ConfigError("--force replaces the --csv file; give --csv FILE too")
    project = _open(a)
    if a.csv and a.csv != "-":
        from ..curation.export import check_output

        check_output(project, Path(a.csv), "queue", force=a.force, flag="--csv")  # before any work: nothing is written over
    index = ReviewIndex(project)
    if a.direction and a.direction not in {f"{i}->{j}" for i, j in index.directions}:
        raise ConfigError(f"--direction {a.direction}: the project's directions are "
                          f"{', '.join(f'{i}->{j}' for i, j in index.directions) or 'none (no candidates yet)'}")
    ids = index.query(Filter(direction=a.direction, sort="queue"))
    at = index.pos.lookup(ids)[0]
    if not a.all:
        ids, at = ids[index.manual[at] == 0], at[index.manual[at] == 0]
    if a.limit:
        ids, at = ids[:a.limit], at[:a.limit]
    q = index.queue
    sig = q.signals(index.Psi, index.P, at)
    kept = index.kept()[at]
    decision = [("accepted" if m == 1 else "rejected" if m == 2 else "kept" if k else "pruned") + ("" if m else " (auto)")
                for m, k in zip(index.manual[at], kept)]
    names = project.class_names
    if a.csv:
        rows = project.db.execute(f"select id, path from candidates where id in ({','.join('?' * len(ids))})",
                                  [int(i) for i in ids]).fetchall() if len(ids) else []
        paths = dict(rows)
        out = sys.stdout if a.csv == "-" else open(a.csv, "w", newline="")
        try:
            w = csv.writer(out)
            w.writerow(["rank", "id", "direction", "priority", *SIGNALS, "psi", "rho", "decision", "path"])
            for r, (cid, k) in enumerate(zip(ids, at)):
                w.writerow([r + 1, int(cid), f"{names[index.src[k]]}->{names[index.tgt[k]]}",
                            round(float(sum(v[r] for v in sig.values())), 4), *(round(float(sig[s][r]), 4) for s in SIGNALS),
                            index.psi[k], index.rho[k], decision[r], paths.get(int(cid))])
        finally:
            if out is not sys.stdout:
                out.close()
        if a.csv != "-":
            print(f"wrote {len(ids)} candidates in queue order to {a.csv}")
        return 0
    if not len(ids):
        print("the queue is empty: every candidate has a decision" if len(index) else "no candidates yet")
        return 0
    print(f"{'rank':>5} {'id':>8}  {'direction':<24} {'priority':>8}  reasons")
    for r, (cid, k) in enumerate(zip(ids, at)):
        why = ", ".join(f"{s} {sig[s][r]:.2f}" for s in sorted(SIGNALS, key=lambda s: -sig[s][r]) if sig[s][r] >= 0.2)
        print(f"{r + 1:>5} {int(cid):>8}  {names[index.src[k]] + '->' + names[index.tgt[k]]:<24} "
              f"{sum(float(v[r]) for v in sig.values()):>8.2f}  {why or '-'}  [{decision[r]}]")
    return 0
