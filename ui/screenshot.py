"""Screenshot of the review screen with a real browser (Debian's Chromium driven by Playwright).

    python -m ui.screenshot --project projects/demo --out docs/images/review.png

Used for the README's screenshot and by the browser test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-extensions", "--no-first-run"]


PANELS = ("panel-source", "panel-mask", "panel-result", "panel-softmax", "panel-ig")


def open_review(page, url: str, timeout_ms: int = 60_000, panels=None) -> None:
    """Load the app and switch to the Review screen; wait until the five panels (or ``panels``) show images."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    page.get_by_role("tab", name="Review").click(timeout=timeout_ms)
    for panel in panels or PANELS:
        page.locator(f"#{panel} img").first.wait_for(state="visible", timeout=timeout_ms)


def draw_lasso(page, selector: str = "#scatter img", points=((0.35, 0.12), (0.97, 0.1), (0.95, 0.6), (0.5, 0.7))) -> None:
    """Drag a closed lasso through ``points`` (fractions of the plot image) over the plot, as a person would."""
    page.locator(selector).first.scroll_into_view_if_needed()  # a mouse cannot draw on what is scrolled away
    box = page.locator(selector).first.bounding_box()
    at = lambda f: (box["x"] + box["width"] * f[0], box["y"] + box["height"] * f[1])
    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for f in list(points[1:]) + [points[0]]:
        page.mouse.move(*at(f), steps=10)
    page.mouse.up()


def screenshot(project: str, out: str, width: int = 1500, height: int = 1700, lasso: bool = False) -> Path:
    from playwright.sync_api import sync_playwright

    from ui.app import build_app, launch_kwargs

    app = build_app(project, build_demo=False)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_kwargs(project))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
            page = browser.new_page(viewport={"width": width, "height": height})
            open_review(page, app.local_url)
            page.wait_for_timeout(1500)
            if lasso:  # show a selection drawn on the ψ–ρ plot, and the gallery it filters
                draw_lasso(page)
                page.locator("#selection-info").filter(has_text="Selection:").wait_for(timeout=30_000)
                page.wait_for_timeout(1500)
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=out, full_page=False)
            browser.close()
    finally:
        app.close()
    return Path(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default="projects/demo")
    ap.add_argument("--out", default="docs/images/review.png")
    ap.add_argument("--lasso", action="store_true", help="draw a lasso on the ψ–ρ plot first")
    a = ap.parse_args()
    print(screenshot(a.project, a.out, lasso=a.lasso))
