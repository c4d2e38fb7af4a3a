"""The curation web app (Gradio). Five screens: Project, Pipeline, Review, Retrain, Export.

The app holds no method logic: every action calls the ``ddb_core.api`` facade (and the review
model it returns); long work runs in a ``BackgroundJob`` polled by a timer, with progress and a
cancel button. Core errors (``DDBError``) become plain messages. Only files of the open project
are served (``allowed_paths``); images are sent as enlarged arrays (nearest neighbour, no blur).
"""

from __future__ import annotations

import html
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import gradio as gr
import numpy as np

from ddb_core import api
from ddb_core.errors import DDBError
from ddb_core.retraining import RetrainConfig

_RETRAIN = RetrainConfig()  # the library's documented retraining defaults
from ddb_core.evaluation import report_markdown
from ddb_core.jobs import BackgroundJob
from ddb_core.store import Project

from . import plots

PAGE = 48  # gallery thumbnails per page
BIG = 256  # enlarged panel side, px
STATUS_CHOICES = [("all", "all"), ("automatically kept", "auto-kept"), ("automatically pruned", "auto-pruned"),
                  ("manually accepted", "accepted"), ("manually rejected", "rejected"), ("not scored", "unscored"),
                  ("stale scores (another ERM model)", "stale")]
SORT_CHOICES = [("id", "id"), ("ρ high → low", "-rho"), ("ρ low → high", "rho"), ("ψ low → high", "psi"),
                ("ψ high → low", "-psi"), ("detection score high → low", "-detection")]

KEYBOARD_JS = """
<script>
document.addEventListener('keydown', function (e) {
  const t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const ids = {a: 'btn-accept', r: 'btn-reject', u: 'btn-undo', ArrowLeft: 'btn-prev', ArrowRight: 'btn-next'};
  const id = ids[e.key];
  if (!id) return;
  let el = document.getElementById(id);
  if (!el) return;
  if (el.tagName !== 'BUTTON') el = el.querySelector('button') || el;
  e.preventDefault();
  el.click();
});
</script>
"""
CSS = """
.pixelated img { image-rendering: pixelated; }
#review-info { font-size: 0.92em; }
"""


SERVED = ("reports", "exports")  # the project folders whose files the pages link to
NEVER_SERVED = ("project.db", "project.db-wal", "project.db-shm", "models", "tokens", "runs", "masks", "candidates", "ig",
                "dataset")


def launch_kwargs(project_dir: str) -> dict:
    """What ``launch()`` needs besides host, port and auth: the keyboard script, CSS, and the files served.

    The file route serves the report images and the exports of the open project (and the images the
    pages render, from Gradio's own cache) — never the database, checkpoints, tokens or datasets."""
    root = Path(project_dir).resolve()
    return {"head": KEYBOARD_JS, "css": CSS, "allowed_paths": [str(root / d) for d in SERVED],
            "blocked_paths": [str(root / d) for d in NEVER_SERVED]}


def user_of(request=None) -> str:
    """Who acts, for the audit log: the signed-in user when the app runs with --auth, else "user"
    (the request of the event being handled, from Gradio's context, when none is given)."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    name = getattr(request, "username", None) if request is not None else None
    return str(name) if name else "user"


def check_path(value: str, roots: list[Path], what: str) -> str:
    """A path typed into the browser, if it lies in one of ``roots`` (the folders the person who started
    the server allows); a hub id (``org/name`` that is not a local folder) passes as it is."""
    text = (value or "").strip()
    if not text:
        return text
    p = Path(text).expanduser()
    looks_local = p.is_absolute() or text.startswith((".", "~")) or p.exists()
    if not looks_local:
        return text  # a model id on the hub
    real = Path(os.path.realpath(p))
    if any(real == r or real.is_relative_to(r) for r in roots):
        return str(p)
    raise DDBError(f"{what} {text!r} is outside the folders this server may read ({', '.join(map(str, roots))}); "
                   f"start the app with --data-root FOLDER to allow another")


def _load(path: Optional[str], shape: Optional[tuple[int, int]] = None, mask: bool = False) -> Optional[np.ndarray]:
    """An image at its own size, or a mask at ``shape`` (its image's height and width)."""
    from ddb_core.imaging import load_mask, load_rgb

    if not path:
        return None
    return load_mask(path, shape) if mask else load_rgb(path)


class AppState:
    """The open project, its review model, and the one background job at a time."""

    def __init__(self, project_dir: str, build_demo: bool, data_roots: Optional[list] = None):
        self.project_dir = Path(project_dir)
        # folders whose paths the browser may name (datasets, checkpoints, models); the project's always
        roots = [Path(r) for r in (data_roots or [Path.cwd()])] + [self.project_dir, Path(__file__).resolve().parents[1] / "data"]
        self.data_roots = list(dict.fromkeys(Path(os.path.realpath(r)) for r in roots))
        self.model_lock = threading.Lock()  # one user of the inpainting model at a time
        self.last_export: Optional[tuple[str, str]] = None  # (message, file) of the latest export job
        self.job: Optional[BackgroundJob] = None
        self.last_job: Optional[str] = None
        self._index = None
        self._index_candidates = -1
        if Project.exists(self.project_dir):
            self.project().mark_interrupted_runs()  # runs of a process that was killed
        if build_demo and not self._ready():
            self.start("build the demo project", self._build_demo, uses_model=True)

    # -- project -----------------------------------------------------------------------------
    def project(self) -> Project:
        return Project.open(self.project_dir)

    def _ready(self) -> bool:
        if not Project.exists(self.project_dir):
            return False
        p = self.project()
        return p.sample_count() > 0 and p.active_erm_id is not None and \
            p.db.execute("select count(*) from candidates where psi is not null").fetchone()[0] > 0

    def _build_demo(self, on_progress, cancel):
        project = api.build_demo_project(self.project_dir, on_progress=on_progress, cancel=cancel)
        return api.prepare_demo_candidates(project, quick=True, on_progress=on_progress, cancel=cancel)

    def index(self, reload: bool = False):
        """The review model; rebuilt when the number of candidates changed (new generation or scores)."""
        if not Project.exists(self.project_dir):
            return None
        p = self.project()
        n = p.db.execute("select count(*) || ':' || count(psi) from candidates").fetchone()[0]
        if reload or self._index is None or self._index_candidates != n:
            self._index = api.review_index(p)
            self._index_candidates = n
        return self._index

    def inpainter(self):
        """The project's inpainting model, loaded once (tokens are loaded into it as needed)."""
        model = api.pipeline_settings(self.project())["inpaint_model"]
        if getattr(self, "_inpainter", None) is None or self._inpainter_ref != model:
            self._inpainter = api.load_inpainter(self.project(), model)
            self._inpainter_ref = model
        return self._inpainter

    # -- jobs ----------------------------------------------------------------------------------
    def path(self, value: str, what: str) -> str:
        return check_path(value, self.data_roots, what)

    def start(self, name: str, fn: Callable, uses_model: bool = False) -> str:
        """Run ``fn`` as the one background job; ``uses_model`` jobs hold the inpainting model's lock."""
        if self.job is not None and self.job.running:
            return f"**{self.job.name}** is still running; cancel it or wait for it to finish."
        if uses_model:
            inner = fn

            def fn(on_progress, cancel):
                if not self.model_lock.acquire(timeout=1.0):
                    raise DDBError("the inpainting model is busy (a preview or a regeneration); try again in a moment")
                try:
                    return inner(on_progress=on_progress, cancel=cancel)
                finally:
                    self.model_lock.release()
        self.job = BackgroundJob(name, fn)
        return self.job_markdown()

    def with_model(self, what: str, fn: Callable):
        """Run ``fn`` now if no job is using the inpainting model, else say why not."""
        if not self.model_lock.acquire(blocking=False):
            raise DDBError(f"cannot {what} now: the inpainting model is in use by "
                           f"{self.job.name if self.job is not None and self.job.running else 'another request'}; "
                           f"wait for it to finish")
        try:
            return fn()
        finally:
            self.model_lock.release()

    def job_markdown(self) -> str:
        if self.job is None:
            return "No background work."
        s = self.job.snapshot()
        if s.state == "running":
            p = s.progress
            if p is None:
                return f"**{s.name}**: starting…"
            eta = f", about {p.eta_s:.0f}s left" if p.eta_s else ""
            rate = f", {p.rate:.2f}/s" if p.rate else ""
            return f"**{s.name}** — {p.stage}: {p.done}/{p.total}{rate}{eta} {p.message}"
        if s.state == "done":
            return f"**{s.name}**: done in {s.finished - s.started:.0f}s."
        return f"**{s.name}**: {s.state} — {s.error}"

    def project_markdown(self) -> str:
        if not Project.exists(self.project_dir):
            return f"No project at `{self.project_dir}` yet: create one below."
        try:
            project = self.project()
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
        lines += ["", f"Inpainting model: `{s['inpaint_model']}`; masker: `{s['masker']}` {json.dumps(s['masker_options']) if s['masker_options'] else ''}"]
        if st["active_erm_model"] is not None:
            reports = api.evaluate(project, st["active_erm_model"])
            lines += ["", "## ERM model", ""] + [report_markdown(r, f"{s} split") for s, r in reports.items()]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Review helpers (pure functions of the index; tested in-process).


def thresholds_from(index, values: list[float]) -> tuple[dict, dict]:
    """Slider values (Ψ per class, then P per class) → (Psi, P) dicts."""
    n = index.n_classes
    return {c: float(values[c]) for c in range(n)}, {c: float(values[n + c]) for c in range(n)}


def counts_markdown(index, Psi: dict, P: dict, names: list[str]) -> str:
    if index is None or len(index) == 0:
        return "No candidates yet: run generation and scoring on the Pipeline screen."
    notes = []
    if getattr(index, "problem", None):
        notes.append(f"**Nothing can be pruned yet**: {html.escape(index.problem)}")
    n_stale = int(index.stale.sum()) if hasattr(index, "stale") else 0
    if n_stale:
        notes.append(f"**{n_stale} candidates were scored by another ERM model** and count as not scored: "
                     f"Pipeline → “Rescore stale candidates” (or `ddb score --rescore`).")
    counts = index.counts(Psi, P)
    lines = ["| direction | candidates | kept | pruned | manual accept / reject |", "| --- | ---: | ---: | ---: | ---: |"]
    total_kept = 0
    for d, v in counts.items():
        i, j = (int(x) for x in d.split("->"))
        lines.append(f"| {names[i]} → {names[j]} | {v['candidates']} | **{v['kept']}** | {v['pruned']} | {v['accepted']} / {v['rejected']} |")
        total_kept += v["kept"]
    text = "\n".join(lines) + f"\n\n<span id='kept-total'>kept in all: {total_kept}</span>"
    return "\n\n".join(notes + [text])


def status_codes(index, Psi: dict, P: dict) -> np.ndarray:
    auto = index.auto(Psi, P)
    return np.where(index.manual == 1, 2, np.where(index.manual == 2, 3, auto.astype(np.int64)))


def threshold_plots(index, Psi: dict, P: dict, direction: Optional[str]):
    """(scatter, ψ histogram, ρ histogram) of one direction (or all) at the given thresholds."""
    if index is None or len(index) == 0:
        blank = np.full((120, 300, 3), 255, np.uint8)
        return blank, blank, blank
    if direction:
        i, j = (int(x) for x in direction.split("->"))
        sel = (index.src == i) & (index.tgt == j)
        psi_line, rho_line = Psi.get(i), P.get(j)
    else:
        sel = np.ones(len(index), bool)
        i = j = None
        psi_line = rho_line = None
    codes = status_codes(index, Psi, P)[sel]
    psi, rho = index.psi[sel], index.rho[sel]
    ok = np.isfinite(rho)
    rng = (np.percentile(rho[ok], [0.5, 99.5]) if ok.any() else (0.0, 1.0))
    rho_range = (float(rng[0]), float(rng[1]) if rng[1] > rng[0] else float(rng[0]) + 1.0)
    sc = plots.scatter(psi, rho, codes, psi_line, rho_line, ranges=((0.0, 1.0), rho_range),
                       title=f"ψ vs ρ ({int(sel.sum())} candidates): green kept, red pruned, blue/purple manual")
    hp = plots.histogram(psi, psi_line, "ψ = P(source class | result); kept left of the line", rng=(0.0, 1.0))
    hr = plots.histogram(rho, rho_line, "ρ = Σ mask · IG; kept right of the line", rng=rho_range)
    return sc, hp, hr


def gallery_items(index, ids, page: int):
    """(thumbnails with captions, page text) of one gallery page of ``ids``."""
    if index is None or len(ids) == 0:
        return [], "no candidate matches the filter"
    pages = max(1, -(-len(ids) // PAGE))
    page = min(max(0, page), pages - 1)
    chunk = [int(i) for i in ids[page * PAGE:(page + 1) * PAGE]]
    paths = {r[0]: r[1] for r in index.project.db.execute(
        f"select id, path from candidates where id in ({','.join('?' * len(chunk))})", chunk)}
    items = []
    for cid in chunk:
        k = index.pos[cid]
        manual = int(index.manual[k])
        if manual:
            mark = "✔ accepted" if manual == 1 else "✘ rejected"
        else:
            mark = "kept" if index.kept_one(k) else "pruned"
        items.append((plots.enlarge(_load(str(index.project.project_path(paths[cid]))), 96), f"#{cid} {mark}"))
    return items, f"page {page + 1} of {pages} — {len(ids)} candidates"


def detail_panels(index, cid: Optional[int], names: list[str]):
    """The five panels and the info text of one candidate."""
    if index is None or cid is None:
        return None, None, None, None, None, "No candidate selected."
    d = index.detail(int(cid))
    src = _load(d["source_path"])
    mask = _load(d["mask_path"], src.shape[:2], mask=True) if d["mask_path"] else None
    res = _load(d["result_path"])
    p1 = plots.enlarge(src, BIG)
    p2 = plots.enlarge(plots.overlay_mask(src, mask), BIG)
    p3 = plots.enlarge(res, BIG)
    if d["probs_source"] and d["probs_generated"]:
        p4 = plots.softmax_bars(d["probs_source"], d["probs_generated"], names, d["source_label"], d["Psi"])
    else:
        p4 = None
    if d["ig_path"]:
        ig = np.load(d["ig_path"])
        p5 = plots.heatmap_overlay(res, ig, mask, BIG)
    else:
        p5 = None
    unscored = "scores stale (another ERM model): rescore" if d.get("stale") else "not scored yet"
    decision = ("manually " + ("accepted" if d["manual"] == "accept" else "rejected")) if d["manual"] else \
        (unscored if d["auto"] is None else ("kept automatically" if d["auto"] else "pruned automatically"))
    fmt = lambda x: "—" if x is None else f"{x:.4f}"
    prov = d["provenance"]
    sign = lambda ok: "✓" if ok else "✗"
    psi_ok = d["psi"] is not None and d["Psi"] is not None and d["psi"] < d["Psi"]
    rho_ok = d["rho"] is not None and d["P"] is not None and d["rho"] > d["P"]
    info = "\n".join([
        f"**Candidate {d['id']}** ({d['method']}) — {names[d['source_label']]} → {names[d['target_label']]}: "
        f"<span id='decision'>**{decision}**</span> ({'in' if d['kept'] else 'out of'} the retraining set)",
        "",
        f"- ψ = {fmt(d['psi'])} {sign(psi_ok)} (must be < Ψ = {fmt(d['Psi'])})",
        f"- ρ = {fmt(d['rho'])} {sign(rho_ok)} (must be > P = {fmt(d['P'])}); IG convergence δ {fmt(d['ig_delta'])}",
        f"- prompt “{html.escape(d['prompt'] or '')}”, seed {d['seed']}",
        f"- mask: {d['mask_backend']} (detection score {fmt(d['detection_score'])}); "
        f"model {str(prov.get('model_ref', prov.get('model', '—')))}",
        f"- source {src.shape[1]}×{src.shape[0]} px; scores by ERM model {d.get('score_model_id') or '—'}"
        + (" (**stale**: not the active model)" if d.get("stale") else ""),
    ] + ([f"- SCGS candidate: the mask is Grad-CAM++ of the ERM model with the **high** (spurious) region kept and the "
          f"rest repainted with the true class; SCGS does not prune, so it is kept unless pruning is turned on for SCGS"]
         if d["method"] == "scgs" else []))
    return p1, p2, p3, p4, p5, info


# ---------------------------------------------------------------------------------------------


def build_app(project_dir: str, build_demo: bool = True, data_roots: Optional[list] = None) -> gr.Blocks:
    """The app on ``project_dir``. ``data_roots``: folders whose paths a browser may name (datasets,
    checkpoints, model folders); default the working directory (the project's own folder always)."""
    state = AppState(project_dir, build_demo, data_roots)
    names0, n0 = [], 0
    if Project.exists(state.project_dir):
        names0 = state.project().class_names
        n0 = len(names0)
    n_sliders = max(2, n0)

    with gr.Blocks(title="DDB Studio") as demo:
        gr.Markdown("# DDB Studio\nDiffusion-driven balancing: review every generated sample, tune Ψ and P, override, "
                    "retrain on what you accepted.")
        job_md = gr.Markdown(state.job_markdown(), elem_id="job-status")
        with gr.Row():
            cancel_btn = gr.Button("Cancel background work", size="sm", variant="stop", elem_id="btn-cancel-job")
            refresh_btn = gr.Button("Refresh", size="sm")
        timer = gr.Timer(1.0, active=state.job is not None)

        with gr.Tabs() as tabs:
            # ---------------------------------------------------------------- Project
            with gr.Tab("Project", id="project"):
                project_md = gr.Markdown(state.project_markdown(), elem_id="project-status")
                with gr.Accordion("Create a project from a dataset", open=not Project.exists(state.project_dir)):
                    with gr.Row():
                        fmt = gr.Dropdown(["demo", "waterbirds", "celeba", "metashift", "imagefolder"], value="demo", label="format")
                        source = gr.Textbox(label="dataset folder (not for the demo)")
                    with gr.Row():
                        class_names_in = gr.Textbox(label="class names in label order (optional), e.g. landbird, waterbird",
                                                    elem_id="class-names")
                        attr_names_in = gr.Textbox(label="spurious attribute values in order (optional), e.g. land, water",
                                                   elem_id="attr-names")
                        object_prompt_in = gr.Textbox(label="object word of the prompts (optional), e.g. bird, or "
                                                            "landbird=bird, waterbird=bird", elem_id="object-prompt")
                    create_btn = gr.Button("Create / re-import into this project folder")
                with gr.Accordion("ERM model", open=False):
                    with gr.Row():
                        erm_epochs = gr.Number(6, label="epochs", precision=0)
                        erm_lr = gr.Number(1e-3, label="learning rate")
                        erm_btn = gr.Button("Train the ERM model here")
                    with gr.Row():
                        ckpt = gr.Textbox(label="or load a checkpoint (path to a state_dict)")
                        ckpt_arch = gr.Dropdown(["resnet18", "resnet34", "resnet50"], value="resnet50", label="architecture")
                        ckpt_size = gr.Number(224, label="input size", precision=0)
                        load_btn = gr.Button("Load checkpoint")
                with gr.Accordion("Generation models", open=False):
                    with gr.Row():
                        inpaint_model = gr.Textbox(label="inpainting model: hub id or local diffusers folder")
                        masker = gr.Dropdown(["provided", "langsam", "grabcut", "gradcam"], label="masker")
                        masker_opts = gr.Textbox(label="masker options (JSON), e.g. {\"shape\": \"box\"} or {\"prompts\": {\"0\": \"bird\"}}")
                    with gr.Row():
                        save_models_btn = gr.Button("Save")
                        check_model_btn = gr.Button("Check that the inpainting model loads")
                project_msg = gr.Markdown(elem_id="project-msg")
                with gr.Row():
                    project_confirm = gr.Button("Confirm", visible=False, variant="stop", elem_id="btn-project-confirm")
                    project_cancel = gr.Button("Cancel", visible=False, elem_id="btn-project-cancel")
                pending_project = gr.State(None)  # the action asked for, bound to its arguments until confirmed

            # ---------------------------------------------------------------- Pipeline
            with gr.Tab("Pipeline", id="pipeline"):
                stages_md = gr.Markdown(elem_id="stages")
                with gr.Row():
                    k_in = gr.Number(40, label="K: images per class (count, or fraction < 1)")
                    ti_size = gr.Number(20, label="textual-inversion images per class", precision=0)
                    ti_steps = gr.Number(150, label="inversion steps", precision=0)
                    gen_steps = gr.Number(20, label="denoising steps", precision=0)
                    guidance = gr.Number(7.5, label="guidance")
                    ig_steps = gr.Number(16, label="IG steps", precision=0)
                with gr.Row():
                    b_select = gr.Button("1. Select")
                    b_invert = gr.Button("2. Textual inversion")
                    b_preview = gr.Button("Preview the tokens")
                    b_masks = gr.Button("3. Masks")
                    b_generate = gr.Button("4. Generate")
                    b_score = gr.Button("5. Score")
                    b_rescore = gr.Button("Rescore stale candidates", elem_id="btn-rescore")
                    b_all = gr.Button("Run all (resumes)", variant="primary")
                preview = gr.Gallery(label="token preview: source, mask, result", columns=6, height=300,
                                     elem_classes=["pixelated"])
                pipeline_msg = gr.Markdown()

            # ---------------------------------------------------------------- Review
            with gr.Tab("Review", id="review"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=320):
                        gr.Markdown("**Thresholds** (keep x′ iff ψ < Ψ of its source class and ρ > P of its target class)")
                        psi_sliders, p_sliders = [], []
                        for c in range(n_sliders):
                            name = names0[c] if c < n0 else f"class {c}"
                            psi_sliders.append(gr.Slider(0, 1, value=0.5, step=0.001, label=f"Ψ {name} (source)",
                                                         visible=c < n0, elem_id=f"psi-{c}"))
                        for c in range(n_sliders):
                            name = names0[c] if c < n0 else f"class {c}"
                            p_sliders.append(gr.Slider(-1, 1, value=0.0, step=0.0001, label=f"P {name} (target)",
                                                       visible=c < n0, elem_id=f"p-{c}"))
                        with gr.Row():
                            reset_th = gr.Button("Reset to the computed defaults…", size="sm", elem_id="btn-reset-th")
                            undo_th = gr.Button("Undo the last threshold change", size="sm", elem_id="btn-undo-th")
                        reset_confirm = gr.Button("Confirm the reset", size="sm", variant="stop", visible=False,
                                                  elem_id="btn-reset-confirm")
                        th_msg = gr.Markdown(elem_id="threshold-msg")
                        counts = gr.Markdown(elem_id="counts")
                    with gr.Column(scale=2):
                        plot_dir = gr.Dropdown(label="plots for direction", choices=[], value=None)
                        scatter = gr.Image(label="ψ–ρ scatter", type="numpy", interactive=False, height=270, elem_id="scatter")
                        with gr.Row():
                            hist_psi = gr.Image(label="ψ", type="numpy", interactive=False, height=130)
                            hist_rho = gr.Image(label="ρ", type="numpy", interactive=False, height=130)
                gr.Markdown("### Candidate")
                with gr.Row():
                    img_src = gr.Image(label="source", type="numpy", interactive=False, elem_id="panel-source", elem_classes=["pixelated"])
                    img_mask = gr.Image(label="mask on source", type="numpy", interactive=False, elem_id="panel-mask", elem_classes=["pixelated"])
                    img_res = gr.Image(label="inpainted result", type="numpy", interactive=False, elem_id="panel-result", elem_classes=["pixelated"])
                    img_bars = gr.Image(label="softmax shift", type="numpy", interactive=False, elem_id="panel-softmax")
                    img_ig = gr.Image(label="IG on result, mask outline", type="numpy", interactive=False, elem_id="panel-ig", elem_classes=["pixelated"])
                info = gr.Markdown(elem_id="review-info")
                with gr.Row():
                    b_prev = gr.Button("← previous", elem_id="btn-prev")
                    b_accept = gr.Button("accept (a)", variant="primary", elem_id="btn-accept")
                    b_reject = gr.Button("reject (r)", variant="stop", elem_id="btn-reject")
                    b_auto = gr.Button("back to automatic", elem_id="btn-auto")
                    b_undo = gr.Button("undo (u)", elem_id="btn-undo")
                    b_next = gr.Button("next →", elem_id="btn-next")
                with gr.Accordion("Edit the mask and regenerate this candidate", open=False):
                    gr.Markdown("Paint the region to repaint (red) on the source, then regenerate: the new candidate keeps the "
                                "source, prompt and seed, is scored at once, and appears next to the original.")
                    editor = gr.ImageEditor(type="numpy", image_mode="RGBA", height=300, elem_id="mask-editor",
                                            brush=gr.Brush(colors=["#ff3030"], default_size=10, color_mode="fixed"),
                                            transforms=(), sources=())
                    with gr.Row():
                        edit_btn = gr.Button("Load the current mask")
                        regen_btn = gr.Button("Regenerate with this mask", variant="primary")
                    regen_msg = gr.Markdown()
                gr.Markdown("### Gallery")
                with gr.Row():
                    f_dir = gr.Dropdown(label="direction", choices=[("all", "")], value="")
                    f_method = gr.Dropdown([("all", ""), ("DDB", "ddb"), ("SCGS", "scgs")], value="", label="method")
                    f_status = gr.Dropdown(STATUS_CHOICES, value="all", label="decision")
                    f_sort = gr.Dropdown(SORT_CHOICES, value="id", label="sort")
                    f_psi = gr.Textbox(label="ψ range (min,max)", placeholder="e.g. 0,0.5")
                    f_rho = gr.Textbox(label="ρ range (min,max)", placeholder="e.g. 0.1,")
                with gr.Row():
                    page_prev = gr.Button("◀ page", size="sm")
                    page_info = gr.Markdown(elem_id="page-info")
                    page_next = gr.Button("page ▶", size="sm")
                gallery = gr.Gallery(columns=12, height=420, allow_preview=False, elem_id="gallery", elem_classes=["pixelated"])
                with gr.Row():
                    batch_action = gr.Dropdown([("accept", "accept"), ("reject", "reject"), ("back to automatic", "auto")],
                                               value="reject", label="batch action on every candidate of the current filter")
                    batch_btn = gr.Button("Apply to the filter…")
                    batch_confirm = gr.Button("Confirm", visible=False, variant="stop", elem_id="btn-batch-confirm")
                batch_msg = gr.Markdown(elem_id="batch-msg")
                pending_batch = gr.State(None)  # the ids and action counted, until confirmed or cancelled
                nav = gr.State({"ids": [], "pos": 0, "page": 0})

            # ---------------------------------------------------------------- Retrain
            with gr.Tab("Retrain", id="retrain"):
                inputs_md = gr.Markdown(elem_id="retrain-inputs")
                with gr.Row():
                    gammas = gr.Textbox("1.0", label="γ per class (one value, or one per class, comma-separated)")
                    gamma_grid = gr.Textbox("", label="or choose γ by val WGA among (comma-separated, e.g. 1, 3, 10)",
                                            elem_id="gamma-grid")
                    r_lr = gr.Number(_RETRAIN.train.lr, label="learning rate")
                    r_epochs = gr.Number(_RETRAIN.train.epochs, label="epochs", precision=0)
                    r_evals = gr.Number(_RETRAIN.train.evals_per_epoch, label="val checks per epoch (model selection)",
                                        precision=0)
                    r_bs = gr.Number(_RETRAIN.train.batch_size, label="batch size", precision=0)
                    r_seeds = gr.Textbox("0", label="seeds (comma-separated)")
                    r_ratio = gr.Number(0.0, label="generated share of each batch (0 = natural)")
                retrain_btn = gr.Button("Retrain on accepted samples", variant="primary", elem_id="btn-retrain")
                report_pick = gr.Dropdown(label="reports", choices=[], value=None)
                report_md = gr.Markdown(elem_id="report")
                with gr.Row():
                    report_groups = gr.Image(label="per-group accuracy before → after", type="filepath", interactive=False)
                    report_curves = gr.Image(label="training curves", type="filepath", interactive=False)

            # ---------------------------------------------------------------- Export
            with gr.Tab("Export", id="export"):
                gr.Markdown("The curated dataset (train images plus every accepted sample, as an ImageFolder tree) with a CSV "
                            "manifest of the candidates (source, direction, ψ, ρ, decision), and the reproducibility bundle "
                            "(configs, seeds, thresholds, model and token hashes). Files are written inside the project.")
                with gr.Row():
                    export_btn = gr.Button("Export the curated dataset")
                    bundle_btn = gr.Button("Reproducibility bundle")
                export_msg = gr.Markdown()
                export_file = gr.File(label="download", interactive=False)

        # ===================================================================== handlers
        def safe(fn):
            def wrapped(*args):
                try:
                    return fn(*args)
                except DDBError as e:
                    raise gr.Error(str(e))
            wrapped.__name__ = fn.__name__
            return wrapped

        def names():
            return state.project().class_names if Project.exists(state.project_dir) else []

        # -- job status --------------------------------------------------------------------

        def cancel_job():
            if state.job is not None:
                state.job.cancel()
            return state.job_markdown()

        cancel_btn.click(cancel_job, outputs=[job_md])

        def start(name, fn, uses_model=False):
            msg = state.start(name, fn, uses_model=uses_model)
            return msg, gr.Timer(active=True)

        # -- project ------------------------------------------------------------------------
        def project_refresh():
            s = {}
            if Project.exists(state.project_dir) and state.project().class_names:
                s = api.pipeline_settings(state.project())
            return (state.project_markdown(), s.get("inpaint_model", ""), s.get("masker"),
                    json.dumps(s.get("masker_options") or {}) if s else "", stages_markdown())

        def asked(message, pending):
            """Show ``message`` with Confirm / Cancel; the action waits in ``pending`` with its arguments."""
            return gr.skip(), gr.skip(), message, gr.Button(visible=True), gr.Button(visible=True), pending

        def started(msg):
            return msg, gr.Timer(active=True), "", gr.Button(visible=False), gr.Button(visible=False), None

        def create(fmt_v, source_v, class_names_v, attr_names_v, object_prompt_v):
            split = lambda text: [x.strip() for x in (text or "").split(",") if x.strip()] or None
            prompt = split(object_prompt_v)
            if prompt and all("=" in x for x in prompt):
                prompt = {k.strip(): v.strip() for k, v in (x.split("=", 1) for x in prompt)}
            elif prompt and len(prompt) == 1:
                prompt = prompt[0]
            elif prompt:
                raise gr.Error("object word: one word for every class, or class=word pairs separated by commas")
            args = {"fmt": fmt_v, "source": state.path(source_v, "dataset folder") if fmt_v != "demo" else None,
                    "class_names": split(class_names_v), "attr_names": split(attr_names_v), "object_prompt": prompt}
            if Project.exists(state.project_dir) and state.project().sample_count():
                from ddb_core.datasets import reimport_summary

                return asked(f"**Re-import?** The {reimport_summary(state.project())}. Press Confirm to re-import "
                             f"{fmt_v} data{' from ' + args['source'] if args['source'] else ''}, or Cancel.",
                             {"kind": "create", **args})
            return started(run_create(args, replace=False))

        def run_create(args, replace):
            def run(on_progress, cancel):
                return api.create_project(state.project_dir, args["fmt"], args["source"], replace=replace,
                                          delete_derived=replace, class_names=args["class_names"],
                                          attr_names=args["attr_names"], object_prompt=args["object_prompt"],
                                          on_progress=on_progress)
            return state.start(f"create project ({args['fmt']})", run)

        project_outputs = [job_md, timer, project_msg, project_confirm, project_cancel, pending_project]
        create_btn.click(safe(create), [fmt, source, class_names_in, attr_names_in, object_prompt_in], project_outputs,
                         api_name="create_project")

        def stale_warning() -> Optional[str]:
            """What switching the active ERM model does to the candidates, or None when there are none."""
            if not Project.exists(state.project_dir):
                return None
            n = state.project().db.execute("select count(*) from candidates where psi is not null").fetchone()[0]
            if not n:
                return None
            return (f"The project has {n} scored candidates. A new active ERM model makes their scores **stale**: they count "
                    f"as not scored (nothing is kept automatically) until you run 1. Select and “Rescore stale "
                    f"candidates”; manual decisions stay. Thresholds are kept per model.")

        def train_erm_job(epochs, lr):
            args = {"kind": "train", "epochs": int(epochs), "lr": float(lr)}
            warning = stale_warning()
            if warning:
                return asked(f"**Train another ERM model?** {warning} Press Confirm, or Cancel.", args)
            return started(run_train(args))

        def run_train(args):
            from ddb_core.training import TrainConfig

            cfg = TrainConfig(epochs=args["epochs"], lr=args["lr"])
            return state.start("train ERM", lambda on_progress, cancel: api.train_erm(
                state.project(), cfg, on_progress=on_progress, cancel=cancel))

        erm_btn.click(safe(train_erm_job), [erm_epochs, erm_lr], project_outputs, api_name="train_erm")

        def load_ckpt(path, arch, size):
            args = {"kind": "load", "path": state.path(path, "checkpoint"), "arch": arch, "size": int(size)}
            if not args["path"]:
                raise gr.Error("give the path of the checkpoint file")
            warning = stale_warning()
            if warning:
                return asked(f"**Load another ERM model?** {warning} Press Confirm, or Cancel.", args)
            return started(run_load(args))

        def run_load(args):
            return state.start("load ERM checkpoint", lambda on_progress, cancel: api.load_erm(
                state.project(), args["path"], args["arch"], args["size"], on_progress=on_progress))

        load_btn.click(safe(load_ckpt), [ckpt, ckpt_arch, ckpt_size], project_outputs, api_name="load_checkpoint")

        def confirm_project(pending):
            if not pending:
                return started(state.job_markdown())
            run = {"create": lambda a: run_create(a, replace=True), "train": run_train, "load": run_load}[pending["kind"]]
            return started(run(pending))

        project_confirm.click(safe(confirm_project), [pending_project], project_outputs, api_name="confirm_project")
        project_cancel.click(lambda: (gr.skip(), gr.skip(), "Cancelled; nothing was changed.", gr.Button(visible=False),
                                      gr.Button(visible=False), None), [], project_outputs)

        def save_models(model, masker_v, opts):
            try:
                options = json.loads(opts) if opts and opts.strip() else {}
            except ValueError as e:
                raise gr.Error(f"masker options must be JSON ({e}), e.g. {{\"shape\": \"box\"}}")
            if not isinstance(options, dict):
                raise gr.Error(f"masker options must be a JSON object, got {opts!r}")
            for key in ("dino", "sam"):
                if isinstance(options.get(key), str):
                    options[key] = state.path(options[key], f"masker option {key}")
            api.set_pipeline_settings(state.project(), inpaint_model=state.path(model, "inpainting model") or None,
                                      masker=masker_v or None, masker_options=options)
            return "Saved."

        save_models_btn.click(safe(save_models), [inpaint_model, masker, masker_opts], [project_msg], api_name="save_models")

        def check_model(model):
            try:
                inp = api.load_inpainter(state.project(), state.path(model, "inpainting model") or None)
            except DDBError as e:
                return f"**Not available**: {e}"
            return f"Loaded `{inp.model_ref}` (resolution {inp.resolution} px)."

        check_model_btn.click(check_model, [inpaint_model], [project_msg], api_name="check_model")

        # -- pipeline -------------------------------------------------------------------------
        def stages_markdown() -> str:
            if not Project.exists(state.project_dir):
                return "No project yet."
            p = state.project()
            q = lambda sql: p.db.execute(sql).fetchone()[0]
            n_sel = q("select count(*) from selections where purpose = 'source'")
            n_nodet = q("select count(*) from masks where status = 'no_detection'")
            stale = api.stale_scores(p)
            rows = [("ERM model", "ready" if p.active_erm_id else "not trained"),
                    ("selection", f"{n_sel} source images"),
                    ("textual inversion", f"{q('select count(distinct label) from tokens')} of {len(p.class_names)} tokens"),
                    ("masks", f"{q('select count(*) from masks')} ({n_nodet} no detection)"),
                    ("generation", f"{q('select count(*) from candidates')} candidates"),
                    ("scoring", f"{q('select count(psi) from candidates') - stale} scored by the active ERM model"
                                + (f", **{stale} stale** (scored by another model: rescore them)" if stale else ""))]
            runs = p.runs()[-5:]
            lines = ["| stage | status |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
            if runs:
                lines += ["", "Recent runs: " + "; ".join(f"{r['stage']} {r['status']}" + (f" ({r['error']})" if r["error"] else "")
                                                          for r in runs)]
            return "\n".join(lines)

        def pipeline_cfg(k, tis, tst, gst, gd, igs):
            from dataclasses import replace as _replace

            from ddb_core.bench_demo import DemoBenchConfig

            p = state.project()
            s = api.pipeline_settings(p)
            return _replace(DemoBenchConfig(), k=float(k) if float(k) < 1 else int(k), ti_size=int(tis), ti_steps=int(tst),
                            inpaint_steps=int(gst), guidance=float(gd), ig_steps=int(igs), model=s["inpaint_model"])

        def run_stage(stage):
            def handler(k, tis, tst, gst, gd, igs):
                from ddb_core.generation import GenerationConfig
                from ddb_core.inpainting import InpaintConfig
                from ddb_core.inversion import InversionConfig
                from ddb_core.selection import SelectionConfig

                cfg = pipeline_cfg(k, tis, tst, gst, gd, igs)
                p = state.project()
                inp_cfg = InpaintConfig(model=cfg.model, steps=cfg.inpaint_steps, guidance=cfg.guidance, batch_size=16)
                jobs = {
                    "select": lambda on_progress, cancel: api.select(p, SelectionConfig(k=cfg.k, ti_size=cfg.ti_size, ti_source=cfg.ti_source)),
                    "invert": lambda on_progress, cancel: api.invert(p, cfg=InversionConfig(steps=cfg.ti_steps), on_progress=on_progress, cancel=cancel),
                    "masks": lambda on_progress, cancel: api.compute_masks(p, on_progress=on_progress, cancel=cancel),
                    "generate": lambda on_progress, cancel: api.generate(p, cfg=GenerationConfig(use_tokens=cfg.ti_size > 0), inpaint=inp_cfg,
                                                                          on_progress=on_progress, cancel=cancel),
                    "score": lambda on_progress, cancel: api.score(p, n_steps=cfg.ig_steps, on_progress=on_progress, cancel=cancel),
                    "rescore": lambda on_progress, cancel: api.score(p, n_steps=cfg.ig_steps, rescore=True,
                                                                      on_progress=on_progress, cancel=cancel),
                    "all": lambda on_progress, cancel: __import__("ddb_core.bench_demo", fromlist=["prepare"]).prepare(
                        p, cfg, {}, on_progress, cancel),
                }
                return start(stage, jobs[stage], uses_model=stage in ("invert", "generate", "all"))
            return safe(handler)

        cfg_inputs = [k_in, ti_size, ti_steps, gen_steps, guidance, ig_steps]
        for btn, stage in ((b_select, "select"), (b_invert, "invert"), (b_masks, "masks"), (b_generate, "generate"),
                           (b_score, "score"), (b_rescore, "rescore"), (b_all, "all")):
            btn.click(run_stage(stage), cfg_inputs, [job_md, timer], api_name=f"run_{stage}")

        def do_preview(gst):
            items = state.with_model("preview the tokens", lambda: api.preview_tokens(
                state.project(), n=4, steps=int(gst), inpainter=state.inpainter()))
            if not items:
                return [], "No token learned yet: run textual inversion first."
            nm = names()
            gal = []
            for it in items:
                gal += [(plots.enlarge(it["source"], 128), f"source ({nm[it['label']]} token)"),
                        (plots.enlarge(plots.overlay_mask(it["source"], it["mask"]), 128), "mask"),
                        (plots.enlarge(it["result"], 128), it["prompt"])]
            return gal, f"{len(items)} previews with the learned tokens."

        b_preview.click(safe(do_preview), [gen_steps], [preview, pipeline_msg], api_name="preview")

        # -- review -----------------------------------------------------------------------------
        def slider_updates(index):
            """Slider ranges and values from the project's thresholds and the ρ distribution.

            The P range spans every ρ with a 5% margin; a stored P outside it is shown at the nearest
            end, which keeps and prunes exactly the same candidates.
            """
            if index is None or len(index) == 0:
                return [gr.Slider() for _ in psi_sliders + p_sliders]
            rho = index.rho[np.isfinite(index.rho)]
            lo, hi = (float(rho.min()), float(rho.max())) if rho.size else (-1.0, 1.0)
            margin = max(hi - lo, 1e-6) * 0.05
            lo, hi = lo - margin, hi + margin
            step = (hi - lo) / 1000
            ups = [gr.Slider(minimum=0.0, maximum=1.001, step=0.001, value=round(min(max(index.Psi.get(c, 0.5), 0.0), 1.001), 4),
                             visible=c < index.n_classes) for c in range(n_sliders)]
            ups += [gr.Slider(minimum=lo, maximum=hi, step=step, value=min(max(index.P.get(c, 0.0), lo), hi),
                              visible=c < index.n_classes) for c in range(n_sliders)]
            return ups

        def direction_choices(index):
            nm = names()
            return [(f"{nm[i]} → {nm[j]}", f"{i}->{j}") for i, j in (index.directions if index is not None else [])]

        def parse_range(text):
            if not text or not text.strip():
                return (-np.inf, np.inf)
            parts = [p.strip() for p in text.split(",")]
            if len(parts) != 2:
                raise DDBError(f"a range is 'min,max' (either side may be empty), got {text!r}")
            try:
                return (float(parts[0]) if parts[0] else -np.inf, float(parts[1]) if parts[1] else np.inf)
            except ValueError:
                raise DDBError(f"a range is two numbers 'min,max', got {text!r}")

        def current_filter(d, st, sort, fpsi, frho, method=""):
            from ddb_core.review import Filter

            return Filter(direction=d or None, status=st or "all", sort=sort or "id", psi_range=parse_range(fpsi),
                          rho_range=parse_range(frho), method=method or None)

        gallery_page = gallery_items

        def review_load(*vals):
            """Everything the review screen shows, from the stored thresholds (on load and after jobs)."""
            index = state.index(reload=True)
            nm = names()
            if index is None or len(index) == 0:
                empty = threshold_plots(None, {}, {}, None)
                return [*slider_updates(index), counts_markdown(index, {}, {}, nm), *empty, gr.Dropdown(choices=[]),
                        gr.Dropdown(choices=[("all", "")], value=""), [], "", {"ids": [], "pos": 0, "page": 0},
                        None, None, None, None, None, "No candidates yet."]
            Psi, P = dict(index.Psi), dict(index.P)
            dirs = direction_choices(index)
            # DDB directions (i -> i', i != i') first; SCGS's i -> i after them
            dirs = sorted(dirs, key=lambda d: d[1].split("->")[0] == d[1].split("->")[1])
            sc = threshold_plots(index, Psi, P, dirs[0][1] if dirs else None)
            ids = index.query(current_filter("", "all", "id", "", ""))
            gal, pinfo = gallery_page(index, ids, 0)
            nav_v = {"ids": [int(i) for i in ids], "pos": 0, "page": 0}
            panels = detail_panels(index, int(ids[0]) if len(ids) else None, nm)
            return [*slider_updates(index), counts_markdown(index, Psi, P, nm), *sc,
                    gr.Dropdown(choices=dirs, value=dirs[0][1] if dirs else None),
                    gr.Dropdown(choices=[("all", "")] + dirs, value=""), gal, pinfo, nav_v, *panels]

        review_outputs = [*psi_sliders, *p_sliders, counts, scatter, hist_psi, hist_rho, plot_dir, f_dir, gallery,
                          page_info, nav, img_src, img_mask, img_res, img_bars, img_ig, info]

        def on_threshold(*vals):
            """A slider moved: counts and plots at the new thresholds (nothing saved yet)."""
            index = state.index()
            if index is None or len(index) == 0:
                return counts_markdown(index, {}, {}, names()), *threshold_plots(None, {}, {}, None)
            *th, d = vals
            Psi, P = thresholds_from(index, list(th[:index.n_classes]) + list(th[n_sliders:n_sliders + index.n_classes]))
            return counts_markdown(index, Psi, P, names()), *threshold_plots(index, Psi, P, d)

        slider_inputs = [*psi_sliders, *p_sliders, plot_dir]
        for s in psi_sliders + p_sliders:
            s.input(on_threshold, slider_inputs, [counts, scatter, hist_psi, hist_rho], show_progress="hidden",
                    trigger_mode="always_last", api_name=f"threshold_{s.elem_id.replace('-', '_')}")
        # .input (a user's choice), not .change: a programmatic update must not redraw with stale slider values
        plot_dir.input(on_threshold, slider_inputs, [counts, scatter, hist_psi, hist_rho], show_progress="hidden")

        def save_th(slot):
            """Slider ``slot`` released: its value alone is saved with the project (a value another process
            saved for another class meanwhile is kept); the gallery and detail follow."""
            def handler(*vals):
                index = state.index()
                if index is None or len(index) == 0:
                    return gr.Markdown(), [], "", {"ids": [], "pos": 0, "page": 0}, None, None, None, None, None, ""
                *th, d, st, sort, fpsi, frho, method, nav_v = vals
                c = slot % n_sliders
                if c < index.n_classes:
                    value = {c: float(th[slot])}
                    if slot < n_sliders:
                        index.save_thresholds(Psi=value, who=user_of())
                    else:
                        index.save_thresholds(P=value, who=user_of())
                return refilter(d, st, sort, fpsi, frho, method, nav_v, keep_current=True)
            return handler

        def refilter(d, st, sort, fpsi, frho, method, nav_v, keep_current=False, page=0):
            index = state.index()
            ids = index.query(current_filter(d, st, sort, fpsi, frho, method))
            ids_l = [int(i) for i in ids]
            cur = None
            if keep_current and nav_v.get("ids") and nav_v["pos"] < len(nav_v["ids"]):
                cur = nav_v["ids"][nav_v["pos"]]
            pos = ids_l.index(cur) if cur in ids_l else 0
            gal, pinfo = gallery_page(index, ids, page)
            new_nav = {"ids": ids_l, "pos": pos, "page": page}
            panels = detail_panels(index, ids_l[pos] if ids_l else None, names())
            return counts_markdown(index, index.Psi, index.P, names()), gal, pinfo, new_nav, *panels

        filter_inputs = [f_dir, f_status, f_sort, f_psi, f_rho, f_method, nav]
        refilter_outputs = [counts, gallery, page_info, nav, img_src, img_mask, img_res, img_bars, img_ig, info]
        for slot, s in enumerate(psi_sliders + p_sliders):
            s.release(safe(save_th(slot)), [*psi_sliders, *p_sliders, *filter_inputs], refilter_outputs,
                      show_progress="hidden", api_name=f"save_{s.elem_id.replace('-', '_')}")
        for comp in (f_dir, f_status, f_sort, f_method):
            comp.change(safe(lambda *v: refilter(*v)), filter_inputs, refilter_outputs, show_progress="hidden")
        for comp, name in ((f_psi, "filter_psi"), (f_rho, "filter_rho")):
            comp.submit(safe(lambda *v: refilter(*v)), filter_inputs, refilter_outputs, show_progress="hidden", api_name=name)

        def ask_reset():
            return ("**Reset the thresholds** of the active ERM model to the computed defaults (Ψ from Eq. 3, P from "
                    "the candidates scored now)? Every decision that follows from them may change; “Undo the last "
                    "threshold change” restores them.", gr.Button(visible=True))

        reset_th.click(ask_reset, [], [th_msg, reset_confirm])

        def reset_thresholds():
            index = state.index()
            if index is None:
                return [gr.Slider() for _ in psi_sliders + p_sliders] + ["", gr.Button(visible=False)]
            index.reset_thresholds(who=user_of())
            return slider_updates(index) + ["Thresholds reset to the computed defaults.", gr.Button(visible=False)]

        def undo_thresholds():
            index = state.index()
            if index is None or index.undo_thresholds(who=user_of()) is None:
                return [gr.skip() for _ in psi_sliders + p_sliders] + ["No threshold change to undo.", gr.Button(visible=False)]
            return slider_updates(index) + ["The thresholds are back as they were before the last change.",
                                            gr.Button(visible=False)]

        for btn, fn, name in ((reset_confirm, reset_thresholds, "reset_thresholds"),
                              (undo_th, undo_thresholds, "undo_thresholds")):
            btn.click(safe(fn), [], [*psi_sliders, *p_sliders, th_msg, reset_confirm], api_name=name).then(
                safe(lambda *v: refilter(*v, keep_current=True)), filter_inputs, refilter_outputs)

        def change_page(delta):
            def handler(nav_v):
                index = state.index()
                page = nav_v.get("page", 0) + delta
                ids = np.array(nav_v.get("ids", []), np.int64)
                pages = max(1, -(-len(ids) // PAGE))
                page = min(max(0, page), pages - 1)
                gal, pinfo = gallery_page(index, ids, page)
                return gal, pinfo, {**nav_v, "page": page}
            return handler

        page_prev.click(change_page(-1), [nav], [gallery, page_info, nav], show_progress="hidden")
        page_next.click(change_page(+1), [nav], [gallery, page_info, nav], show_progress="hidden")

        def pick(nav_v, evt: gr.SelectData):
            index = state.index()
            pos = nav_v.get("page", 0) * PAGE + int(evt.index)
            nav_v = {**nav_v, "pos": pos}
            cid = nav_v["ids"][pos] if pos < len(nav_v["ids"]) else None
            return nav_v, *detail_panels(index, cid, names())

        detail_outputs = [img_src, img_mask, img_res, img_bars, img_ig, info]
        gallery.select(pick, [nav], [nav, *detail_outputs], show_progress="hidden")

        def move(delta):
            def handler(nav_v):
                index = state.index()
                ids = nav_v.get("ids", [])
                if not ids:
                    return nav_v, *detail_panels(index, None, names())
                pos = min(max(0, nav_v.get("pos", 0) + delta), len(ids) - 1)
                nav_v = {**nav_v, "pos": pos}
                return nav_v, *detail_panels(index, ids[pos], names())
            return handler

        b_prev.click(move(-1), [nav], [nav, *detail_outputs], show_progress="hidden", api_name="previous")
        b_next.click(move(+1), [nav], [nav, *detail_outputs], show_progress="hidden", api_name="next")

        def decide(decision):
            def handler(nav_v):
                index = state.index()
                ids = nav_v.get("ids", [])
                if not ids:
                    return nav_v, *detail_panels(index, None, names()), counts_markdown(index, {}, {}, names())
                cid = ids[nav_v.get("pos", 0)]
                index.decide([cid], decision, who=user_of())
                pos = min(nav_v.get("pos", 0) + 1, len(ids) - 1)  # auto-advance
                nav_v = {**nav_v, "pos": pos}
                return nav_v, *detail_panels(index, ids[pos], names()), counts_markdown(index, index.Psi, index.P, names())
            return safe(handler)

        for btn, dec in ((b_accept, "accept"), (b_reject, "reject"), (b_auto, None)):
            btn.click(decide(dec), [nav], [nav, *detail_outputs, counts], show_progress="hidden",
                      api_name=f"decide_{dec or 'auto'}")

        def do_undo(nav_v):
            """Revert the latest decision action — one candidate, or a whole batch — and show its first candidate."""
            index = state.index()
            restored = index.undo(who=user_of()) if index is not None else None
            if not restored:
                return nav_v, *detail_panels(index, None, names()), counts_markdown(index, {}, {}, names())
            cid = restored[0]
            ids = nav_v.get("ids", [])
            if cid in ids:
                nav_v = {**nav_v, "pos": ids.index(cid)}
            return nav_v, *detail_panels(index, cid, names()), counts_markdown(index, index.Psi, index.P, names())

        b_undo.click(safe(do_undo), [nav], [nav, *detail_outputs, counts], show_progress="hidden", api_name="undo")

        def load_editor(nav_v):
            from PIL import Image

            index = state.index()
            ids = nav_v.get("ids", [])
            if not ids:
                return None
            d = index.detail(ids[nav_v.get("pos", 0)])
            src = _load(d["source_path"])
            mask = _load(d["mask_path"], src.shape[:2], mask=True) if d["mask_path"] else np.zeros(src.shape[:2], np.uint8)
            big = plots.enlarge(src, BIG)  # aspect ratio kept
            bh, bw = big.shape[:2]
            bg = np.dstack([big, np.full((bh, bw), 255, np.uint8)])
            m = np.asarray(Image.fromarray(mask).resize((bw, bh), Image.NEAREST))
            layer = np.zeros((bh, bw, 4), np.uint8)
            layer[..., 0], layer[..., 1], layer[..., 2] = 255, 48, 48
            layer[..., 3] = np.where(m >= 128, 200, 0)
            return {"background": bg, "layers": [layer], "composite": None}

        edit_btn.click(safe(load_editor), [nav], [editor])

        def regenerate(nav_v, value):
            from PIL import Image

            index = state.index()
            ids = list(nav_v.get("ids", []))
            if not ids or not value or not value.get("layers"):
                raise gr.Error("Load the current mask first, then paint on it.")
            cid = ids[nav_v.get("pos", 0)]
            d = index.detail(cid)
            h, w = _load(d["source_path"]).shape[:2]
            alpha = np.zeros(value["layers"][0].shape[:2], np.uint8)
            for layer in value["layers"]:
                if layer is not None and layer.ndim == 3 and layer.shape[2] == 4 and layer.shape[:2] == alpha.shape:
                    alpha = np.maximum(alpha, layer[..., 3])
            # the editor shows the source at its aspect ratio: back to the source's own size
            mask = np.asarray(Image.fromarray(np.where(alpha > 0, 255, 0).astype(np.uint8)).resize((w, h), Image.BILINEAR))
            mask = np.where(mask >= 128, 255, 0).astype(np.uint8)
            new_id = state.with_model("regenerate", lambda: api.regenerate_candidate(
                index.project, cid, mask, inpainter=state.inpainter()))
            index = state.index(reload=True)
            pos = nav_v.get("pos", 0) + 1
            ids.insert(pos, new_id)
            nav_v = {**nav_v, "ids": ids, "pos": pos}
            return (nav_v, *detail_panels(index, new_id, names()), counts_markdown(index, index.Psi, index.P, names()),
                    f"New candidate #{new_id} from #{cid} (scored; shown above).")

        regen_btn.click(safe(regenerate), [nav, editor], [nav, *detail_outputs, counts, regen_msg], api_name="regenerate")

        def batch_ask(action, nav_v, d, st, sort, fpsi, frho, method):
            """Count the filter's candidates and bind the batch to exactly them and this action: Confirm
            applies it to these ids, whatever the filter or the action shows by then."""
            ids = [int(i) for i in nav_v.get("ids", [])]
            word = {"accept": "accept", "reject": "reject", "auto": "set back to automatic"}[action]
            if not ids:
                return "No candidate in the current filter.", gr.Button(visible=False), None
            described = {"direction": d or "all", "decision": st or "all", "method": method or "all",
                         "psi": fpsi or "", "rho": frho or ""}
            pending = {"ids": ids, "action": action, "filter": described}
            return (f"This will **{word} {len(ids)} candidates** (every candidate of the current filter: "
                    f"{', '.join(f'{k} {v}' for k, v in described.items() if v)}). Press Confirm; changing the filter or "
                    f"the action cancels this.", gr.Button(visible=True), pending)

        batch_inputs = [batch_action, nav, f_dir, f_status, f_sort, f_psi, f_rho, f_method]
        batch_btn.click(batch_ask, batch_inputs, [batch_msg, batch_confirm, pending_batch], api_name="batch_ask")

        def batch_cancel(pending):
            if pending:
                return "The pending batch action was cancelled (the filter or the action changed).", gr.Button(visible=False), None
            return gr.skip(), gr.Button(visible=False), None

        for comp in (batch_action, f_dir, f_status, f_sort, f_psi, f_rho, f_method):
            comp.change(batch_cancel, [pending_batch], [batch_msg, batch_confirm, pending_batch], show_progress="hidden")

        def batch_do(pending):
            index = state.index()
            if not pending:
                return "Nothing to confirm: press “Apply to the filter…” first.", gr.Button(visible=False), gr.skip(), None
            action = pending["action"]
            changed = index.decide(pending["ids"], None if action == "auto" else action, who=user_of(),
                                   detail={"filter": pending["filter"], "batch": len(pending["ids"])})
            return (f"{changed} decisions changed ({len(pending['ids'])} candidates in the batch); undo (u) reverts the "
                    f"whole batch.", gr.Button(visible=False), counts_markdown(index, index.Psi, index.P, names()), None)

        batch_confirm.click(safe(batch_do), [pending_batch], [batch_msg, batch_confirm, counts, pending_batch],
                            api_name="batch_confirm").then(
            safe(lambda *v: refilter(*v, keep_current=True)), filter_inputs, refilter_outputs)

        # -- retrain ------------------------------------------------------------------------------
        def retrain_inputs_md():
            if not Project.exists(state.project_dir) or not names():
                return "No project."
            inputs = api.retraining_inputs(state.project())
            nm = names()
            parts = [f"{nm[int(d.split('->')[0])]} → {nm[int(d.split('->')[1])]}: **{n}**" for d, n in inputs.items()]
            text = "Accepted samples that go in: " + (", ".join(parts) if parts else "**none** (accept some on the Review screen)")
            return text + "".join(f"\n\n**Warning**: {w}" for w in api.retraining_warnings(state.project()))

        def reports_choices():
            if not Project.exists(state.project_dir):
                return []
            return [(f"#{r['id']} {r['title']} ({r['created_at']})", r["id"]) for r in reversed(api.reports(state.project()))]

        def show_report(rid):
            if rid is None:
                return "", None, None
            p = state.project()
            from ddb_core.reporting import report_markdown as md

            rep = api.load_report(p, int(rid))
            d = p.root / "reports" / str(rid)
            return md(rep), str(d / "groups.png"), str(d / "curves.png")

        report_pick.change(safe(show_report), [report_pick], [report_md, report_groups, report_curves], api_name="show_report")

        def do_retrain(g, grid, lr, ep, evals, bs, seeds, ratio):
            from dataclasses import replace as _replace

            nm = names()
            try:
                gs = [float(x) for x in g.split(",") if x.strip()]
                grid_gs = tuple(float(x) for x in (grid or "").split(",") if x.strip())
                sd = tuple(int(x) for x in seeds.split(",") if x.strip())
            except ValueError:
                raise gr.Error("γ, the γ grid and seeds must be comma-separated numbers")
            if len(gs) == 1:
                gs = gs * len(nm)
            base = RetrainConfig()
            cfg = RetrainConfig(train=_replace(base.train, lr=float(lr), epochs=int(ep), evals_per_epoch=int(evals),
                                               batch_size=int(bs)),
                                gammas=tuple(gs), gamma_grid=grid_gs, seeds=sd or (0,), gen_ratio=float(ratio))
            return start("retrain on accepted samples", lambda on_progress, cancel: api.retrain(
                state.project(), cfg, on_progress=on_progress, cancel=cancel))

        retrain_btn.click(safe(do_retrain), [gammas, gamma_grid, r_lr, r_epochs, r_evals, r_bs, r_seeds, r_ratio], [job_md, timer], api_name="retrain")

        def retrain_refresh():
            ch = reports_choices()
            return retrain_inputs_md(), gr.Dropdown(choices=ch, value=ch[0][1] if ch else None)

        # -- export -------------------------------------------------------------------------------
        def do_export():
            """A background job with progress and cancel; the result appears here when it is done."""
            def run(on_progress, cancel):
                import shutil

                r = api.export_dataset(state.project(), on_progress=on_progress, cancel=cancel)
                z = shutil.make_archive(r["path"], "zip", r["path"])
                state.last_export = (f"Exported {r['real_images']} train images and {r['generated_images']} accepted "
                                     f"samples ({r['candidates']} candidates in the manifest) to `{r['path']}`.", z)
                return r
            return start("export the curated dataset", run)

        def do_bundle():
            def run(on_progress, cancel):
                r = api.reproducibility_bundle(state.project())
                state.last_export = (f"Bundle with {r['models']} models, {r['tokens']} tokens, {r['runs']} runs: "
                                     f"`{r['path']}`.", r["path"])
                return r
            return start("reproducibility bundle", run)

        export_btn.click(safe(do_export), [], [job_md, timer], api_name="export_dataset")
        bundle_btn.click(safe(do_bundle), [], [job_md, timer], api_name="bundle")

        def export_refresh():
            if state.last_export is None:
                return gr.skip(), gr.skip()
            return state.last_export

        # -- refresh everything after a job and on page load --------------------------------------
        def refresh_all():
            return (*project_refresh(), *review_load(), *retrain_refresh(), *export_refresh())

        all_outputs = [project_md, inpaint_model, masker, masker_opts, stages_md, *review_outputs, inputs_md, report_pick,
                       export_msg, export_file]
        refresh_btn.click(safe(refresh_all), [], all_outputs, api_name="refresh")
        demo.load(safe(refresh_all), [], all_outputs, api_name="load")

        def poll():
            """Progress while a job runs; when it has just finished, every screen is refreshed once."""
            running = state.job is not None and state.job.running
            finished_now = state.job is not None and not running and state.last_job != id(state.job)
            if finished_now:
                state.last_job = id(state.job)
                return state.job_markdown(), gr.Timer(active=False), *refresh_all()
            return state.job_markdown(), gr.Timer(active=running), *[gr.skip() for _ in all_outputs]

        timer.tick(poll, outputs=[job_md, timer, *all_outputs], show_progress="hidden", api_name="poll")
        demo.state = state  # for tests
        demo.review_load = review_load
        demo.n_sliders = n_sliders
    return demo
