"""The review model and the curation app driven through gradio_client (a real server on 127.0.0.1)."""

import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from ddb_core.curation.decisions import set_thresholds, summary, thresholds
from ddb_core.curation.review import Filter, ReviewIndex


def test_review_index_counts_filters_decisions_and_undo(candidates_project):
    p = candidates_project
    idx = ReviewIndex(p)
    assert len(idx) == 8 and idx.directions == [(0, 1), (1, 0)]
    th = thresholds(p)
    s = summary(p, th)
    c = idx.counts()
    assert {d: v["kept"] for d, v in c.items()} == {d: v["kept"] for d, v in s.items()}
    # Counts at other thresholds equal the pruning module's decisions at those thresholds.
    Psi = {0: 0.9, 1: 0.9}
    P = {0: float(np.nanmedian(idx.rho)), 1: float(np.nanmedian(idx.rho))}
    expected = summary(p, {"Psi": Psi, "P": P})
    assert {d: v["kept"] for d, v in idx.counts(Psi, P).items()} == {d: v["kept"] for d, v in expected.items()}
    # Filters and sort.
    ids01 = idx.query(Filter(direction="0->1"))
    assert len(ids01) == 4 and set(ids01) == {r[0] for r in p.db.execute("select id from candidates where source_label = 0")}
    by_rho = idx.query(Filter(sort="-rho"))
    rhos = [idx.rho[idx.pos[int(i)]] for i in by_rho]
    assert rhos == sorted(rhos, reverse=True)
    assert len(idx.query(Filter(rho_range=(np.inf, np.inf)))) == 0
    # Decisions are saved at once (DB row + audit) and reflected in the arrays; undo walks back.
    cid = int(ids01[0])
    idx.decide([cid], "reject")
    assert p.db.execute("select decision from decisions where candidate_id = ?", [cid]).fetchone()[0] == "reject"
    assert [int(i) for i in idx.query(Filter(status="rejected"))] == [cid]
    assert idx.kept()[idx.pos[cid]] == False  # noqa: E712
    assert idx.undo() == [cid]
    assert p.db.execute("select count(*) from decisions").fetchone()[0] == 0 and idx.manual[idx.pos[cid]] == 0
    d = idx.detail(cid)
    assert d["direction"] == "0->1" and d["source_path"].endswith(".png") and d["prompt"]


def _wait(fn, timeout=120, every=0.5):
    t0 = time.time()
    while time.time() - t0 < timeout:
        out = fn()
        if out:
            return out
        time.sleep(every)
    raise AssertionError("timed out")


def test_app_through_gradio_client(candidates_project):
    from gradio_client import Client

    from ui.app import build_app, launch_kwargs

    p = candidates_project
    set_thresholds(p, Psi={0: 1.0, 1: 1.0}, P={0: -1e9, 1: -1e9})  # everything kept
    app = build_app(str(p.root), build_demo=False)
    try:
        app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_kwargs(str(p.root)))
        client = Client(app.local_url, verbose=False)
        n = app.n_sliders
        low = p.db.execute("select min(rho) from candidates").fetchone()[0] - 1e-9  # below every ρ, inside the slider
        out = client.predict(api_name="/load")
        texts = " ".join(str(o) for o in out)
        assert "kept in all: 8" in texts and "Candidate" in texts
        # Moving a Ψ slider to 0 prunes everything of that source class (nothing saved yet).
        moved = client.predict(*([0.0, 1.0][:n] + [1.0] * (n - 2) + [low] * n + ["0->1"]), api_name="/threshold_psi_0")
        assert "kept in all: 4" in moved[0]
        assert thresholds(p)["Psi"][0] == 1.0  # not saved by a move
        # Releasing saves the thresholds with the project.
        client.predict(*([0.0, 1.0] + [low] * n + ["", "all", "id", "", "", ""]), api_name="/save_psi_0")
        assert thresholds(p)["Psi"][0] == 0.0
        # Reject the shown candidate, then undo: the DB follows.
        first = client.predict(api_name="/load")
        info = next(str(o) for o in first if "**Candidate " in str(o))
        shown = int(info.split("**Candidate ")[1].split("**")[0])
        client.predict(api_name="/decide_reject")
        assert p.db.execute("select decision from decisions where candidate_id = ?", [shown]).fetchone()[0] == "reject"
        assert p.db.execute("select count(*) from audit").fetchone()[0] == 1
        client.predict(api_name="/undo")
        assert p.db.execute("select count(*) from decisions").fetchone()[0] == 0
        # Retrain on the accepted samples; the job finishes and stores a report.
        client.predict("1.0", "", 5e-4, 1, 2, 16, "0", 0.0, False, api_name="/retrain")  # γ, γ grid (none), lr, epochs, checks, …
        _wait(lambda: not app.state.job.running, timeout=300)
        assert app.state.job.snapshot().state == "done", app.state.job.snapshot().error
        assert p.db.execute("select count(*) from reports").fetchone()[0] == 1
        ddb = p.models("ddb")[-1]  # the app's "val checks per epoch" reached the run: one check inside the epoch
        assert ddb["config"]["evals_per_epoch"] == 2 and len(ddb["metrics"]["history"][0]["checks"]) == 1
        # Only the project's files are served.
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(app.local_url + "gradio_api/file=/etc/passwd", timeout=10)
    finally:
        app.close()


def test_a_plot_selection_holds_exactly_the_dots_it_covers():
    from ui import plots

    rng = np.random.default_rng(0)
    psi, rho = 1 - rng.beta(1, 20, 5000), rng.normal(0.2, 0.1, 5000)
    frame = plots.psi_rho_frame(psi, rho, 0.9, (-0.1, 0.5))
    x = plots.logit(psi)
    cx, cy = frame.pixels(x, rho)
    left, right = frame.left + frame.width * 0.25, frame.left + frame.width * 0.75
    box = [(left, frame.top), (right, frame.top), (right, frame.top + frame.height), (left, frame.top + frame.height)]
    chosen = plots.selected_in(frame, x, rho, box)
    inside = np.isfinite(x) & np.isfinite(rho)  # every dot is drawn, one outside the range on the frame's edge
    col = cx + frame.left
    assert (chosen <= (inside & (col >= left - 1) & (col <= right + 1))).all()  # nothing outside the box
    assert (chosen >= (inside & (col >= left + 1) & (col <= right - 1))).all()  # everything well inside it
    assert 0 < chosen.sum() < len(x)
    k = int(np.nonzero(inside)[0][7])
    hit = plots.nearest(frame, x, rho, (frame.left + cx[k], frame.top + cy[k]))
    assert hit is not None and (cx[hit], cy[hit]) == (cx[k], cy[k])  # the dot under the click (or one on it)
    assert plots.nearest(frame, x, rho, (-100, -100)) is None
    # the map and the plot of the ψ–ρ share the selection filter of the review model
    img, frame2 = plots.psi_rho_scatter(psi, rho, np.ones(len(psi), int), 0.9, 0.2, (-0.1, 0.5))
    assert frame2 == frame and img.shape == (frame.image_h, frame.image_w, 3)


def test_a_selection_restricts_the_gallery_to_its_ids(candidates_project):
    idx = ReviewIndex(candidates_project)
    some = [int(i) for i in idx.ids[::3]]
    assert [int(i) for i in idx.query(Filter(ids=np.array(some)))] == some
    assert [int(i) for i in idx.query(Filter(ids=np.array(some + [10 ** 9])))] == some  # unknown ids are ignored
    assert len(idx.query(Filter(ids=np.array([], np.int64)))) == 0
    both = idx.query(Filter(ids=np.array(some), direction="0->1"))
    assert set(both) <= set(some) and all(idx.src[idx.pos[int(i)]] == 0 for i in both)


def test_a_decision_on_a_candidate_changed_elsewhere_says_so_and_the_index_catches_up(candidates_project):
    """A decision stored by `ddb` after this screen was drawn: the review model takes it before its next use, and a
    decision on that candidate from the stale screen says what it replaced; this session's own changes do not count."""
    from types import SimpleNamespace

    from gradio.context import LocalContext

    from ddb_core.curation.decisions import set_decision
    from ui import review_actions
    from ui.state import AppState

    p = candidates_project
    state = AppState(str(p.root), build_demo=False)
    index = state.index()
    ids = [int(i) for i in index.ids]
    token = LocalContext.request.set(SimpleNamespace(session_hash="tab-1", username=None))
    try:
        state.mark_shown(index, True, state.version())
        assert review_actions.changed_elsewhere(state, ids[0]) is None
        set_decision(p, [ids[0]], "reject", who="bob", source="cli")  # from the command line
        assert index.manual[index.pos[ids[0]]] == 0  # not seen yet
        assert state.index() is index and index.manual[index.pos[ids[0]]] == 2  # caught up on the next use
        assert review_actions.changed_elsewhere(state, ids[0]) == {"who": "bob", "source": "cli", "new": "reject"}
        nav = {"ids": ids, "pos": 0, "page": 0}
        out = review_actions.decide(state, "accept", nav)
        assert "Candidate %d had been changed elsewhere" % ids[0] in out[-2] and "bob: reject" in out[-2]
        assert p.db.execute("select decision from decisions where candidate_id = ?", [ids[0]]).fetchone()[0] == "accept"
        # this session's own decision is not "elsewhere"
        out = review_actions.decide(state, "reject", {**nav, "pos": 1})
        assert "changed elsewhere" not in out[-2]
        # u undoes this session's latest only (the accept above was this session's too, the cli's reject is not)
        undone = review_actions.undo(state, nav)
        assert "your rejection of candidate %d" % ids[1] in undone[-2]
        undone = review_actions.undo(state, nav)
        assert "your acceptance of candidate %d" % ids[0] in undone[-2]
        assert "Nothing to undo" in review_actions.undo(state, nav)[-2]
        assert p.db.execute("select decision from decisions where candidate_id = ?", [ids[0]]).fetchone()[0] == "reject"
        # another reviewer's action: only from the audit list, and never over a later change
        cli_action = p.db.execute("select id from actions where kind = 'decision' and who = 'bob'").fetchone()[0]
        assert "| bob | cli | reject 1 candidate" in review_actions.audit_table(state)
        msg, *_ = review_actions.audit_undo(state, cli_action, nav)
        assert "undone: 1 candidate(s) restored" in msg
        assert p.db.execute("select count(*) from decisions where candidate_id = ?", [ids[0]]).fetchone()[0] == 0
        set_decision(p, [ids[2]], "reject", who="bob", source="cli")
        first = p.db.execute("select max(id) from actions").fetchone()[0]
        set_decision(p, [ids[2]], "accept", who="carol", source="cli")
        msg, *_ = review_actions.audit_undo(state, first, nav)
        assert "0 candidate(s) restored; 1 changed since by a later action" in msg
        assert p.db.execute("select decision from decisions where candidate_id = ?", [ids[2]]).fetchone()[0] == "accept"
        with pytest.raises(Exception, match="undone already"):
            review_actions.audit_undo(state, first, nav)
    finally:
        LocalContext.request.reset(token)
