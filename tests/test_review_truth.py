"""The review screen shows the state the project holds: the core of it (what the counts, plots and
retraining read), checked against the database."""

from __future__ import annotations

import pytest


def test_the_default_P_follows_the_scores_until_every_candidate_is_scored(candidates_project):
    """Issue: P was frozen from the first candidates scored. Now it is provisional (not stored) while a
    class's candidates are partly scored, and fixed once all of them are."""
    from ddb_core.curation.decisions import thresholds
    from ddb_core.method.pruning import suggest_P

    p = candidates_project
    p.set_meta("thresholds", {})  # no default stored yet
    rows = list(p.db.query("select id, rho from candidates where method = 'ddb' and target_label = 1 order by id"))
    assert len(rows) >= 2
    p.db.execute("update candidates set psi = null, rho = null where id = ?", [rows[0]["id"]])  # one not scored yet
    p.db.conn.commit()
    th = thresholds(p)
    d = th["P_default"]["ddb"][1]
    assert d["provisional"] and d["n"] == len(rows) - 1 and d["of"] == len(rows)
    assert th["P"][1] == pytest.approx(suggest_P([r["rho"] for r in rows[1:]]))
    assert "1" not in (p.get_meta("thresholds")["by_model"][str(p.active_erm_id)]["P"].get("ddb") or {})  # not stored
    p.db.execute("update candidates set psi = 0.5, rho = ? where id = ?", [rows[0]["rho"], rows[0]["id"]])
    p.db.conn.commit()
    th = thresholds(p)
    assert not th["P_default"]["ddb"][1].get("provisional") and th["P"][1] == pytest.approx(
        suggest_P([r["rho"] for r in rows]))
    stored = p.get_meta("thresholds")["by_model"][str(p.active_erm_id)]["P"]["ddb"]["1"]
    assert stored == pytest.approx(th["P"][1])  # fixed from now on


def test_candidates_of_a_method_that_does_not_prune_are_kept_scored_or_not(candidates_project):
    """SCGS does not prune: its unscored (or stale) candidates go into retraining all the same."""
    from ddb_core.curation.decisions import set_method_pruning
    from ddb_core.method.retraining import accepted_candidates
    from ddb_core.curation.review import ReviewIndex

    p = candidates_project
    ids = [r[0] for r in p.db.execute("select id from candidates order by id limit 3")]
    p.db.execute(f"update candidates set method = 'scgs', psi = null, rho = null where id in ({','.join('?' * 3)})", ids)
    p.db.conn.commit()
    set_method_pruning(p, "scgs", False)
    assert {c["id"] for c in accepted_candidates(p, "scgs")} == set(ids)
    index = ReviewIndex(p)
    assert all(index.kept_one(index.pos[i]) for i in ids)
    assert index.kept()[[index.pos[i] for i in ids]].all()
    set_method_pruning(p, "scgs", True)  # pruned like DDB's: unscored candidates are not kept
    assert accepted_candidates(p, "scgs") == []


def test_progress_shows_its_counter_at_once_and_a_steady_eta(monkeypatch):
    """A stage shows 0 of N before its first unit (textual inversion showed nothing for minutes), and
    its time left is the average since the first unit, given once a few units are behind it (the
    ERM estimate jumped 745 → 317 → 354 s when it counted the loading time and one step at a time)."""
    import ddb_core.project.progress as progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    seen = []
    tracker = progress.ProgressTracker("invert <x>", 10, seen.append)
    assert (seen[0].done, seen[0].total, seen[0].eta_s) == (0, 10, None)
    clock[0] += 60  # loading the model: not counted in the rate
    for k in range(1, 6):
        clock[0] += 2
        tracker.update(k)
    etas = [p.eta_s for p in seen[1:]]
    assert etas[:3] == [None, None, None]  # too early to say
    assert etas[3] == pytest.approx(6 * 2.0) and etas[4] == pytest.approx(5 * 2.0)  # 2 s per unit, loading excluded
