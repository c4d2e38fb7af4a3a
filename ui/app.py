"""The curation web app (Gradio): five screens — Project, Pipeline, Review, Retrain, Export — one
module each, wired together here.

The app holds no method logic: every action calls the ``ddb_core.api`` facade (and the review model
it returns); long work runs in a ``BackgroundJob`` polled by a timer, with progress and a cancel
button; core errors (``DDBError``) become plain messages. The file route serves the report images
and exports of the open project only; images are sent as arrays, aspect ratio kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import gradio as gr

from . import export, pipeline, project, retrain, review
from .review_view import counts_markdown, detail_panels, gallery_items, threshold_plots  # noqa: F401 (used by tests, benchmarks)
from .state import AppState, check_path, safe, user_of  # noqa: F401 (the app's public helpers)

SCREENS = (("Project", "project", project), ("Pipeline", "pipeline", pipeline), ("Review", "review", review),
           ("Retrain", "retrain", retrain), ("Export", "export", export))
SERVED = ("reports", "exports", "thumbs")  # the project folders whose files the pages link to (thumbs: the gallery)
NEVER_SERVED = ("project.db", "project.db-wal", "project.db-shm", "models", "tokens", "runs", "masks", "candidates", "ig",
                "dataset")
KEYS = {"a": "btn-accept", "r": "btn-reject", "u": "btn-undo", "n": "btn-queue-next", "ArrowLeft": "btn-prev",
        "ArrowRight": "btn-next"}
VIEW_KEYS = {"1": "source", "2": "mask", "3": "result", "4": "ig"}  # the large view
KEYBOARD_JS = """
<script>
// A threshold slider moved with the keyboard is saved as a mouse release saves it: Gradio's slider
// saves on pointerup, which keys do not send, so their keyup sends it (one save per key press).
const SLIDER_NAV = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End', 'PageUp', 'PageDown'];
document.addEventListener('keyup', function (e) {
  const t = e.target;
  if (!t || t.type !== 'range' || !SLIDER_NAV.includes(e.key)) return;
  if (!t.closest('[id^="psi-"], [id^="p-"]')) return;
  // after the slider has taken the key's value (its own input handler runs first)
  setTimeout(() => t.dispatchEvent(new PointerEvent('pointerup', {bubbles: true, composed: true, pointerId: 1,
                                                                   isPrimary: true})), 150);
});
// A number typed into a threshold's box is saved when it is committed: Enter leaves the box, and leaving it (Enter,
// Tab, a click elsewhere) makes Gradio's slider send its release, which saves. A click into the box sends nothing:
// its pointerup would save the value shown before typing.
const THRESHOLD = '[id^="psi-"], [id^="p-"]';
document.addEventListener('pointerup', function (e) {
  const t = e.target;
  if (t && t.type === 'number' && t.closest(THRESHOLD) && e.isTrusted) e.stopPropagation();
}, true);
document.addEventListener('keydown', function (e) {
  const t = e.target;
  if (t && t.type === 'number' && t.closest(THRESHOLD) && e.key === 'Enter') { e.preventDefault(); t.blur(); }
}, true);
// The review keys act only while the Review screen is shown and no text field or control has the focus.
function reviewShown() {
  const b = document.getElementById('btn-accept');
  return !!b && b.getClientRects().length > 0 && !b.closest('[hidden], .hidden');
}
document.addEventListener('keydown', function (e) {
  const t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (!reviewShown()) return;
  const view = VIEW_KEYS[e.key];
  if (view) {
    const radio = document.querySelector('#large-mode input[value="' + view + '"]');
    if (radio) { e.preventDefault(); radio.click(); }
    return;
  }
  const id = KEYS[e.key];
  if (!id) return;
  let el = document.getElementById(id);
  if (!el) return;
  if (el.tagName !== 'BUTTON') el = el.querySelector('button') || el;
  e.preventDefault();
  el.click();
});
</script>
""".replace("VIEW_KEYS", json.dumps(VIEW_KEYS)).replace("KEYS", json.dumps(KEYS))
# The large view shows the chosen panel's image (source, mask, result or IG map), enlarged: copied in the page whenever
# a panel or the choice changes, so it follows each key press with no request of its own.
LARGE_JS = """
<script>
(function () {
  const PANEL = {source: 'panel-source', mask: 'panel-mask', result: 'panel-result', ig: 'panel-ig'};
  function sync() {
    const img = document.querySelector('#large-view img.ddb-large');
    if (!img) return;
    const mode = document.querySelector('#large-mode input:checked');
    const panel = document.querySelector('#' + PANEL[mode ? mode.value : 'result'] + ' img');
    const src = panel ? panel.getAttribute('src') : null;
    if (!src) { img.hidden = true; img.removeAttribute('src'); return; }
    if (img.getAttribute('src') !== src) img.setAttribute('src', src);
    img.hidden = false;
  }
  new MutationObserver(sync).observe(document.documentElement, {subtree: true, childList: true, attributes: true,
                                                                attributeFilter: ['src', 'checked']});
  // a choice of view: once the radio shows it (Gradio sets the checked input after the event)
  for (const kind of ['click', 'change', 'input']) {
    document.addEventListener(kind, function (e) {
      if (e.target.closest && e.target.closest('#large-mode')) { setTimeout(sync, 0); setTimeout(sync, 100); }
    }, true);
  }
})();
</script>
"""
# A lasso (or, with "box" chosen, a rectangle) drawn over a plot image of class "selectable-plot"; on release
# its points (or a click) go, in the image's own pixels, to the hidden #plot-selection box and #btn-plot-select.
SELECT_JS = """
<script>
(function () {
  let drag = null;
  function canvasOver(img) {
    const host = img.parentElement;
    let c = host.querySelector('canvas.ddb-lasso');
    if (!c) {
      c = document.createElement('canvas');
      c.className = 'ddb-lasso';
      c.style.position = 'absolute'; c.style.pointerEvents = 'none'; c.style.zIndex = 10;
      if (getComputedStyle(host).position === 'static') host.style.position = 'relative';
      host.appendChild(c);
    }
    const r = img.getBoundingClientRect(), h = host.getBoundingClientRect();
    c.style.left = (r.left - h.left) + 'px'; c.style.top = (r.top - h.top) + 'px';
    c.width = r.width; c.height = r.height; c.style.width = r.width + 'px'; c.style.height = r.height + 'px';
    return c;
  }
  function at(e, img) { const r = img.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
  function corners(p) { const [a, b] = [p[0], p[p.length - 1]]; return [a, [b[0], a[1]], b, [a[0], b[1]]]; }
  function draw(d) {
    const g = d.canvas.getContext('2d'); g.clearRect(0, 0, d.canvas.width, d.canvas.height);
    const p = d.box ? corners(d.pts) : d.pts;
    g.strokeStyle = '#ff6d00'; g.lineWidth = 2; g.fillStyle = 'rgba(255,109,0,0.12)';
    g.beginPath(); p.forEach((q, i) => i ? g.lineTo(q[0], q[1]) : g.moveTo(q[0], q[1])); g.closePath(); g.fill(); g.stroke();
  }
  document.addEventListener('mousedown', function (e) {
    const img = e.target.closest('.selectable-plot img');
    if (!img || e.button !== 0) return;
    e.preventDefault();
    const mode = document.querySelector('#select-mode input:checked');
    drag = {img: img, host: img.closest('.selectable-plot'), canvas: canvasOver(img), pts: [at(e, img)],
            box: !!mode && mode.value === 'box', plot: img.closest('#map-plot') ? 'map' : 'scatter'};
  });
  document.addEventListener('mousemove', function (e) {
    if (!drag) return;
    drag.pts.push(at(e, drag.img));
    draw(drag);
  });
  document.addEventListener('mouseup', function (e) {
    if (!drag) return;
    const d = drag; drag = null;
    d.canvas.getContext('2d').clearRect(0, 0, d.canvas.width, d.canvas.height);
    // the plot may have been drawn again during the drag (a redraw replaces its image): measure the one shown now
    const img = d.img.isConnected ? d.img : ((d.host && d.host.querySelector('img')) || d.img);
    const r = img.getBoundingClientRect();
    if (!r.width || !r.height || !img.naturalWidth) return;
    const sx = img.naturalWidth / r.width, sy = img.naturalHeight / r.height;
    const first = d.pts[0];
    const moved = Math.max.apply(null, d.pts.map(q => Math.hypot(q[0] - first[0], q[1] - first[1])));
    const pts = (d.box ? corners(d.pts) : d.pts).map(q => [q[0] * sx, q[1] * sy]);
    const payload = JSON.stringify({plot: d.plot, click: moved < 4, points: moved < 4 ? [pts[0]] : pts});
    const box = document.querySelector('#plot-selection textarea, #plot-selection input');
    box.value = payload;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(function () {
      let b = document.getElementById('btn-plot-select');
      if (b && b.tagName !== 'BUTTON') b = b.querySelector('button') || b;
      if (b) b.click();
    }, 60);
  });
})();
</script>
"""
CSS = """
.pixelated img { image-rendering: pixelated; }
#large-view img.ddb-large { display: block; width: 100%; height: 420px; object-fit: contain; }  /* enlarged to fill */
#large-view img.ddb-large[hidden] { display: none; }
#review-info { font-size: 0.92em; }
.ddb-hidden { display: none !important; }
.selectable-plot img { cursor: crosshair; user-select: none; -webkit-user-drag: none; }
#counts { overflow-x: auto; }
#counts table { font-size: 0.88em; }
#counts th, #counts td { white-space: nowrap; word-break: keep-all; overflow-wrap: normal; padding: 2px 6px; }
"""


def launch_kwargs(project_dir: str, trusted_proxy: Optional[str] = None) -> dict:
    """What ``launch()`` needs besides host, port and auth: the keyboard script, CSS, the guard, and the files served:
    the report images and the exports of the open project (and the images the pages render, from Gradio's
    own cache) — never the database, checkpoints, tokens or datasets."""
    from starlette.middleware import Middleware

    from .guard import Guard

    root = Path(project_dir).resolve()
    return {"head": KEYBOARD_JS + SELECT_JS + LARGE_JS, "css": CSS, "allowed_paths": [str(root / d) for d in SERVED],
            "blocked_paths": [str(root / d) for d in NEVER_SERVED],
            # sign-in throttling, no API description before sign-in, files that download (ui/guard.py)
            "app_kwargs": {"middleware": [Middleware(Guard, project_dir=str(root), trusted_proxy=trusted_proxy)],
                           # FastAPI's own route description is not served (before sign-in it would be public)
                           "openapi_url": None, "docs_url": None, "redoc_url": None}}


def build_app(project_dir: str, build_demo: bool = True, data_roots: Optional[list] = None) -> gr.Blocks:
    """The app on ``project_dir``. ``data_roots``: folders whose paths a browser may name (datasets,
    checkpoints, model folders); default the working directory (the project's own folder always)."""
    state = AppState(project_dir, build_demo, data_roots)
    with gr.Blocks(title="DDB Studio") as demo:
        gr.Markdown("# DDB Studio\nDiffusion-driven balancing: review every generated sample, tune Ψ and P, override, "
                    "retrain on what you accepted.")
        shared = SimpleNamespace(job_md=gr.Markdown(state.job_markdown(), elem_id="job-status"))
        with gr.Row():
            cancel = gr.Button("Cancel the background work", size="sm", elem_id="btn-cancel-job",
                               visible=state.job is not None and state.job.running)
            refresh = gr.Button("Refresh", size="sm")
        shared.timer = gr.Timer(1.0, active=state.job is not None)
        views, tabs = {}, {}
        with gr.Tabs():
            for title, tab_id, module in SCREENS:
                with gr.Tab(title, id=tab_id) as tabs[tab_id]:
                    views[tab_id] = module.build(state)
        for _title, tab_id, module in SCREENS:
            module.wire(state, views[tab_id], shared)
            if hasattr(module, "on_show"):  # what a screen reads again each time it is shown
                fn, shown = module.on_show(state, views[tab_id])
                tabs[tab_id].select(fn, [], shown, show_progress="hidden")
        outputs = [o for _t, tab_id, module in SCREENS for o in module.refresh_outputs(views[tab_id])]
        # what a screen keeps over a refresh (the review screen: its filters, selection and shown candidate)
        kept = [(tab_id, module, getattr(module, "refresh_inputs", lambda v: [])(views[tab_id]))
                for _t, tab_id, module in SCREENS]
        inputs = [c for _id, _m, comps in kept for c in comps]

        def refresh_all(*values):
            out, at = [], 0
            for tab_id, module, comps in kept:
                out += module.refresh(state, views[tab_id], *values[at:at + len(comps)])
                at += len(comps)
            return out

        def poll(*values):
            """Progress while a job runs; when it has just finished, every screen is refreshed once."""
            running = state.job is not None and state.job.running
            if state.job is not None and not running and state.last_job != id(state.job):
                state.last_job = id(state.job)
                return state.job_markdown(), gr.Timer(active=False), gr.Button(visible=False), *refresh_all(*values)
            return (state.job_markdown(), gr.Timer(active=running), gr.Button(visible=running),
                    *[gr.skip() for _ in outputs])

        def cancel_job():
            if state.job is None or not state.job.running:
                return "Nothing is running: there is nothing to cancel.", gr.Button(visible=False)
            state.job.cancel()
            return state.job_markdown(), gr.Button(visible=True)

        cancel.click(cancel_job, outputs=[shared.job_md, cancel])
        refresh.click(safe(refresh_all), inputs, outputs, api_name="refresh")
        demo.load(safe(refresh_all), [], outputs, api_name="load")  # a new page: the defaults
        shared.timer.tick(poll, inputs, outputs=[shared.job_md, shared.timer, cancel, *outputs], show_progress="hidden",
                          api_name="poll")
    demo.state, demo.views = state, views  # for tests
    demo.n_sliders = views["review"].n_sliders
    return demo
