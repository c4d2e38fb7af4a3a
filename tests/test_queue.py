"""The review queue (ddb_core/curation/queue.py): each signal measures what it says, the order puts the undecided
first by priority, the command line lists the same order, `ddb export` writes what the Export screen
writes, and in a real browser "n" shows the first undecided candidate of the queue."""

from __future__ import annotations

import contextlib
import csv
import io
import re

import numpy as np
import pytest

from ddb_core import api
from ddb_core.cli import main
from ddb_core.curation.decisions import set_decision, set_thresholds


def _ddb(*args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


def test_each_signal_measures_what_it_says(candidates_project):
    from ddb_core.curation.queue import SIGNALS

    p = candidates_project
    rows = p.db.execute("select id, source_label, target_label, psi, rho from candidates where target_label = 1 "
                        "order by id").fetchall()
    a, b, c = rows[0], rows[1], rows[2]
    set_thresholds(p, Psi={0: a[3]}, P={1: 1e9})  # a sits on Ψ; no ρ clears P, so every ψ-kept one splits the rules
    p.db.execute("update candidates set mask_change = 0.2 where mask_change is null or 1")
    p.db.execute("update candidates set mask_change = 0.0 where id = ?", [b[0]])  # repainted nothing
    p.db.execute("update masks set score = 0.1 where id = (select mask_id from candidates where id = ?)", [c[0]])
    p.db.conn.commit()
    index = api.review_index(p)
    q = index.queue
    at = index.pos.lookup(np.array([a[0], b[0], c[0]]))[0]
    sig = q.signals(index.Psi, index.P, at)
    assert set(sig) == set(SIGNALS)
    assert sig["near Ψ"][0] == pytest.approx(1.0)  # on the threshold
    assert sig["unchanged"][1] == pytest.approx(1.0) and sig["unchanged"][0] == pytest.approx(0.0)
    assert sig["weak box"][2] == pytest.approx(0.9, abs=1e-6)
    split = (index.psi[at] < a[3]) != (index.rho[at] > 1e9)
    assert np.array_equal(sig["rules split"] == 1, split)
    why = index.detail(int(b[0]))["queue"]
    assert why["signals"]["unchanged"] == pytest.approx(1.0)
    assert any(r.startswith("unchanged 1.00 (change inside the mask 0.000)") for r in why["reasons"])
    assert why["priority"] == pytest.approx(sum(why["signals"].values()), abs=1e-2)


def test_the_map_signal_is_high_near_the_source_class(candidates_project):
    p = candidates_project
    index = api.review_index(p)
    mid = p.active_erm_id
    sources = p.db.execute("select id, label from samples where split = 'train'").fetchall()
    pts = [{"kind": "source", "item_id": sid, "erm_model_id": mid, "method": "pca", "x": 10.0 * lab, "y": 0.0}
           for sid, lab in sources]
    cands = p.db.execute("select id, source_label, target_label from candidates order by id").fetchall()
    # the first candidate sits on its source class's centre, the second on its target's
    pts += [{"kind": "candidate", "item_id": cid, "erm_model_id": mid, "method": "pca",
             "x": 10.0 * (s if k == 0 else t), "y": 0.0} for k, (cid, s, t) in enumerate(cands[:2])]
    p.db["map_points"].insert_all(pts, replace=True)
    p.db.conn.commit()
    index = api.review_index(p)
    at = index.pos.lookup(np.array([cands[0][0], cands[1][0], cands[2][0]]))[0]
    like = index.queue.signals(index.Psi, index.P, at)["like source"]
    assert like[0] == pytest.approx(1.0) and like[1] == pytest.approx(0.0) and like[2] == 0.0  # no point: 0


def test_the_queue_puts_the_undecided_first_by_priority(candidates_project):
    p = candidates_project
    index = api.review_index(p)
    order = index.query(__import__("ddb_core.curation.review", fromlist=["Filter"]).Filter(sort="queue"))
    pr = index.queue.priority(index.Psi, index.P)
    at = index.pos.lookup(order)[0]
    assert np.all(np.diff(pr[at]) <= 1e-4)  # highest first (16-bit keys: ties within 1e-4)
    top = int(order[0])
    assert index.queue.next_undecided(index.Psi, index.P) == top
    set_decision(p, [top], "accept")
    index = api.review_index(p)
    order2 = index.query(__import__("ddb_core.curation.review", fromlist=["Filter"]).Filter(sort="queue"))
    assert int(order2[-1]) == top  # decided: at the back
    assert index.queue.next_undecided(index.Psi, index.P) == int(order[1])


def test_ddb_queue_lists_the_same_order_and_says_why(candidates_project, tmp_path):
    p = candidates_project
    index = api.review_index(p)
    from ddb_core.curation.review import Filter

    want = [int(i) for i in index.query(Filter(sort="queue"))]
    text = _ddb("queue", "-p", str(p.root), "-n", "0")
    listed = [int(m.group(1)) for m in re.finditer(r"^\s+\d+\s+(\d+)\s", text, flags=re.M)]
    assert listed == want
    _ddb("queue", "-p", str(p.root), "--csv", str(tmp_path / "q.csv"), "-n", "3")
    rows = list(csv.DictReader(open(tmp_path / "q.csv")))
    assert [int(r["id"]) for r in rows] == want[:3]
    assert float(rows[0]["priority"]) >= float(rows[2]["priority"]) and rows[0]["path"].startswith("candidates/")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["queue", "-p", str(p.root), "--direction", "7->1"]) == 2
    assert "the project's directions are 0->1, 1->0" in err.getvalue()


def test_ddb_export_writes_the_dataset_and_the_bundle(candidates_project, tmp_path):
    import zipfile

    p = candidates_project
    chosen = p.db.execute("select min(id) from candidates").fetchone()[0]
    set_decision(p, [chosen], "accept")
    text = _ddb("export", "dataset", "-p", str(p.root), "--out", str(tmp_path / "ds"))
    n_gen = int(re.search(r"and (\d+) accepted samples", text).group(1))
    manifest = list(csv.DictReader(open(tmp_path / "ds" / "manifest.csv")))
    written = [r for r in manifest if r["file"]]  # the manifest lists every candidate; the kept ones have a file
    assert n_gen == len(written) == int(api.review_index(p).kept().sum())
    assert chosen in {int(r["candidate_id"]) for r in written}
    assert all((tmp_path / "ds" / r["file"]).is_file() for r in written)
    text = _ddb("export", "bundle", "-p", str(p.root), "--out", str(tmp_path / "b.zip"))
    assert "bundle with" in text and zipfile.is_zipfile(tmp_path / "b.zip")


def test_next_in_queue_in_a_real_browser(candidates_project):
    from test_browser_truth import CHROMIUM, _review, _wait_text

    if not CHROMIUM.exists():
        pytest.skip("Chromium is installed by `make test`")
    p = candidates_project
    with _review(p) as page:
        page.locator("body").click(position={"x": 5, "y": 5})
        index = api.review_index(p)
        first = index.queue.next_undecided(index.Psi, index.P)
        page.keyboard.press("n")
        _wait_text(page, "#review-info", rf"Candidate {first}\b")
        _wait_text(page, "#queue-why", r"review queue: #1 of \d+, priority")
        page.keyboard.press("a")  # accepted: saved, and the gallery (in queue order) moves on to the next one
        for _ in range(60):
            if p.db.execute("select decision from decisions where candidate_id = ?", [first]).fetchone():
                break
            page.wait_for_timeout(250)
        index = api.review_index(p)
        second = index.queue.next_undecided(index.Psi, index.P)
        assert second != first
        _wait_text(page, "#review-info", rf"Candidate {second}\b", 90)  # shown by the auto-advance
        _wait_text(page, "#queue-why", r"review queue: #1 of \d+")  # now first among the undecided
        third = index.queue.next_undecided(index.Psi, index.P, after=second)
        page.keyboard.press("n")  # "next": the first undecided one other than the one shown
        _wait_text(page, "#review-info", rf"Candidate {third}\b")
        _wait_text(page, "#queue-why", r"review queue: #2 of \d+")


def test_the_object_found_again_inside_the_mask_box_feeds_the_object_lost_signal(candidates_project, monkeypatch):
    """``ddb refind`` on the candidates of a langsam project: the detector's best box lying mostly inside the mask's
    box is the object found again; none is a score of 0, and the queue's *object lost* is 1 - the score (0 for the
    candidates it did not look at)."""
    from ddb_core.pipeline.generation import refind_objects
    from ddb_core.method.masking import LangSAMMasker

    masker = LangSAMMasker(None, None, None, box_threshold=0.3)
    # unit: boxes relative to a mask box of x 10..29, y 5..24 on a 40 x 60 image
    m = np.zeros((40, 60), np.uint8)
    m[5:25, 10:30] = 255
    monkeypatch.setattr(masker, "_boxes", lambda img, prompt: [(40, 0, 60, 40, 0.9),  # outside the mask's box
                                                              (8, 4, 28, 20, 0.6),  # mostly inside
                                                              (12, 6, 20, 14, 0.4)])
    assert masker.refind([np.zeros((40, 60, 3), np.uint8)], [m], "bird") == [(0.6, 2)]
    assert masker.refind([np.zeros((40, 60, 3), np.uint8)], [np.zeros((40, 60), np.uint8)], "bird") == [(0.0, 0)]
    p = candidates_project
    ids = [r[0] for r in p.db.execute("select id from candidates order by id")]
    langsam = ids[:3]  # these three as if masked by langsam: the others are not looked at
    p.db.execute(f"update masks set backend = 'langsam' where id in (select mask_id from candidates where id in "
                 f"({','.join('?' * 3)}))", langsam)
    p.db.conn.commit()
    looked = p.db.execute("select c.id from candidates c join masks m on m.id = c.mask_id where m.backend = 'langsam'")
    looked = [r[0] for r in looked]
    scores = iter([0.8, 0.0, 0.5] * 10)

    def boxes(img, prompt):  # a box at the image's centre, small enough to lie inside any mask's box around it
        h, w = img.shape[:2]
        return [(w / 2 - 1, h / 2 - 1, w / 2 + 1, h / 2 + 1, next(scores))]

    monkeypatch.setattr(masker, "_boxes", boxes)
    index = api.review_index(p)
    assert np.isnan(index.refound).all()
    assert refind_objects(p, masker) == len(looked) and refind_objects(p, masker) == 0  # done ones are not redone
    index = api.review_index(p)
    stored = dict(p.db.execute("select candidate_id, score from refinds").fetchall())
    assert set(stored) == set(looked) and sorted(stored.values())[-1] > 0 and 0.0 in stored.values()
    sig = index.queue.signals(index.Psi, index.P)["object lost"]
    for cid in ids:
        k = index.pos[cid]
        assert sig[k] == pytest.approx(1 - stored[cid] if cid in stored else 0.0)


def test_review_outcomes_count_what_the_reviewer_changes():
    from ddb_core.bench.review import review_outcomes

    auto = np.array([True, True, True, False, False, True])
    reviewer = np.array([False, True, True, True, False, False])  # what the reviewer would accept
    judge = np.array([False, True, False, True, False, False])  # what the judge sees as the target class
    order = np.array([0, 3, 2, 1, 4, 5])
    none, final0 = review_outcomes(auto, reviewer, judge, order, 0.0)
    assert none == {"reviewed": 0, "failures_left": 3, "good_pruned": 1, "accepted": 4, "failures_found": 0,
                    "failures_let_in": 0, "good_recovered": 0, "good_lost": 0}
    assert np.array_equal(final0, auto)
    half, final = review_outcomes(auto, reviewer, judge, order, 0.5)  # sees 0 (a failure, rejected), 3, 2
    assert half["reviewed"] == 3 and np.array_equal(final, [False, True, True, True, False, True])
    assert half["failures_left"] == 2 and half["failures_found"] == 1 and half["good_pruned"] == 0
    assert half["good_recovered"] == 1 and half["failures_let_in"] == 0 and half["good_lost"] == 0
    # a reviewer that accepts a pruned failure lets it in
    let_in, _ = review_outcomes(auto, np.ones(6, bool), judge, np.array([4, 0, 1, 2, 3, 5]), 1 / 6)
    assert let_in["failures_let_in"] == 1 and let_in["failures_left"] == 4


def test_bench_review_averages_random_order_over_many_permutations_and_checks_each_signal():
    from ddb_core.bench.review import PERMUTATIONS, random_order_figures, review_outcomes, signal_check

    rng = np.random.default_rng(0)
    auto, reviewer, judge = (rng.random(200) < 0.5 for _ in range(3))
    figs = random_order_figures(auto, reviewer, judge, (0.0, 0.1), PERMUTATIONS, seed=3)
    assert PERMUTATIONS >= 20 and len(figs["0.1"]["failures_found"]["values"]) == PERMUTATIONS
    values = figs["0.1"]["failures_found"]["values"]
    assert len(set(values)) > 1 and figs["0.1"]["failures_found"]["mean"] == pytest.approx(np.mean(values))
    assert figs["0"]["failures_found"]["values"] == [0] * PERMUTATIONS
    # the same permutations for the same seed: the figures can be made again
    assert random_order_figures(auto, reviewer, judge, (0.1,), PERMUTATIONS, seed=3)["0.1"] == figs["0.1"]
    one = review_outcomes(auto, reviewer, judge, np.random.default_rng(0).permutation(200), 0.1)[0]
    assert set(one) == set(figs["0.1"])
    from ddb_core.bench.review import signal_verdict, wilson

    failure = np.array([True, True, False, False, False, False, True, False])
    auto = np.array([True, False, True, False, True, False, False, True])  # wrong: 0 kept failure, 3 and 5 pruned good
    signals = {"good": np.array([1, 0.9, 0, 0, 0.1, 0, 0.6, 0], np.float32),  # flags 0, 1, 6: all failures
               "none": np.zeros(8, np.float32), "bad": np.array([0, 0, 1, 1, 1, 0, 0, 0.2], np.float32)}
    c = signal_check(signals, failure, auto)
    assert c["good"] == {"nonzero": 4, "flagged": 3, "failures_flagged": 3, "failures_all": 3, "n": 8,
                         "wrong_flagged": 1, "wrong_all": 3, "kept_failures_flagged": 1, "kept_failures_all": 1}
    assert c["none"]["flagged"] == 0 and c["none"]["nonzero"] == 0
    assert c["bad"]["failures_flagged"] == 0 and c["bad"]["wrong_flagged"] == 1 and c["bad"]["nonzero"] == 4
    lo, hi = wilson(30, 100)
    assert lo == pytest.approx(0.2189, abs=1e-3) and hi == pytest.approx(0.3958, abs=1e-3)
    assert signal_verdict(60, 100, 100, 1000) == "**higher**" and signal_verdict(2, 100, 100, 1000) == "**lower**"
    assert signal_verdict(11, 100, 100, 1000) == "no difference shown" and signal_verdict(0, 0, 1, 10) == "— (flags none)"
    from ddb_core.bench.review import signals_decision

    words = signals_decision({"a": ["no difference shown", "**higher**", "no difference shown"],
                              "b": ["**lower**", "no difference shown", "**lower**"],
                              "c": ["— (flags none)", "— (flags none)", "— (flags none)"]})
    assert "Stay: *a*." in words and "To remove (no better than chance at either): *b*." in words
    assert "flag nothing on these projects): *c*." in words and "not the failures it kept" in words
    assert "Stay: none." in signals_decision({"b": ["no difference shown"] * 3})


def test_the_review_section_states_a_difference_only_where_its_interval_excludes_zero():
    from ddb_core.bench.review import BUDGETS, ORDERS, review_markdown

    fig = {"reviewed": 1, "failures_left": 2, "failures_found": 3, "good_pruned": 0, "accepted": 5,
           "failures_let_in": 1, "good_recovered": 4, "good_lost": 0}
    from ddb_core.curation.queue import SIGNALS

    sig = {name: {"nonzero": 4, "flagged": 50, "failures_flagged": 45 if name == "near Ψ" else 0, "failures_all": 3,
                  "n": 1000, "wrong_flagged": 5, "wrong_all": 100} for name in SIGNALS}
    res = {"data_seeds": [0, 1], "command": "python -m ddb_core bench review --data-seeds 0 1", "seconds": 60,
           "permutations": 50,
           "per_data_seed": {d: {"candidates": 10, "judged_failures": 3, "reviewer_agrees_with_judge": 0.9,
                                 "signals": sig,
                                 "figures": {o: {f"{b:g}": fig for b in BUDGETS} for o in ORDERS}} for d in (0, 1)},
           "found_at_10": {"queue": 6, "random": 2, "rho": 3}, "recovered_at_10": {"queue": 8, "random": 0, "rho": 1},
           "let_in_at_10": {"queue": 2, "random": 1.5, "rho": 2},
           "random_range_at_10": {"failures_found": [0, 4], "failures_let_in": [0, 3]},
           "target_met": True,
           "difference": {"wga": {"mean": 0.02, "lo": -0.01, "hi": 0.05, "n_data": 2, "n_values": 6,
                                  "scope": "data seeds", "shown": False},
                          "mean_acc": {"mean": -0.03, "lo": -0.05, "hi": -0.01, "n_data": 2, "n_values": 6,
                                       "scope": "data seeds", "shown": True}}}
    md = review_markdown(res)
    assert "| queue | 10% | 2 | 4 | 0 | 6 | 2 | 8 | 0 |" in md and "(20 candidates, 6 failures by the judge)" in md
    assert "recovered 8 good candidates that automatic pruning had dropped, random order 0" in md
    assert "queue found 6 failures and let in 2; random order found 2 (95% of permutations: 0 to 4) and let in 1.5" in md
    assert "3.0× as many failures" in md and "is met" in md and "mean of 50 permutations" in md
    assert "| near Ψ | 8 | 100 | 90% / 0% | **higher** | 10% / 10% | no difference shown |" in md
    assert "| weak box | 8 | 100 | 0% / 0% | no difference shown |" in md
    assert "worst-group accuracy: +2.0 points [-1.0, +5.0]: no difference shown" in md
    assert "average accuracy: -3.0 points [-5.0, -1.0]: **lower**" in md


def test_a_refresh_shows_the_whole_gallery_by_id_and_the_filters_say_so(candidates_project):
    """After "next in queue" the sort reads "queue"; a refresh (page load, a finished job) shows the gallery by id,
    so every filter it leaves on screen must be reset with it, value by value in the order of its outputs."""
    import gradio as gr

    from ddb_core.curation.review import Filter
    from ui import review
    from ui.state import AppState

    state = AppState(str(candidates_project.root), build_demo=False)
    with gr.Blocks():
        v = review.build(state)
    outputs, values = review.refresh_outputs(v), review.refresh(state, v)
    assert len(outputs) == len(values)
    shown = dict(zip([id(o) for o in outputs], values))
    value = lambda comp: getattr(shown[id(comp)], "value", shown[id(comp)])
    assert [value(c) for c in (v.f_method, v.f_status, v.f_sort, v.f_psi, v.f_rho)] == ["", "all", "id", "", ""]
    index = api.review_index(candidates_project)
    assert list(shown[id(v.nav)]["ids"]) == [int(i) for i in index.query(Filter(sort="id"))]
