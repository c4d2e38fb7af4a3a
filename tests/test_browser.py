"""A real browser (Debian's Chromium, driven by Playwright) against the running app."""

import re
from pathlib import Path

import pytest

from ddb_core.curation.decisions import set_thresholds

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is installed by `make test` (apt-get install chromium)")


def _wait_text(page, selector: str, pattern: str, timeout_s: float = 30) -> str:
    import time

    t0, text = time.time(), ""
    while time.time() - t0 < timeout_s:
        text = page.locator(selector).inner_text()
        if re.search(pattern, text):
            return text
        page.wait_for_timeout(250)
    raise AssertionError(f"{selector} never matched {pattern!r}; last text: {text!r}")


def _kept(page) -> int:
    text = page.locator("#counts").inner_text()
    return int(re.search(r"kept in all: (\d+)", text).group(1))


def test_review_page_in_chromium(candidates_project, tmp_path):
    from playwright.sync_api import sync_playwright

    from ui.app import build_app, launch_kwargs
    from ui.screenshot import BROWSER_ARGS, open_review

    p = candidates_project
    set_thresholds(p, Psi={0: 1.0, 1: 1.0}, P={0: -1e9, 1: -1e9})  # everything kept
    app = build_app(str(p.root), build_demo=False)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_kwargs(str(p.root)))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            open_review(page, app.local_url)  # the five panels render images
            _wait_text(page, "#counts", r"kept in all: 8")
            assert _kept(page) == 8
            # A slider move changes the kept count (Ψ of class 0 to 0: its 4 candidates are pruned).
            page.locator("#psi-0 input[type=range]").fill("0")
            _wait_text(page, "#counts", r"kept in all: 4")
            assert _kept(page) == 4
            # Keyboard `r` rejects the shown candidate; the DB says so.
            info = page.locator("#review-info").inner_text()
            shown = int(re.search(r"Candidate (\d+)", info).group(1))
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("r")
            page.wait_for_function(
                f"!/Candidate {shown}\\b/.test(document.querySelector('#review-info').innerText)", timeout=30_000)
            row = p.db.execute("select decision from decisions where candidate_id = ?", [shown]).fetchone()
            assert row is not None and row[0] == "reject"
            page.screenshot(path=str(tmp_path / "review.png"))
            assert (tmp_path / "review.png").stat().st_size > 10_000
            # The retrain button, with γ chosen by val WGA: the report appears on the page and in the DB.
            page.get_by_role("tab", name="Retrain").click()
            page.locator("#gamma-grid textarea, #gamma-grid input").first.fill("1, 2")
            page.locator("#btn-retrain").click()
            text = _wait_text(page, "#report", r"γ chosen by val WGA", timeout_s=240)
            assert "worst-group accuracy" in text and text.count("(chosen)") == 1
            stored = p.db.execute("select count(*) from reports").fetchone()[0]
            assert stored == 1
            browser.close()
    finally:
        app.close()


def _choose(page, elem_label: str, option: str) -> None:
    """Pick ``option`` in the Gradio dropdown labelled ``elem_label``."""
    box = page.get_by_label(elem_label, exact=True)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_batch_confirm_acts_on_what_was_counted_and_undo_reverts_it_whole(candidates_project):
    """The scenario that once lost work: ask to reject one direction, clear the filter, switch to accept,
    press Confirm. Now the change cancels the pending batch; a batch confirmed acts on exactly what it
    counted, and one undo reverts all of it, appending to the audit log."""
    from playwright.sync_api import sync_playwright

    from ui.app import build_app, launch_kwargs
    from ui.screenshot import BROWSER_ARGS, open_review

    p = candidates_project
    n_dir = p.db.execute("select count(*) from candidates where source_label = 0").fetchone()[0]
    app = build_app(str(p.root), build_demo=False)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_kwargs(str(p.root)))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            open_review(page, app.local_url)
            _choose(page, "direction", "landbird → waterbird")
            _wait_text(page, "#page-info", rf"{n_dir} candidates")
            page.get_by_role("button", name="Apply to the filter…").click()
            _wait_text(page, "#batch-msg", rf"reject {n_dir} candidates")
            _choose(page, "direction", "all")  # the filter changes: the pending batch is cancelled
            _wait_text(page, "#batch-msg", r"cancelled")
            assert not page.locator("#btn-batch-confirm").is_visible()
            _choose(page, "batch action on every candidate of the current filter", "accept")
            assert p.db.execute("select count(*) from decisions").fetchone()[0] == 0
            # a batch counted on one direction, then confirmed: exactly those candidates
            _choose(page, "direction", "landbird → waterbird")
            _wait_text(page, "#page-info", rf"{n_dir} candidates")
            page.get_by_role("button", name="Apply to the filter…").click()
            _wait_text(page, "#batch-msg", rf"accept {n_dir} candidates")
            page.locator("#btn-batch-confirm").click()
            _wait_text(page, "#batch-msg", rf"{n_dir} decisions changed")
            rows = p.db.execute("select c.source_label, d.decision from decisions d join candidates c "
                                "on c.id = d.candidate_id").fetchall()
            assert len(rows) == n_dir and all(r == (0, "accept") for r in rows)
            audit = p.db.execute("select count(*) from audit").fetchone()[0]
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("u")  # one undo: the whole batch
            page.wait_for_function("true", timeout=1000)
            t0 = __import__("time").time()
            while p.db.execute("select count(*) from decisions").fetchone()[0] and __import__("time").time() - t0 < 30:
                page.wait_for_timeout(200)
            assert p.db.execute("select count(*) from decisions").fetchone()[0] == 0
            assert p.db.execute("select count(*) from audit").fetchone()[0] == audit + n_dir  # appended, not deleted
            browser.close()
    finally:
        app.close()


def test_non_square_candidates_show_undistorted(tmp_path, tiny_pipe_factory):
    """A project of 96×64 and 64×80 JPEGs: the review panels keep each image's aspect ratio."""
    import sys

    from PIL import Image

    sys.path.insert(0, str(Path(__file__).parent))
    import realshaped
    from ddb_core import api
    from ddb_core.pipeline.generation import generate, score
    from ddb_core.method.inpainting import InpaintConfig, Inpainter
    from ddb_core.method.masking import GrabCutMasker
    from ddb_core.method.selection import SelectionConfig, select
    from ddb_core.classifiers.training import TrainConfig
    from ui.app import build_app, launch_kwargs
    from ui.screenshot import BROWSER_ARGS, open_review

    data = realshaped.waterbirds(tmp_path / "data")
    project, _ = api.create_project(tmp_path / "proj", "waterbirds", data)
    api.train_erm(project, TrainConfig(image_size=32, epochs=1, batch_size=16))
    select(project, SelectionConfig(k=2, ti_size=0))
    generate(project, Inpainter(tiny_pipe_factory()), GrabCutMasker(), inpaint=InpaintConfig(steps=2, guidance=2.0))
    score(project, n_steps=4)
    first = project.db.execute("select s.path from candidates c join samples s on s.id = c.source_id "
                               "order by c.id limit 1").fetchone()[0]
    with Image.open(project.dataset_path(first)) as im:
        ratio = im.width / im.height
    app = build_app(str(project.root), build_demo=False)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
               **launch_kwargs(str(project.root)))
    try:
        with sync_playwright_ctx() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1500, "height": 1600})
            open_review(page, app.local_url)
            page.wait_for_timeout(1000)
            for panel in ("panel-source", "panel-mask", "panel-result", "panel-ig"):
                img = page.locator(f"#{panel} img").first
                nat = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
                box = img.bounding_box()
                fit = img.evaluate("i => getComputedStyle(i).objectFit")
                assert abs(nat[0] / nat[1] - ratio) < 0.05, (panel, nat, ratio)  # sent at the source's aspect ratio
                if fit not in ("contain", "scale-down"):  # and drawn without stretching
                    assert abs(box["width"] / box["height"] - ratio) < 0.08, (panel, box, fit, ratio)
            # a click on a thumbnail opens that candidate
            first = re.search(r"Candidate (\d+)", page.locator("#review-info").inner_text()).group(1)
            page.locator("#gallery .thumbnail-item").nth(1).click()
            page.wait_for_function(f"!/Candidate {first}\\b/.test(document.querySelector('#review-info').innerText)",
                                   timeout=30_000)
            page.screenshot(path=str(tmp_path / "non-square.png"))
            browser.close()
    finally:
        app.close()


def sync_playwright_ctx():
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def test_a_lasso_on_the_plot_filters_the_gallery_for_a_batch_reject_and_undo(candidates_project):
    """Draw a selection on the ψ–ρ plot: the gallery shows exactly the selected candidates; a batch reject
    of them reaches the database as that many rejections, all of the plotted direction; undo removes them."""
    from playwright.sync_api import sync_playwright

    from ui.app import build_app, launch_kwargs
    from ui.screenshot import BROWSER_ARGS, open_review

    p = candidates_project
    app = build_app(str(p.root), build_demo=False)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_kwargs(str(p.root)))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            open_review(page, app.local_url)
            page.wait_for_timeout(1000)
            page.locator("#scatter img").first.scroll_into_view_if_needed()
            box = page.locator("#scatter img").first.bounding_box()
            # a lasso over the whole plot area: every plotted candidate of the shown direction
            corners = [(0.06, 0.06), (0.99, 0.06), (0.99, 0.9), (0.06, 0.9), (0.06, 0.06)]
            page.mouse.move(box["x"] + box["width"] * corners[0][0], box["y"] + box["height"] * corners[0][1])
            page.mouse.down()
            for fx, fy in corners[1:]:
                page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=8)
            page.mouse.up()
            text = _wait_text(page, "#selection-info", r"Selection: \d+ candidates")
            n = int(re.search(r"Selection: (\d+) candidates", text).group(1))
            assert n > 0
            _wait_text(page, "#page-info", rf"— {n} candidates")
            page.get_by_role("button", name="Apply to the filter…").click()
            _wait_text(page, "#batch-msg", rf"reject {n} candidates")
            page.locator("#btn-batch-confirm").click()
            _wait_text(page, "#batch-msg", rf"{n} decisions changed")
            rows = p.db.execute("select c.source_label, c.target_label, d.decision from decisions d "
                                "join candidates c on c.id = d.candidate_id").fetchall()
            assert len(rows) == n and {r[2] for r in rows} == {"reject"}
            assert len({(r[0], r[1]) for r in rows}) == 1  # all of the plotted direction
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("u")
            t0 = __import__("time").time()
            while p.db.execute("select count(*) from decisions").fetchone()[0] and __import__("time").time() - t0 < 30:
                page.wait_for_timeout(200)
            assert p.db.execute("select count(*) from decisions").fetchone()[0] == 0
            # a click on the plot opens a candidate; the keys 1-4 flip the large view
            page.keyboard.press("1")
            page.wait_for_function("document.querySelector('#large-mode input[value=\"source\"]').checked", timeout=10_000)
            # the large view shows the chosen panel's image, and follows the next candidate with no request of its own
            same = ("(p) => { const a = document.querySelector('#large-view img'), b = document.querySelector('#' + p + ' img');"
                    " return !!a && !!b && !a.hidden && a.getAttribute('src') === b.getAttribute('src'); }")
            page.wait_for_function(same, arg="panel-source", timeout=10_000)
            page.keyboard.press("4")
            page.wait_for_function(same, arg="panel-ig", timeout=10_000)
            before = page.locator("#review-info").inner_text()
            page.keyboard.press("ArrowRight")
            page.wait_for_function("(s) => document.querySelector('#review-info').innerText !== s", arg=before,
                                   timeout=10_000)
            page.wait_for_function(same, arg="panel-ig", timeout=10_000)
            browser.close()
    finally:
        app.close()
