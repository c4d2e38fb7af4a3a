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
SERVED = ("reports", "exports")  # the project folders whose files the pages link to
NEVER_SERVED = ("project.db", "project.db-wal", "project.db-shm", "models", "tokens", "runs", "masks", "candidates", "ig",
                "dataset")
KEYS = {"a": "btn-accept", "r": "btn-reject", "u": "btn-undo", "ArrowLeft": "btn-prev", "ArrowRight": "btn-next"}
KEYBOARD_JS = """
<script>
document.addEventListener('keydown', function (e) {
  const t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const ids = KEYS;
  const id = ids[e.key];
  if (!id) return;
  let el = document.getElementById(id);
  if (!el) return;
  if (el.tagName !== 'BUTTON') el = el.querySelector('button') || el;
  e.preventDefault();
  el.click();
});
</script>
""".replace("KEYS", json.dumps(KEYS))
CSS = """
.pixelated img { image-rendering: pixelated; }
#review-info { font-size: 0.92em; }
"""


def launch_kwargs(project_dir: str) -> dict:
    """What ``launch()`` needs besides host, port and auth: the keyboard script, CSS, and the files served:
    the report images and the exports of the open project (and the images the pages render, from Gradio's
    own cache) — never the database, checkpoints, tokens or datasets."""
    root = Path(project_dir).resolve()
    return {"head": KEYBOARD_JS, "css": CSS, "allowed_paths": [str(root / d) for d in SERVED],
            "blocked_paths": [str(root / d) for d in NEVER_SERVED]}


def build_app(project_dir: str, build_demo: bool = True, data_roots: Optional[list] = None) -> gr.Blocks:
    """The app on ``project_dir``. ``data_roots``: folders whose paths a browser may name (datasets,
    checkpoints, model folders); default the working directory (the project's own folder always)."""
    state = AppState(project_dir, build_demo, data_roots)
    with gr.Blocks(title="DDB Studio") as demo:
        gr.Markdown("# DDB Studio\nDiffusion-driven balancing: review every generated sample, tune Ψ and P, override, "
                    "retrain on what you accepted.")
        shared = SimpleNamespace(job_md=gr.Markdown(state.job_markdown(), elem_id="job-status"))
        with gr.Row():
            cancel = gr.Button("Cancel background work", size="sm", variant="stop", elem_id="btn-cancel-job")
            refresh = gr.Button("Refresh", size="sm")
        shared.timer = gr.Timer(1.0, active=state.job is not None)
        views = {}
        with gr.Tabs():
            for title, tab_id, module in SCREENS:
                with gr.Tab(title, id=tab_id):
                    views[tab_id] = module.build(state)
        for _title, tab_id, module in SCREENS:
            module.wire(state, views[tab_id], shared)
        outputs = [o for _t, tab_id, module in SCREENS for o in module.refresh_outputs(views[tab_id])]

        def refresh_all():
            return [value for _t, tab_id, module in SCREENS for value in module.refresh(state, views[tab_id])]

        def poll():
            """Progress while a job runs; when it has just finished, every screen is refreshed once."""
            running = state.job is not None and state.job.running
            if state.job is not None and not running and state.last_job != id(state.job):
                state.last_job = id(state.job)
                return state.job_markdown(), gr.Timer(active=False), *refresh_all()
            return state.job_markdown(), gr.Timer(active=running), *[gr.skip() for _ in outputs]

        def cancel_job():
            if state.job is not None:
                state.job.cancel()
            return state.job_markdown()

        cancel.click(cancel_job, outputs=[shared.job_md])
        refresh.click(safe(refresh_all), [], outputs, api_name="refresh")
        demo.load(safe(refresh_all), [], outputs, api_name="load")
        shared.timer.tick(poll, outputs=[shared.job_md, shared.timer, *outputs], show_progress="hidden", api_name="poll")
    demo.state, demo.views = state, views  # for tests
    demo.n_sliders = views["review"].n_sliders
    return demo
