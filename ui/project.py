"""The Project screen: the open project's dataset, groups and ERM report; create a project (or
re-import, after a confirmation that says what would be deleted); train or load the ERM model
(after a confirmation when candidates would get stale scores); choose the inpainting model and
the masker."""

from __future__ import annotations

import json
from functools import partial
from types import SimpleNamespace
from typing import Optional

import gradio as gr

from ddb_core import api
from ddb_core.project.errors import DDBError
from ddb_core.classifiers.evaluation import report_markdown

from .state import AppState, safe

FORMATS = ["demo", "waterbirds", "celeba", "metashift", "imagefolder"]


def build(state: AppState) -> SimpleNamespace:
    v = SimpleNamespace()
    v.status = gr.Markdown(project_markdown(state), elem_id="project-status")
    with gr.Accordion("Create a project from a dataset", open=not state.exists()):
        with gr.Row():
            v.fmt = gr.Dropdown(FORMATS, value="demo", label="format")
            v.source = gr.Textbox(label="dataset folder (not for the demo)")
        with gr.Row():
            v.class_names = gr.Textbox(label="class names in label order (optional), e.g. landbird, waterbird",
                                       elem_id="class-names")
            v.attr_names = gr.Textbox(label="spurious attribute values in order (optional), e.g. land, water",
                                      elem_id="attr-names")
            v.object_prompt = gr.Textbox(label="object word of the prompts (optional), e.g. bird, or landbird=bird, "
                                               "waterbird=bird", elem_id="object-prompt")
        v.create = gr.Button("Create / re-import into this project folder")
    with gr.Accordion("ERM model", open=False):
        with gr.Row():
            v.erm_epochs = gr.Number(6, label="epochs", precision=0)
            v.erm_lr = gr.Number(1e-3, label="learning rate")
            v.erm_btn = gr.Button("Train the ERM model here")
        with gr.Row():
            v.ckpt = gr.Textbox(label="or load a checkpoint (path to a state_dict)")
            v.ckpt_arch = gr.Dropdown(["resnet18", "resnet34", "resnet50"], value="resnet50", label="architecture")
            v.ckpt_size = gr.Number(224, label="input size", precision=0)
            v.load_btn = gr.Button("Load checkpoint")
    with gr.Accordion("Generation models", open=False):
        with gr.Row():
            v.inpaint_model = gr.Textbox(label="inpainting model: hub id or local diffusers folder")
            v.masker = gr.Dropdown(["provided", "langsam", "grabcut", "gradcam"], label="masker")
            v.masker_opts = gr.Textbox(label="masker options (JSON), e.g. {\"shape\": \"box\"} or {\"box_choice\": \"union\"}")
        with gr.Row():
            v.save_models = gr.Button("Save")
            v.check_model = gr.Button("Check that the inpainting model loads")
    v.msg = gr.Markdown(elem_id="project-msg")
    with gr.Row():
        v.confirm = gr.Button("Confirm", visible=False, variant="stop", elem_id="btn-project-confirm")
        v.cancel = gr.Button("Cancel", visible=False, elem_id="btn-project-cancel")
    v.pending = gr.State(None)  # the action asked for, bound to its arguments until confirmed
    return v


def wire(state: AppState, v: SimpleNamespace, shared: SimpleNamespace) -> None:
    outputs = [shared.job_md, shared.timer, v.msg, v.confirm, v.cancel, v.pending]
    v.create.click(safe(partial(create, state)), [v.fmt, v.source, v.class_names, v.attr_names, v.object_prompt], outputs,
                   api_name="create_project")
    v.erm_btn.click(safe(partial(train_erm, state)), [v.erm_epochs, v.erm_lr], outputs, api_name="train_erm")
    v.load_btn.click(safe(partial(load_checkpoint, state)), [v.ckpt, v.ckpt_arch, v.ckpt_size], outputs,
                     api_name="load_checkpoint")
    v.confirm.click(safe(partial(confirm, state)), [v.pending], outputs, api_name="confirm_project")
    v.cancel.click(lambda: (gr.skip(), gr.skip(), "Cancelled; nothing was changed.", gr.Button(visible=False),
                            gr.Button(visible=False), None), [], outputs)
    v.save_models.click(safe(partial(save_models, state)), [v.inpaint_model, v.masker, v.masker_opts], [v.msg],
                        api_name="save_models")
    v.check_model.click(partial(check_model, state), [v.inpaint_model], [v.msg], api_name="check_model")


def refresh_outputs(v: SimpleNamespace) -> list:
    return [v.status, v.inpaint_model, v.masker, v.masker_opts]


def refresh(state: AppState, v: SimpleNamespace) -> list:
    s = api.pipeline_settings(state.project()) if state.class_names() else {}
    return [project_markdown(state), s.get("inpaint_model", ""), s.get("masker"),
            json.dumps(s.get("masker_options") or {}) if s else ""]


def project_markdown(state: AppState) -> str:
    if not state.exists():
        return f"No project at `{state.project_dir}` yet: create one below."
    try:
        project = state.project()
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
    s = api.pipeline_settings(project)
    options = json.dumps(s["masker_options"]) if s["masker_options"] else ""
    lines += ["", f"Inpainting model: `{s['inpaint_model']}`; masker: `{s['masker']}` {options}"]
    if st["active_erm_model"] is not None:
        try:
            reports = api.evaluate(project, st["active_erm_model"])
        except DDBError as e:  # e.g. scores imported from elsewhere, with no stored model behind them
            lines += ["", "## ERM model", "", f"No report for the active ERM model: {e}. Train or load one on this screen."]
        else:
            lines += ["", "## ERM model", ""] + [report_markdown(r, f"{split} split") for split, r in reports.items()]
    return "\n".join(lines)


# -- handlers: each returns (job status, timer, message, Confirm, Cancel, pending action) -----------

def _asked(message: str, pending: dict):
    """Show ``message`` with Confirm / Cancel; the action waits in ``pending`` with its arguments."""
    return gr.skip(), gr.skip(), message, gr.Button(visible=True), gr.Button(visible=True), pending


def _started(job_text: str):
    return job_text, gr.Timer(active=True), "", gr.Button(visible=False), gr.Button(visible=False), None


def parse_object_prompt(text: str):
    """"bird" → "bird"; "a=bird, b=duck" → {"a": "bird", "b": "duck"}; empty → None."""
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    if not items:
        return None
    if all("=" in x for x in items):
        return {k.strip(): w.strip() for k, w in (x.split("=", 1) for x in items)}
    if len(items) == 1:
        return items[0]
    raise DDBError("object word: one word for every class, or class=word pairs separated by commas")


def create(state: AppState, fmt, source, class_names, attr_names, object_prompt):
    split = lambda text: [x.strip() for x in (text or "").split(",") if x.strip()] or None
    args = {"kind": "create", "fmt": fmt, "source": state.path(source, "dataset folder") if fmt != "demo" else None,
            "class_names": split(class_names), "attr_names": split(attr_names),
            "object_prompt": parse_object_prompt(object_prompt)}
    if state.exists() and state.project().sample_count():
        from ddb_core.data.datasets import reimport_summary

        where = f" from {args['source']}" if args["source"] else ""
        return _asked(f"**Re-import?** The {reimport_summary(state.project())}. Press Confirm to re-import {fmt} data"
                      f"{where}, or Cancel.", args)
    return _started(_run_create(state, args, replace=False))


def _run_create(state: AppState, args: dict, replace: bool) -> str:
    def run(on_progress, cancel):
        source = state.path(args["source"], "dataset folder") if args["source"] else None  # again, as it is used
        return api.create_project(state.project_dir, args["fmt"], source, replace=replace, delete_derived=replace,
                                  class_names=args["class_names"], attr_names=args["attr_names"],
                                  object_prompt=args["object_prompt"], on_progress=on_progress)
    return state.start(f"create project ({args['fmt']})", run)


def stale_warning(state: AppState) -> Optional[str]:
    """What switching the active ERM model does to the candidates, or None when there are none."""
    if not state.exists():
        return None
    n = state.project().db.execute("select count(*) from candidates where psi is not null").fetchone()[0]
    if not n:
        return None
    return (f"The project has {n} scored candidates. A new active ERM model makes their scores **stale**: they count as "
            f"not scored (nothing is kept automatically) until you run 1. Select and “Rescore stale candidates”; "
            f"manual decisions stay. Thresholds are kept per model.")


def train_erm(state: AppState, epochs, lr):
    args = {"kind": "train", "epochs": int(epochs), "lr": float(lr)}
    warning = stale_warning(state)
    if warning:
        return _asked(f"**Train another ERM model?** {warning} Press Confirm, or Cancel.", args)
    return _started(_run_train(state, args))


def _run_train(state: AppState, args: dict) -> str:
    from ddb_core.classifiers.training import TrainConfig

    cfg = TrainConfig(epochs=args["epochs"], lr=args["lr"])
    return state.start("train ERM", lambda on_progress, cancel: api.train_erm(
        state.project(), cfg, on_progress=on_progress, cancel=cancel))


def load_checkpoint(state: AppState, path, arch, size):
    args = {"kind": "load", "path": state.path(path, "checkpoint"), "arch": arch, "size": int(size)}
    if not args["path"]:
        raise DDBError("give the path of the checkpoint file")
    warning = stale_warning(state)
    if warning:
        return _asked(f"**Load another ERM model?** {warning} Press Confirm, or Cancel.", args)
    return _started(_run_load(state, args))


def _run_load(state: AppState, args: dict) -> str:
    return state.start("load ERM checkpoint", lambda on_progress, cancel: api.load_erm(
        state.project(), state.path(args["path"], "checkpoint"), args["arch"], args["size"], on_progress=on_progress))


def confirm(state: AppState, pending):
    if not pending:
        return _started(state.job_markdown())
    run = {"create": lambda a: _run_create(state, a, replace=True), "train": partial(_run_train, state),
           "load": partial(_run_load, state)}[pending["kind"]]
    return _started(run(pending))


def save_models(state: AppState, model, masker, opts):
    try:
        options = json.loads(opts) if opts and opts.strip() else {}
    except (ValueError, RecursionError) as e:  # (a value nested thousands deep is not an option either)
        raise DDBError(f"masker options must be JSON ({str(e)[:120]}), e.g. {{\"shape\": \"box\"}}") from None
    if not isinstance(options, dict):
        raise DDBError(f"masker options must be a JSON object, got {opts!r}")
    for key in ("dino", "sam"):
        if key in options:
            options[key] = state.path(options[key], f"masker option {key}", hub=True)
    api.set_pipeline_settings(state.project(), inpaint_model=state.path(model, "inpainting model", hub=True) or None,
                              masker=masker or None, masker_options=options)
    return "Saved."


def check_model(state: AppState, model):
    try:
        inp = api.load_inpainter(state.project(), state.path(model, "inpainting model", hub=True) or None)
    except DDBError as e:
        return f"**Not available**: {e}"
    return f"Loaded `{inp.model_ref}` (resolution {inp.resolution} px)."
