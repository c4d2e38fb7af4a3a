"""The Pipeline screen: each stage's status and a run button (select, textual inversion, masks,
generate, score, rescore, or all of them; each resumes), and a preview of what each token makes.

The stages use the project's own settings (inpainting model, masker): "Run all" on an imported
dataset runs them with its settings, not the demo's.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import gradio as gr

from ddb_core import api
from ddb_core.project.errors import DDBError

from . import plots
from .state import AppState, safe, started

DEVICES = ["auto", "cpu", "cuda"] + [f"cuda:{k}" for k in range(8)]
STAGES = ("select", "invert", "masks", "generate", "score", "rescore", "all")
USES_MODEL = ("invert", "generate", "all")


def build(state: AppState) -> SimpleNamespace:
    v = SimpleNamespace()
    v.stages = gr.Markdown(elem_id="stages")
    with gr.Row():
        v.device = gr.Dropdown(DEVICES, value="auto", label="device of every model (pipeline and retraining)",
                               info="auto = CUDA when present; saved with the project", elem_id="device")
        v.dtype = gr.Dropdown(["auto", "float32", "float16", "bfloat16"], value="auto",
                              label="inpainting precision", info="auto = float16 on CUDA, float32 on CPU; scoring (IG) is float32")
    with gr.Row():
        v.k = gr.Number(40, label="K: images per class (count, or fraction < 1)")
        v.ti_size = gr.Number(20, label="textual-inversion images per class", precision=0)
        v.ti_steps = gr.Number(150, label="inversion steps", precision=0)
        v.gen_steps = gr.Number(20, label="denoising steps", precision=0)
        v.guidance = gr.Number(7.5, label="guidance")
        v.ig_steps = gr.Number(16, label="IG steps", precision=0)
    with gr.Row():
        v.buttons = {"select": gr.Button("1. Select"), "invert": gr.Button("2. Textual inversion")}
        v.preview_btn = gr.Button("Preview the tokens")
        v.buttons.update({"masks": gr.Button("3. Masks"), "generate": gr.Button("4. Generate"),
                          "score": gr.Button("5. Score"),
                          "rescore": gr.Button("Rescore stale candidates", elem_id="btn-rescore"),
                          "all": gr.Button("Run all (resumes)", variant="primary")})
    v.preview = gr.Gallery(label="token preview: source, mask, result", columns=6, height=300, elem_classes=["pixelated"])
    v.msg = gr.Markdown()
    return v


def wire(state: AppState, v: SimpleNamespace, shared: SimpleNamespace) -> None:
    inputs = [v.k, v.ti_size, v.ti_steps, v.gen_steps, v.guidance, v.ig_steps]
    for stage, btn in v.buttons.items():
        btn.click(safe(partial(run_stage, state, stage)), inputs, [shared.job_md, shared.timer], api_name=f"run_{stage}")
    v.preview_btn.click(safe(partial(preview, state)), [v.gen_steps], [v.preview, v.msg], api_name="preview")
    for control in (v.device, v.dtype):
        control.input(safe(partial(save_device, state)), [v.device, v.dtype], [v.stages, v.msg])


def save_device(state: AppState, device: str, dtype: str):
    """Store the device setting with the project; every later stage and retraining uses it."""
    p = state.project()
    s = api.set_pipeline_settings(p, device=device, dtype=dtype)
    return stages_markdown(state), f"Device saved: {s['device']} ({s['dtype']}); the next stage runs there."


def refresh_outputs(v: SimpleNamespace) -> list:
    return [v.stages, v.device, v.dtype]


def refresh(state: AppState, v: SimpleNamespace) -> list:
    if not state.exists() or not state.project().get_meta("class_names"):
        return [stages_markdown(state), gr.update(), gr.update()]
    s = api.pipeline_settings(state.project())
    return [stages_markdown(state), s["device"], s["dtype"]]


def stages_markdown(state: AppState) -> str:
    if not state.exists():
        return "No project yet."
    p = state.project()
    q = lambda sql: p.db.execute(sql).fetchone()[0]
    stale = api.stale_scores(p) if p.get_meta("class_names") else 0
    sources = q("select count(*) from selections where purpose = 'source'")
    no_detection = q("select count(*) from masks where status = 'no_detection'")
    scored = q("select count(psi) from candidates") - stale
    rows = [("ERM model", "ready" if p.active_erm_id else "not trained"),
            ("selection", f"{sources} source images"),
            ("textual inversion", f"{q('select count(distinct label) from tokens')} of {len(state.class_names())} tokens"),
            ("masks", f"{q('select count(*) from masks')} ({no_detection} no detection)"),
            ("generation", f"{q('select count(*) from candidates')} candidates"),
            ("scoring", f"{scored} scored by the active ERM model"
                        + (f", **{stale} stale** (scored by another model: rescore them)" if stale else "")),
            ("engine (generation, scoring)", api.engine_config(p).describe()),
            ("device (every model)", device_line(p))]
    lines = ["| stage | status |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
    runs = p.runs()[-5:]
    if runs:
        lines += ["", "Recent runs: " + "; ".join(f"{r['stage']} {r['status']}" + (f" ({r['error']})" if r["error"] else "")
                                                  for r in runs)]
    return "\n".join(lines)


def device_line(p) -> str:
    from ddb_core.project.device import resolve_device

    s = api.pipeline_settings(p)
    try:
        where = str(resolve_device(s["device"]))
    except DDBError as e:
        where = f"unavailable here ({e})"
    return f"{s['device']} → {where}, precision {s['dtype']}"


def _configs(state: AppState, k, ti_size, ti_steps, gen_steps, guidance, ig_steps) -> dict:
    from ddb_core.pipeline.generation import GenerationConfig
    from ddb_core.method.inpainting import InpaintConfig
    from ddb_core.method.inversion import InversionConfig
    from ddb_core.method.selection import SelectionConfig

    model = api.pipeline_settings(state.project())["inpaint_model"]
    k = float(k) if float(k) < 1 else int(k)
    return {"selection": SelectionConfig(k=k, ti_size=int(ti_size)), "inversion": InversionConfig(steps=int(ti_steps)),
            "generation": GenerationConfig(use_tokens=int(ti_size) > 0),
            "inpaint": InpaintConfig(model=model, steps=int(gen_steps), guidance=float(guidance), batch_size=16),
            "ig_steps": int(ig_steps)}


def run_stage(state: AppState, stage: str, *values):
    """Start one stage (or all of them) as the background job, with the project's model and masker."""
    c = _configs(state, *values)
    p = state.project()

    def invert(on_progress, cancel):
        if c["selection"].ti_size == 0:
            return {}
        return api.invert(p, cfg=c["inversion"], on_progress=on_progress, cancel=cancel)

    jobs = {
        "select": lambda on_progress, cancel: api.select(p, c["selection"]),
        "invert": invert,
        "masks": lambda on_progress, cancel: api.compute_masks(p, on_progress=on_progress, cancel=cancel),
        "generate": lambda on_progress, cancel: api.generate(p, cfg=c["generation"], inpaint=c["inpaint"],
                                                              on_progress=on_progress, cancel=cancel),
        "score": lambda on_progress, cancel: api.score(p, n_steps=c["ig_steps"], on_progress=on_progress, cancel=cancel),
        "rescore": lambda on_progress, cancel: api.score(p, n_steps=c["ig_steps"], rescore=True, on_progress=on_progress,
                                                          cancel=cancel),
    }

    def run_all(on_progress, cancel):
        for name in ("select", "invert", "masks", "generate", "score"):
            jobs[name](on_progress=on_progress, cancel=cancel)

    jobs["all"] = run_all
    state.check_settings()
    job = jobs[stage]

    def checked(on_progress, cancel):
        state.check_settings()  # again when the job starts: the paths it will load
        return job(on_progress=on_progress, cancel=cancel)
    return started(state, stage, checked, uses_model=stage in USES_MODEL)


def preview(state: AppState, gen_steps):
    items = state.with_model("preview the tokens", lambda: api.preview_tokens(
        state.project(), n=4, steps=int(gen_steps), inpainter=state.inpainter()))
    if not items:
        return [], "No token learned yet: run textual inversion first."
    names = state.class_names()
    gallery = []
    for it in items:
        gallery += [(plots.enlarge(it["source"], 128), f"source ({names[it['label']]} token)"),
                    (plots.enlarge(plots.overlay_mask(it["source"], it["mask"]), 128), "mask"),
                    (plots.enlarge(it["result"], 128), it["prompt"])]
    return gallery, f"{len(items)} previews with the learned tokens."
