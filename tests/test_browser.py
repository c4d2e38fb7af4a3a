"""A real browser (Debian's Chromium, driven by Playwright) against the running app."""

import re
from pathlib import Path

import pytest

from ddb_core.pruning import set_thresholds

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
