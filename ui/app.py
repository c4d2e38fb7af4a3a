"""The Gradio app. For now one page: the open project's status, its ERM evaluation report, and the
progress of the background build of the offline demo project. Core errors become plain messages.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import gradio as gr

from ddb_core import api
from ddb_core.errors import DDBError
from ddb_core.evaluation import report_markdown
from ddb_core.jobs import BackgroundJob
from ddb_core.store import Project


class AppState:
    """The open project and the background job that builds it (when it is the demo)."""

    def __init__(self, project_dir: str, build_demo: bool):
        self.project_dir = Path(project_dir)
        self.job: Optional[BackgroundJob] = None
        if build_demo and not self._ready():
            self.job = BackgroundJob("build demo project",
                                     lambda on_progress, cancel: api.build_demo_project(self.project_dir, on_progress=on_progress, cancel=cancel))

    def _ready(self) -> bool:
        if not Project.exists(self.project_dir):
            return False
        p = Project.open(self.project_dir)
        return p.sample_count() > 0 and p.active_erm_id is not None

    def job_markdown(self) -> str:
        if self.job is None:
            return ""
        s = self.job.snapshot()
        if s.state == "running":
            p = s.progress
            if p is None:
                return f"**{s.name}**: starting…"
            eta = f", about {p.eta_s:.0f}s left" if p.eta_s else ""
            rate = f", {p.rate:.1f}/s" if p.rate else ""
            return f"**{s.name}** — {p.stage}: {p.done}/{p.total}{rate}{eta} {p.message}"
        if s.state == "done":
            return f"**{s.name}**: done in {s.finished - s.started:.0f}s."
        return f"**{s.name}**: {s.state} — {s.error}"

    def project_markdown(self) -> str:
        if not Project.exists(self.project_dir):
            return f"No project at `{self.project_dir}` yet."
        try:
            project = Project.open(self.project_dir)
            st = api.status(project)
        except DDBError as e:
            return f"Cannot open the project: {e}"
        if not st["class_names"]:
            return f"Project `{st['name']}` has no dataset yet."
        lines = [f"### Project `{st['name']}`", f"Dataset: {st['dataset_format']} — classes {', '.join(st['class_names'])}; "
                 f"spurious attribute: {', '.join(st['attr_names']) or 'none'}", "",
                 "| split | samples | groups |", "| --- | ---: | --- |"]
        for split, n in st["samples"].items():
            lines.append(f"| {split} | {n} | {', '.join(f'{g}: {c}' for g, c in st['groups'][split].items())} |")
        if st["active_erm_model"] is not None:
            reports = api.evaluate(project, st["active_erm_model"])
            lines += ["", "## ERM model", ""] + [report_markdown(r, f"{s} split") for s, r in reports.items()]
        return "\n".join(lines)


def build_app(project_dir: str, build_demo: bool = True) -> gr.Blocks:
    state = AppState(project_dir, build_demo)
    with gr.Blocks(title="DDB Studio") as demo:
        gr.Markdown("# DDB Studio\nDiffusion-driven balancing of biased image datasets. "
                    "The review and retraining screens arrive with the curation app; this page shows the open project.")
        job_md = gr.Markdown(state.job_markdown(), elem_id="job-status")
        cancel = gr.Button("Cancel background build", visible=state.job is not None)
        project_md = gr.Markdown(state.project_markdown(), elem_id="project-status")
        timer = gr.Timer(1.0, active=state.job is not None)

        def refresh():
            running = state.job is not None and state.job.running
            return state.job_markdown(), state.project_markdown(), gr.Timer(active=running), gr.Button(visible=running)

        def do_cancel():
            if state.job is not None:
                state.job.cancel()
            return state.job_markdown()

        timer.tick(refresh, outputs=[job_md, project_md, timer, cancel])
        cancel.click(do_cancel, outputs=[job_md])
        demo.load(refresh, outputs=[job_md, project_md, timer, cancel])
    demo.state = state  # for tests
    return demo
