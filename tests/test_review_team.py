"""The review screen at a practised reviewer's pace and with a team, in a real browser (Debian's Chromium with
Playwright): every key press is one action, processed in order; the review keys act only on the Review screen; a
typed threshold is saved once, rounded to the step; a change made by `ddb` or another page appears without a
click; a stale slider cannot overwrite another's threshold; `u` undoes only this reviewer's own decisions; Refresh
keeps the filters and the shown candidate. After each step the screen is compared with the database."""

import re
import subprocess
import sys
import time

import numpy as np
import pytest

from ddb_core.curation.decisions import set_decision, thresholds
from ddb_core.method.retraining import accepted_candidates
from test_browser import CHROMIUM, _choose, _wait_text
from test_browser_truth import _agrees, _review, _shown, _threshold_actions

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is installed by `make test` (apt-get install chromium)")


def _decided(p) -> dict:
    p.db.conn.commit()
    return dict(p.db.execute("select candidate_id, decision from decisions").fetchall())


def _shown_id(page) -> int:
    return int(re.search(r"Candidate (\d+)", page.locator("#review-info").inner_text()).group(1))


def _until(check, timeout_s: float = 30, what: str = "the condition"):
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not hold within {timeout_s}s")


def _ids(p) -> list[int]:
    return [r[0] for r in p.db.execute("select id from candidates order by id")]


def test_quick_key_presses_each_count_once_in_order(candidates_project):
    p = candidates_project
    ids = _ids(p)
    assert len(ids) >= 8
    with _review(p) as page:
        page.locator("body").click(position={"x": 5, "y": 5})
        assert _shown_id(page) == ids[0]
        # five → at 0.15 s: five candidates on, not two
        for _ in range(5):
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(150)
        _until(lambda: _shown_id(page) == ids[5], what=f"candidate {ids[5]} shown")
        for _ in range(5):
            page.keyboard.press("ArrowLeft")
            page.wait_for_timeout(100)
        _until(lambda: _shown_id(page) == ids[0], what=f"candidate {ids[0]} shown")
        # seven `r` 0.1 s apart: seven rejections, each of the next candidate
        for _ in range(7):
            page.keyboard.press("r")
            page.wait_for_timeout(100)
        _until(lambda: len(_decided(p)) == 7, what="seven decisions stored")
        assert _decided(p) == {i: "reject" for i in ids[:7]}
        _until(lambda: _shown_id(page) == ids[7], what="the eighth candidate shown")
        _agrees(page, p)
        # three `u` 0.1 s apart: the three latest undone, newest first
        for _ in range(3):
            page.keyboard.press("u")
            page.wait_for_timeout(100)
        _until(lambda: len(_decided(p)) == 4, what="three decisions undone")
        assert _decided(p) == {i: "reject" for i in ids[:4]}
        _wait_text(page, "#review-info", rf"Undone\*?\*?: your rejection of candidate {ids[4]}\b")
        _agrees(page, p)

        # the review keys do nothing on another screen; the Retrain screen counts what goes in as stored now
        set_decision(p, [ids[7]], "accept", source="cli")
        page.get_by_role("tab", name="Retrain").click()
        text = _wait_text(page, "#retrain-count", r"\b1 accepted by hand")  # read again when the screen is shown
        counts = re.findall(r": (\d+) \((\d+) kept automatically, (\d+) accepted by hand\)", text)
        assert sum(int(c[0]) for c in counts) == len(accepted_candidates(p))
        assert sum(int(c[2]) for c in counts) == 1  # the one accepted by `ddb` a moment ago
        page.locator("body").click(position={"x": 5, "y": 5})
        for key in ("r", "a", "u", "n", "ArrowRight"):
            page.keyboard.press(key)
        page.wait_for_timeout(1500)
        assert _decided(p) == {**{i: "reject" for i in ids[:4]}, ids[7]: "accept"}
        page.get_by_role("tab", name="Review").click()
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("a")
        _until(lambda: len(_decided(p)) == 6, what="the accept on the Review screen stored")
        _agrees(page, p)


def test_a_typed_threshold_is_saved_once_rounded_to_the_step(candidates_project):
    p = candidates_project
    with _review(p) as page:
        _agrees(page, p)
        rng = page.locator("#p-1 input[type=range]")
        lo, hi, step = (float(rng.get_attribute(a)) for a in ("min", "max", "step"))
        box = page.locator("#p-1 input[type=number]")
        decimals = max(0, -int(round(__import__("math").log10(step))))

        def typed(fraction: float) -> float:
            return lo + (hi - lo) * fraction + step * 0.37  # between two steps

        for fraction, commit in ((0.3, "Tab"), (0.6, "Enter")):
            before = _threshold_actions(p)
            value = typed(fraction)
            box.click()
            box.press("Control+a")
            # typed at a practised reviewer's pace (a key every 0.1 s); typed with no pause at all, Chromium 150
            # drops a digit now and then while the box's earlier input is echoed back (a known limit, in the README)
            box.type(f"{value:.{decimals + 3}f}", delay=100)
            box.press(commit)
            _until(lambda: _threshold_actions(p) == before + 1, what=f"the value typed and {commit} saved")
            want = round(round(value / step) * step, decimals)
            assert thresholds(p)["P"][1] == pytest.approx(want, abs=step / 100)
            page.wait_for_timeout(1500)
            assert _threshold_actions(p) == before + 1  # once
            _until(lambda: abs(float(box.input_value()) - want) < step / 100, what="the box shows the stored value")
            _wait_text(page, "#threshold-msg", r"Saved: P waterbird")
            _agrees(page, p)
        # a click into the box saves nothing
        before = _threshold_actions(p)
        box.click()
        page.wait_for_timeout(1500)
        page.locator("body").click(position={"x": 5, "y": 5})
        page.wait_for_timeout(1500)
        assert _threshold_actions(p) == before
        # three arrow keys 0.3 s apart on the slider: three saves, and the last value stored and shown
        start = thresholds(p)["P"][1]
        rng.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(300)
        _until(lambda: _threshold_actions(p) == before + 3, what="three key presses saved")
        assert thresholds(p)["P"][1] == pytest.approx(start + 3 * step, abs=step / 100)
        _agrees(page, p)


def test_changes_from_the_command_line_and_another_page_appear_and_are_not_overwritten(candidates_project):
    from ui.screenshot import open_review

    p = candidates_project
    ids = _ids(p)
    with _review(p) as page:
        _agrees(page, p)
        # `ddb decide` and `ddb prune` while the page is open: the page shows them without a click
        cli = [sys.executable, "-m", "ddb_core"]
        subprocess.run(cli + ["decide", "-p", str(p.root), "--reject", str(ids[5])], check=True, capture_output=True)
        rng = page.locator("#p-1 input[type=range]")
        lo, hi, step = (float(rng.get_attribute(a)) for a in ("min", "max", "step"))
        other = round(lo + (hi - lo) * 0.8, 6)
        subprocess.run(cli + ["prune", "-p", str(p.root), "--P", f"1={other}"], check=True, capture_output=True)
        _until(lambda: abs(float(page.locator("#p-1 input[type=number]").input_value()) - other) < step,
               what="the slider shows the P set by ddb")
        _agrees(page, p)
        _wait_text(page, "#threshold-msg", r"changed elsewhere")

        # a second page (another reviewer without sign-in) sets P; the first page's next key press on that slider
        # saves either nothing (its screen was stale) or one step from the second page's value — never from its own old one
        page2 = page.context.browser.new_page(viewport={"width": 1600, "height": 1800})
        open_review(page2, page.url)
        box2 = page2.locator("#p-1 input[type=number]")
        theirs = round(round((lo + (hi - lo) * 0.2) / step) * step, 6)
        before = _threshold_actions(p)
        box2.click()
        box2.press("Control+a")
        box2.type(f"{theirs}", delay=100)  # a practised pace, as above
        box2.press("Enter")
        _until(lambda: _threshold_actions(p) == before + 1, what="the second page's P saved")
        rng.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_timeout(2500)
        stored = thresholds(p)["P"][1]
        assert stored == pytest.approx(theirs, abs=step / 100) or stored == pytest.approx(theirs - step, abs=step / 100)
        _until(lambda: abs(float(page.locator("#p-1 input[type=number]").input_value()) - stored) < step / 100,
               what="the first page's slider shows the stored P")
        _agrees(page, p)

        # each page's `u` undoes its own decision only
        page.locator("body").click(position={"x": 5, "y": 5})
        first = _shown_id(page)
        page.keyboard.press("r")
        _until(lambda: _decided(p).get(first) == "reject", what="page 1's rejection stored")
        page2.locator("body").click(position={"x": 5, "y": 5})
        page2.keyboard.press("ArrowRight")
        page2.keyboard.press("ArrowRight")
        _until(lambda: _shown_id(page2) == ids[2], what="page 2 on the third candidate")
        page2.keyboard.press("a")
        _until(lambda: _decided(p).get(ids[2]) == "accept", what="page 2's acceptance stored")
        page.keyboard.press("u")  # page 1: its own rejection goes, page 2's acceptance stays
        _until(lambda: first not in _decided(p), what="page 1's rejection undone")
        assert _decided(p).get(ids[2]) == "accept" and _decided(p).get(ids[5]) == "reject"
        page.keyboard.press("u")  # nothing more of page 1's: the rejection by `ddb` and page 2's stay
        _wait_text(page, "#review-info", r"Nothing to undo")
        assert _decided(p) == {ids[2]: "accept", ids[5]: "reject"}
        _agrees(page, p)
        _agrees(page2, p)
        page2.close()


def test_the_browser_benchmark_times_each_press_until_the_screen_agrees(candidates_project):
    """`bench.review_browser` (the redraw budgets) on a small project: every press is one decision and is timed."""
    from ddb_core.bench.review_browser import browser_markdown, measure

    p = candidates_project
    res = measure(p.root, presses=2, filters=1)
    assert res["candidates"] == len(_ids(p)) and res["key_press"]["n"] == 2 and res["filter_change"]["n"] == 1
    assert len(_decided(p)) == 2  # r, then a, on two candidates in turn
    assert 0 < res["key_press"]["median_ms"] <= res["key_press"]["p95_ms"] <= res["key_press"]["max_ms"] < 60_000
    md = browser_markdown({"rows": [{"project": "tiny", **res}], "budget_ms": 1000, "quiet_ms": 600, "command": "x"})
    assert "| tiny | 8 |" in md or f"| tiny | {res['candidates']} |" in md
    # several runs: each statistic the median over the runs, every run's p95 listed
    from ddb_core.bench.review_browser import _over_runs

    other = {"candidates": res["candidates"], "key_press": {"n": 2, "median_ms": 5.0, "p95_ms": 7.0, "max_ms": 9.0},
             "filter_change": {"n": 1, "median_ms": 3.0, "p95_ms": 3.0, "max_ms": 3.0}}
    row = _over_runs([res, other, other])
    assert row["runs"] == 3 and row["key_press"]["p95_ms"] == 7.0 and row["key_press"]["n"] == 6
    assert row["key_press"]["p95_per_run"] == [res["key_press"]["p95_ms"], 7.0, 7.0]
    md = browser_markdown({"rows": [{"project": "tiny", **row}], "budget_ms": 1000, "quiet_ms": 600, "command": "x", "runs": 3})
    assert "median over 3 runs" in md and f"{res['key_press']['p95_ms']:g}, 7, 7 /" in md


def test_a_click_opens_a_dot_outside_the_filter_n_moves_forward_and_refresh_keeps_the_view(candidates_project):
    from ddb_core.curation.decisions import set_thresholds
    from ui.review_view import scatter_frame

    from ddb_core.curation.review import ReviewIndex

    p = candidates_project
    ids = _ids(p)
    rho = sorted(r[0] for r in p.db.execute("select rho from candidates where target_label = 1"))
    set_thresholds(p, Psi={0: 1.0, 1: 1.0}, P={0: -1e9, 1: rho[len(rho) // 2]})  # 0->1: half kept, half pruned
    index = ReviewIndex(p)
    pos, x, y, frame = scatter_frame(index, index.Psi, index.P, "0->1")
    kept = index.kept()
    pruned = [k for k in range(len(pos)) if not kept[pos[k]] and np.isfinite(x[k]) and np.isfinite(y[k])]
    assert pruned
    k = pruned[0]
    cid = int(index.ids[pos[k]])
    px, py = frame.pixels(np.array([x[k]]), np.array([y[k]]))
    with _review(p) as page:
        _agrees(page, p)
        _choose(page, "decision", "automatically kept")
        _wait_text(page, "#page-info", r"candidates")
        page.wait_for_timeout(1000)
        img = page.locator("#scatter img").first
        img.scroll_into_view_if_needed()
        box = img.bounding_box()
        natural_w, natural_h = page.evaluate("() => { const i = document.querySelector('#scatter img'); "
                                             "return [i.naturalWidth, i.naturalHeight]; }")
        page.mouse.click(box["x"] + (frame.left + int(px[0]) + 0.5) * box["width"] / natural_w,
                         box["y"] + (frame.top + int(py[0]) + 0.5) * box["height"] / natural_h)
        text = _wait_text(page, "#review-info", rf"Candidate {cid}\b")
        assert "Outside the current filter" in text
        # `n`: the first undecided in the queue, then each press the next one, never back
        page.locator("body").click(position={"x": 5, "y": 5})
        seen = []
        for _ in range(3):
            before = _shown_id(page) if seen else None
            page.keyboard.press("n")
            _until(lambda: _shown_id(page) != before and "Candidate" in page.locator("#review-info").inner_text(),
                   what="n moved")
            page.wait_for_timeout(500)
            seen.append(_shown_id(page))
        assert len(set(seen)) == 3, seen
        # Refresh keeps the filter and the shown candidate
        set_decision(p, [ids[1], ids[3], ids[6]], "reject", source="cli")
        _choose(page, "decision", "manually rejected")
        _wait_text(page, "#page-info", r"\b3 candidates")
        page.locator("body").click(position={"x": 5, "y": 5})
        first = _shown_id(page)
        page.keyboard.press("ArrowRight")
        _until(lambda: _shown_id(page) != first, what="the second rejected candidate shown")
        second = _shown_id(page)
        assert second in (ids[1], ids[3], ids[6])
        page.get_by_role("button", name="Refresh", exact=True).click()
        page.wait_for_timeout(2000)
        _wait_text(page, "#page-info", r"\b3 candidates")
        assert _shown_id(page) == second
        assert page.get_by_label("decision", exact=True).input_value() == "manually rejected"


def test_a_preview_sent_before_a_threshold_change_it_has_not_seen_is_not_drawn(scored_project):
    """Keys pressed 0.3 s apart: a slider's preview can answer after the redraw of a later key's save, however long
    the queue. Each preview carries the threshold version its page held when it was sent; one older than the
    project's is not drawn (the change's own redraw draws what the project holds), whatever the time it took."""
    from types import SimpleNamespace

    import gradio as gr

    from ddb_core.curation.decisions import THRESHOLD_KINDS, reset_thresholds, set_thresholds, undo_thresholds
    from ui.review_thresholds import on_threshold, stale_preview, thresholds_version

    p = scored_project
    index = SimpleNamespace(project=p)
    drawn = thresholds_version(p)
    assert not stale_preview(index, drawn)
    assert not stale_preview(index, None) and not stale_preview(index, "")  # an API caller: taken as current
    seen = [drawn]
    for change in (lambda: set_thresholds(p, P={1: 0.0281}), lambda: set_thresholds(p, Psi={0: 0.7}),
                   lambda: undo_thresholds(p), lambda: reset_thresholds(p)):
        change()
        now = thresholds_version(p)
        assert now not in seen and not stale_preview(index, now)
        assert all(stale_preview(index, old) for old in seen)  # sent before the change: not drawn
        seen.append(now)
    # every kind of action a threshold change writes is counted (the version reads them through the kinds' index)
    kinds = {k for (k,) in p.db.execute("select distinct kind from actions")}
    assert {k for k in kinds if k.startswith("threshold")} == set(THRESHOLD_KINDS)
    plan = p.db.execute(f"explain query plan select max(id) from actions where kind in {THRESHOLD_KINDS}").fetchall()
    assert any("USING" in str(row) and "INDEX" in str(row) for row in plan), plan
    # the handler itself: a stale preview leaves the counts and the three plots as they are
    import numpy as np

    class Index:  # what the handler reads of the review model before it draws
        project, n_classes, Psi, P, rho = p, 2, {0: 0.7, 1: 0.8}, {0: 0.01, 1: 0.02}, np.linspace(-0.05, 0.06, 50)

        def __len__(self):
            return 50

    state = SimpleNamespace(index=Index, class_names=lambda: ["landbird", "waterbird"])
    out = on_threshold(state, SimpleNamespace(n_sliders=2), 0.7, 0.8, 0.01, 0.02, "source → target", seen[0])
    assert len(out) == 5 and all(isinstance(o, type(gr.skip())) for o in out)


def test_an_emptied_threshold_box_is_drawn_as_it_was_and_saves_nothing():
    """A reviewer empties a slider's number box to type a value: the page sends the preview an empty value. The
    slider passes it on as None (a plain ``gr.Slider`` refuses it with an error before any handler); the preview
    draws nothing and the save saves nothing; a number out of range is still refused."""
    from types import SimpleNamespace

    import gradio as gr
    import numpy as np
    import pytest

    from ui.review_thresholds import on_threshold, threshold_slider

    import ui.review  # noqa: F401  (the screen that builds these sliders)

    s = threshold_slider(-1, 1, value=0.0, step=0.0001)
    assert isinstance(s, gr.Slider) and s.get_block_name() == "slider"  # drawn by the page as a plain slider
    ui_dir = __import__("pathlib").Path(ui.review.__file__).parent
    assert not list(ui_dir.glob("*.pyi"))  # Gradio writes one beside any module that defines a component class
    assert s.preprocess("") is None and s.preprocess("  ") is None and s.preprocess(None) is None
    assert s.preprocess(0.25) == 0.25
    with pytest.raises(gr.Error, match="greater than maximum"):
        s.preprocess(2.0)
    with pytest.raises(Exception):
        gr.Slider(-1, 1, value=0.0, step=0.0001).preprocess("")  # what the page met before

    index = type("Index", (), {"__len__": lambda self: 50, "n_classes": 2, "Psi": {0: 0.7, 1: 0.8},
                               "P": {0: 0.01, 1: 0.02}, "rho": np.linspace(-0.05, 0.06, 50)})()
    state = SimpleNamespace(index=lambda: index, class_names=lambda: ["landbird", "waterbird"])
    v = SimpleNamespace(n_sliders=2)
    out = on_threshold(state, v, 0.7, 0.8, None, 0.02, "source → target", None)
    assert len(out) == 5 and all(isinstance(o, type(gr.skip())) for o in out)


def test_emptying_a_threshold_box_to_type_logs_no_error_and_saves_nothing(candidates_project, capfd):
    """A reviewer empties the P box (or starts a negative value with its sign) before typing: the page sends the
    slider an empty value. Nothing is saved, nothing fails on the server, and the value typed next is saved."""
    p = candidates_project
    with _review(p) as page:
        _agrees(page, p)
        box = page.locator("#p-1 input[type=number]")
        rng = page.locator("#p-1 input[type=range]")
        lo, hi, step = (float(rng.get_attribute(a)) for a in ("min", "max", "step"))
        before, stored = _threshold_actions(p), thresholds(p)["P"][1]
        capfd.readouterr()
        box.click()
        box.press("Control+a")
        box.press("Backspace")
        page.wait_for_timeout(1500)
        box.type("-", delay=100)
        page.wait_for_timeout(1500)
        err = capfd.readouterr().err
        assert "Traceback" not in err and "Error" not in err, err[-2000:]
        assert _threshold_actions(p) == before and thresholds(p)["P"][1] == stored
        value = round(lo + (hi - lo) * 0.4, 6)
        box.press("Control+a")
        box.type(f"{value}", delay=100)
        box.press("Enter")
        _until(lambda: _threshold_actions(p) == before + 1, what="the value typed after the empty box saved")
        assert thresholds(p)["P"][1] == pytest.approx(round(value / step) * step, abs=step / 100)
        assert "Traceback" not in capfd.readouterr().err
        _agrees(page, p)


def test_every_step_after_an_action_runs_again_when_asked_for_while_pending(tmp_path):
    """A ``.then`` step (the redraw after a save, a decision, an undo, a reset, a batch) asked for while the same step of
    an earlier action is pending must run again when it ends. Gradio's default for it ("once") dropped it: the last
    key's redraw was lost behind the previous key's, which had read the project before the last save."""
    from ui.app import build_app

    config = build_app(str(tmp_path / "p"), build_demo=False).config
    deps = config["dependencies"]
    after = [d for d in deps if d.get("trigger_after") is not None]
    assert len(after) >= 8  # the redraws of the review screen's actions, and the refilters before two of them
    assert {d["trigger_mode"] for d in after} == {"always_last"}, [(d["id"], d["trigger_mode"]) for d in after]
    # the filters and the plots' direction: a second choice made while the first is being drawn is drawn after it
    ids = {c["props"].get("label"): c["id"] for c in config["components"] if c.get("props", {}).get("label")}
    for label in ("direction", "decision", "sort", "method", "ψ range (min,max)", "ρ range (min,max)", "plots for direction"):
        modes = {d["trigger_mode"] for d in deps if any(t[0] == ids[label] for t in d["targets"])}
        assert modes and modes <= {"multiple", "always_last"}, (label, modes)


def test_two_choices_in_a_row_while_the_screen_is_slow_draw_the_second(candidates_project, monkeypatch):
    """A reviewer picks a filter and at once another, or a plot direction and at once the other, while the server is
    slow (each filtering and each plot drawing made 1.5 s slower): the gallery and the plot end at the last choice, as
    the dropdowns show it, and the plot at the thresholds the project holds. Gradio's default dropped the second choice
    while the first was drawn; the plot of a chosen direction was drawn at the sliders' rounded values."""
    import ui.review as review
    from test_browser import _choose

    real_refilter, real_plots = review.refilter, review.on_direction

    def slow_refilter(*a, **k):
        time.sleep(1.5)
        return real_refilter(*a, **k)

    def slow_plots(*a, **k):
        time.sleep(1.5)
        return real_plots(*a, **k)

    monkeypatch.setattr(review, "refilter", slow_refilter)  # read by the screen's wiring when the app is built
    monkeypatch.setattr(review, "on_direction", slow_plots)
    p = candidates_project
    n_all = len(_ids(p))
    n_lw = p.db.execute("select count(*) from candidates where source_label = 0 and target_label = 1").fetchone()[0]
    assert 0 < n_lw < n_all
    with _review(p) as page:
        _wait_text(page, "#page-info", rf"\b{n_all} candidates")
        _choose(page, "direction", "landbird → waterbird")
        _choose(page, "direction", "all")
        time.sleep(5)  # both filterings done, whichever ran
        _wait_text(page, "#page-info", rf"\b{n_all} candidates")
        assert page.get_by_label("direction", exact=True).input_value() == "all"
        first = _shown(page)["direction"]
        other = {"0->1": "waterbird → landbird", "1->0": "landbird → waterbird"}[first]
        _choose(page, "plots for direction", other)
        _choose(page, "plots for direction", {"0->1": "landbird → waterbird", "1->0": "waterbird → landbird"}[first])
        time.sleep(5)
        _until(lambda: _shown(page)["direction"] == first, what=f"the plot drawn for {first}, the direction chosen last")
        _agrees(page, p)


def test_keys_at_a_reviewers_pace_on_a_slow_server_leave_the_plot_at_the_stored_threshold(candidates_project, monkeypatch):
    """Three arrow keys 0.3 s apart on a P slider, four times, then ten keys 0.1 s apart, with the server slowed as a loaded machine slows it (each
    save waits up to 0.6 s before it writes, each redraw up to 1.2 s after it has read the project; seeded): the plot
    ends at the threshold the project holds every time. Run by hand with eight sequences on the code before the redraws
    ran again when asked for while pending, one ended one step behind: the fault that CI met once in three runs."""
    import random

    import ui.review as review

    rnd = random.Random(1)
    real_redraw, real_save = review.redraw, review.save_threshold

    def slow_redraw(*a, **k):
        out = real_redraw(*a, **k)
        time.sleep(rnd.uniform(0, 1.2))
        return out

    def slow_save(*a, **k):
        time.sleep(rnd.uniform(0, 0.6))
        return real_save(*a, **k)

    monkeypatch.setattr(review, "redraw", slow_redraw)  # read by the screen's wiring when the app is built
    monkeypatch.setattr(review, "save_threshold", slow_save)
    p = candidates_project
    with _review(p) as page:
        _agrees(page, p)
        rng = page.locator("#p-1 input[type=range]")
        for trial in range(4):
            before, start = _threshold_actions(p), thresholds(p)["P"][1]
            rng.focus()
            for _ in range(3):
                page.keyboard.press("ArrowRight" if trial % 2 == 0 else "ArrowLeft")
                page.wait_for_timeout(300)
            _until(lambda: _threshold_actions(p) == before + 3, what="three key presses saved")
            assert thresholds(p)["P"][1] != pytest.approx(start)
            _agrees(page, p, timeout_s=15)
        # ten keys 0.1 s apart, a practised reviewer's pace: every key counts. A release sent while the saves before it
        # are pending carries the slider's value when it is sent, so keys pressed meanwhile reach the project together
        # as one save of the latest value (a save of an unchanged value records nothing): the project ends ten steps on
        before, start = _threshold_actions(p), thresholds(p)["P"][1]
        step = float(rng.get_attribute("step"))
        rng.focus()
        for _ in range(10):
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(100)
        _until(lambda: thresholds(p)["P"][1] == pytest.approx(start + 10 * step), timeout_s=30,
               what="the project ten steps on")
        assert 1 <= _threshold_actions(p) - before <= 10
        _agrees(page, p, timeout_s=20)
