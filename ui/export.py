"""The Export screen: the curated dataset (train images plus every accepted sample, as an ImageFolder
tree) with a CSV manifest of the candidates, and the reproducibility bundle; both run as background
jobs with progress and cancel, and the file to download appears here when they are done."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import gradio as gr

from ddb_core import api

from .state import AppState, safe, started


def build(state: AppState) -> SimpleNamespace:
    v = SimpleNamespace()
    gr.Markdown("The curated dataset (train images plus every accepted sample, as an ImageFolder tree) with a CSV "
                "manifest of the candidates (source, direction, ψ, ρ, decision), and the reproducibility bundle "
                "(configs, seeds, thresholds, model and token hashes). Files are written inside the project.")
    with gr.Row():
        v.export = gr.Button("Export the curated dataset")
        v.bundle = gr.Button("Reproducibility bundle")
    v.msg = gr.Markdown()
    v.file = gr.File(label="download", interactive=False)
    return v


def wire(state: AppState, v: SimpleNamespace, shared: SimpleNamespace) -> None:
    v.export.click(safe(partial(export_dataset, state)), [], [shared.job_md, shared.timer], api_name="export_dataset")
    v.bundle.click(safe(partial(bundle, state)), [], [shared.job_md, shared.timer], api_name="bundle")


def refresh_outputs(v: SimpleNamespace) -> list:
    return [v.msg, v.file]


def refresh(state: AppState, v: SimpleNamespace) -> list:
    return list(state.last_export) if state.last_export is not None else [gr.skip(), gr.skip()]


def _in_project(state: AppState, path) -> str:
    """A path as the page shows it: relative to the project folder (the server's own folders are not the page's)."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(state.project_dir.resolve()))
    except ValueError:
        return Path(path).name


def export_dataset(state: AppState):
    def run(on_progress, cancel):
        import shutil

        r = api.export_dataset(state.project(), on_progress=on_progress, cancel=cancel)
        archive = shutil.make_archive(r["path"], "zip", r["path"])
        state.last_export = (f"Exported {r['real_images']} train images and {r['generated_images']} accepted samples "
                             f"({r['candidates']} candidates in the manifest) to `{_in_project(state, r['path'])}` in the "
                             f"project folder; download it below.", archive)
        return r
    return started(state, "export the curated dataset", run)


def bundle(state: AppState):
    def run(on_progress, cancel):
        r = api.reproducibility_bundle(state.project())
        state.last_export = (f"Bundle with {r['models']} models, {r['tokens']} tokens, {r['runs']} runs: "
                             f"`{_in_project(state, r['path'])}` in the project folder; download it below.", r["path"])
        return r
    return started(state, "reproducibility bundle", run)
