"""The review screen tells the truth, in a real browser (Debian's Chromium with Playwright): after every
kind of action the ψ–ρ plot was drawn from what the database holds — its Ψ and P lines are the stored
thresholds and its dots have the colours of the stored decisions — and every change is saved once."""

import contextlib
import json
import re
import time

import pytest

from ddb_core.curation.decisions import decisions, set_thresholds, thresholds
from test_browser import CHROMIUM, _choose, _wait_text

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is installed by `make test` (apt-get install chromium)")


def _expected(p, direction: str) -> dict:
    """The plot of ``direction`` as the database says it should be."""
    i, j = (int(x) for x in direction.split("->"))
    th = thresholds(p)
    rows = {r[0]: r for r in p.db.execute("select id, source_label, target_label, psi from candidates")}
    dots = {"pruned": 0, "kept": 0, "accepted": 0, "rejected": 0}
    for d in decisions(p, th=th):
        r = rows[d.candidate_id]
        if (r[1], r[2]) != (i, j) or d.auto is None:
            continue
        key = {"accept": "accepted", "reject": "rejected"}.get(d.manual) or ("kept" if d.auto else "pruned")
        dots[key] += 1
    return {"Psi_line": th["Psi"].get(i), "P_line": th["P"].get(j), "dots": dots}


def _shown(page) -> dict:
    return json.loads(page.locator("#plot-state textarea, #plot-state input").first.input_value() or "{}")


def _agrees(page, p, timeout_s: float = 30) -> dict:
    """Wait until the plot's state is the database's (every round trip of the page ends); return it."""
    t0, shown, want = time.time(), {}, {}
    while time.time() - t0 < timeout_s:
        shown = _shown(page)
        if shown.get("direction"):
            want = _expected(p, shown["direction"])
            if (shown["dots"] == want["dots"] and shown["Psi_line"] == pytest.approx(want["Psi_line"])
                    and shown["P_line"] == pytest.approx(want["P_line"])):
                return shown
        page.wait_for_timeout(250)
    raise AssertionError(f"the plot shows {shown}, the database holds {want}")


@contextlib.contextmanager
def _review(p, height: int = 1800):
    """The app on project ``p``, served on this machine, and a Chromium page on its Review screen."""
    from playwright.sync_api import sync_playwright

    from ui.app import build_app, launch_kwargs
    from ui.screenshot import BROWSER_ARGS, open_review

    app = build_app(str(p.root), build_demo=False)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_kwargs(str(p.root)))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": height})
            open_review(page, app.local_url)
            yield page
            browser.close()
    finally:
        app.close()


def _threshold_actions(p) -> int:
    return p.db.execute("select count(*) from actions where kind like 'threshold%'").fetchone()[0]


def test_every_action_leaves_the_plot_as_the_database_holds_it(candidates_project):
    p = candidates_project
    rho = sorted(r[0] for r in p.db.execute("select rho from candidates where target_label = 1"))
    set_thresholds(p, Psi={0: 1.0, 1: 1.0}, P={0: -1e9, 1: rho[len(rho) // 2]})  # some kept, some pruned
    with _review(p) as page:
        first = _agrees(page, p)
        assert first["direction"] == "0->1" and sum(first["dots"].values()) > 0
        # the sliders carry the class names
        assert "waterbird" in page.locator("#p-1").inner_text() and "landbird" in page.locator("#psi-0").inner_text()

        # 1. a threshold move with the keyboard is saved, once per key press, and drawn
        before = _threshold_actions(p)
        page.locator("#p-1 input[type=range]").focus()
        page.keyboard.press("End")  # P of waterbird to its maximum: every 0->1 candidate pruned
        t0 = time.time()
        while _threshold_actions(p) == before and time.time() - t0 < 30:
            page.wait_for_timeout(200)
        assert _threshold_actions(p) == before + 1
        shown = _agrees(page, p)
        assert shown["dots"]["kept"] == 0 and shown["P_line"] == pytest.approx(thresholds(p)["P"][1])

        # 2. undo of the threshold change: the stored P is back, and so are the plot's line and colours
        page.locator("#btn-undo-th").click()
        _wait_text(page, "#threshold-msg", r"back as they were")
        shown = _agrees(page, p)
        assert shown["P_line"] == pytest.approx(rho[len(rho) // 2])

        # 3. three `r` presses: three rejections in the database, three purple dots on the plot
        page.locator("body").click(position={"x": 5, "y": 5})
        for k in range(3):
            shown = re.search(r"Candidate (\d+)", page.locator("#review-info").inner_text()).group(1)
            page.keyboard.press("r")  # a decision advances to the next candidate: wait for it, as a person would
            page.wait_for_function(
                f"!/Candidate {shown}\\b/.test(document.querySelector('#review-info').innerText)", timeout=30_000)
            _agrees(page, p)
        assert p.db.execute("select count(*) from decisions where decision = 'reject'").fetchone()[0] == 3
        _agrees(page, p)

        # 4. a batch reject of one direction, then one undo
        _choose(page, "direction", "landbird → waterbird")
        n_dir = p.db.execute("select count(*) from candidates where source_label = 0").fetchone()[0]
        _wait_text(page, "#page-info", rf"{n_dir} candidates")  # the filter has taken effect
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Apply to the filter…").click()
        msg = _wait_text(page, "#batch-msg", rf"reject {n_dir} candidates")
        assert "landbird → waterbird" in msg and "0->1" not in msg  # the names, not the ids
        page.locator("#btn-batch-confirm").click()
        _wait_text(page, "#batch-msg", r"decisions changed")
        shown = _agrees(page, p)
        assert shown["dots"]["pruned"] == shown["dots"]["kept"] == 0
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("u")
        _agrees(page, p)

        # 5. `u` until nothing is left: the shown candidate stays, and the page says so
        for _ in range(6):
            page.keyboard.press("u")
            page.wait_for_timeout(300)
        text = _wait_text(page, "#review-info", r"Nothing to undo")
        assert re.search(r"Candidate \d+", text)
        assert p.db.execute("select count(*) from decisions").fetchone()[0] == 0
        _agrees(page, p)

        # 6. box selection can be chosen, and a box over the whole plot selects every dot drawn
        box = page.locator("#select-mode input[value=box]")
        assert box.is_enabled()
        box.check()
        assert page.evaluate("document.querySelector('#select-mode input:checked').value") == "box"
        page.locator("#scatter img").first.scroll_into_view_if_needed()  # the batch above scrolled to the gallery
        r = page.locator("#scatter img").first.bounding_box()
        page.mouse.move(r["x"] + r["width"] * 0.02, r["y"] + r["height"] * 0.02)
        page.mouse.down()
        page.mouse.move(r["x"] + r["width"] * 0.99, r["y"] + r["height"] * 0.97, steps=12)
        page.mouse.up()
        n_drawn = sum(_shown(page)["dots"].values())
        _wait_text(page, "#selection-info", rf"{n_drawn} candidates")


def test_the_default_P_while_scoring_follows_the_scores_on_the_page(candidates_project):
    """While a class's candidates are partly scored (a demo build still scoring), the page says that its
    default P comes from n of N scored; once all are scored it is fixed, and the page stops saying so."""
    p = candidates_project
    p.set_meta("thresholds", {})
    rows = p.db.execute("select id, psi, rho from candidates where target_label = 1 order by id").fetchall()
    p.db.execute("update candidates set psi = null, rho = null where id = ?", [rows[0][0]])  # not scored yet
    p.db.conn.commit()
    with _review(p, height=1600) as page:
        _wait_text(page, "#counts", rf"P of waterbird: default from {len(rows) - 1} of {len(rows)} scored")
        assert "1" not in (thresholds(p) and p.get_meta("thresholds")["by_model"][str(p.active_erm_id)]["P"]
                           .get("ddb") or {})  # not stored while scoring
        p.db.execute("update candidates set psi = ?, rho = ? where id = ?", [rows[0][1], rows[0][2], rows[0][0]])
        p.db.conn.commit()
        page.get_by_role("button", name="Refresh", exact=True).click()  # what a finished job does
        t0 = time.time()
        while "default from" in page.locator("#counts").inner_text() and time.time() - t0 < 30:
            page.wait_for_timeout(250)
        assert "default from" not in page.locator("#counts").inner_text()
        assert "1" in p.get_meta("thresholds")["by_model"][str(p.active_erm_id)]["P"]["ddb"]  # fixed now
        _agrees(page, p)
