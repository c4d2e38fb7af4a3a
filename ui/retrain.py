"""The Retrain screen: γ per class (or a list to choose from by val WGA), the recipe, seeds and the
share of generated samples per batch; "Retrain on accepted samples" says how many of each direction
go in and warns when a few could dominate; the report (per-group table before → after with
intervals, plots) and the history of reports."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from types import SimpleNamespace

import gradio as gr

from ddb_core import api
from ddb_core.project.errors import DDBError
from ddb_core.method.retraining import RetrainConfig

from .state import AppState, safe, started

DEFAULTS = RetrainConfig()  # the library's documented retraining recipe


def build(state: AppState) -> SimpleNamespace:
    v = SimpleNamespace()
    v.inputs_md = gr.Markdown(elem_id="retrain-inputs")
    t = DEFAULTS.train
    with gr.Row():
        v.gammas = gr.Textbox("1.0", label="γ per class (one value, or one per class, comma-separated)",
                              info="γ: the weight of a generated sample in the loss, relative to a real one (Eq. 6–8)")
        v.gamma_grid = gr.Textbox("", label="or choose γ by val WGA among (comma-separated, e.g. 1, 3, 10)",
                                  elem_id="gamma-grid", info="WGA: worst-group accuracy, the accuracy of the worst "
                                                             "(class, background) group on val")
        v.per_class = gr.Checkbox(False, label="one γ per class from the grid (every combination a run)",
                                  elem_id="per-class-gamma")
        v.lr = gr.Number(t.lr, label="learning rate")
        v.epochs = gr.Number(t.epochs, label="epochs", precision=0)
        v.evals = gr.Number(t.evals_per_epoch, label="val checks per epoch (model selection)", precision=0)
        v.batch_size = gr.Number(t.batch_size, label="batch size", precision=0)
        v.seeds = gr.Textbox("0", label="seeds (comma-separated)")
        v.ratio = gr.Number(0.0, label="generated share of each batch (0 = natural)")
    v.button = gr.Button("Retrain on accepted samples", variant="primary", elem_id="btn-retrain")
    with gr.Row():
        v.pick = gr.Dropdown(label="report", choices=[], value=None)
        v.compare = gr.Dropdown(label="side by side with (an earlier report)", choices=[], value=None, elem_id="compare")
    with gr.Row():
        with gr.Column():
            v.report = gr.Markdown(elem_id="report")
            # the figures carry their titles: no label over them
            v.groups = gr.Image(label="per-group accuracy before → after", type="filepath", interactive=False,
                                show_label=False)
            v.curves = gr.Image(label="training curves (a point per val check)", type="filepath", interactive=False,
                                show_label=False)
        with gr.Column():
            v.report2 = gr.Markdown(elem_id="report-compare")
            v.groups2 = gr.Image(label="per-group accuracy before → after", type="filepath", interactive=False,
                                 show_label=False)
            v.curves2 = gr.Image(label="training curves (a point per val check)", type="filepath", interactive=False,
                                 show_label=False)
    return v


def on_show(state: AppState, v: SimpleNamespace):
    """(handler, outputs) run each time the screen is shown: the samples that go in, as the project holds them now."""
    return safe(partial(inputs_markdown, state)), [v.inputs_md]


def wire(state: AppState, v: SimpleNamespace, shared: SimpleNamespace) -> None:
    v.pick.change(safe(partial(show_report, state)), [v.pick], [v.report, v.groups, v.curves], api_name="show_report")
    v.compare.change(safe(partial(show_report, state)), [v.compare], [v.report2, v.groups2, v.curves2],
                     api_name="show_compared_report")
    v.button.click(safe(partial(retrain, state)), [v.gammas, v.gamma_grid, v.lr, v.epochs, v.evals, v.batch_size,
                                                    v.seeds, v.ratio, v.per_class], [shared.job_md, shared.timer], api_name="retrain")


def refresh_outputs(v: SimpleNamespace) -> list:
    return [v.inputs_md, v.pick, v.compare]


def refresh(state: AppState, v: SimpleNamespace) -> list:
    """The latest report, and beside it the one before (the current run against an earlier one)."""
    choices = reports_choices(state)
    return [inputs_markdown(state), gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
            gr.Dropdown(choices=[("none", None)] + choices, value=choices[1][1] if len(choices) > 1 else None)]


def inputs_markdown(state: AppState) -> str:
    """The generated samples a retraining would use now, per direction: kept automatically at the stored
    thresholds, and accepted by hand (read from the project each time this screen is shown)."""
    from ddb_core.method.retraining import accepted_candidates

    names = state.class_names()
    if not names:
        return "No project."
    p = state.project()
    by_hand = {r[0] for r in p.db.execute("select candidate_id from decisions where decision = 'accept'")}
    per: dict[str, list[int]] = {}
    for c in accepted_candidates(p):
        per.setdefault(f"{c['source_label']}->{c['target_label']}", [0, 0])[c["id"] in by_hand] += 1
    name = lambda d: f"{names[int(d.split('->')[0])]} → {names[int(d.split('->')[1])]}"
    parts = [f"{name(d)}: **{auto + hand}** ({auto} kept automatically, {hand} accepted by hand)"
             for d, (auto, hand) in sorted(per.items())]
    text = ("<span id='retrain-count'>Generated samples that go in (kept at the stored thresholds or accepted by hand; "
            "rejected ones never): " + ("; ".join(parts) if parts else "**none** (accept some on the Review screen)")
            + "</span>")
    return text + "".join(f"\n\n**Warning**: {w}" for w in api.retraining_warnings(p))


def reports_choices(state: AppState) -> list[tuple[str, int]]:
    if not state.exists():
        return []
    return [(f"#{r['id']} {r['title']} ({r['created_at']})", r["id"]) for r in reversed(api.reports(state.project()))]


def show_report(state: AppState, report_id):
    from ddb_core.curation.reporting import report_markdown

    if report_id is None:
        return "", None, None
    p = state.project()
    folder = p.root / "reports" / str(report_id)
    return report_markdown(api.load_report(p, int(report_id))), str(folder / "groups.png"), str(folder / "curves.png")


def retrain(state: AppState, gammas, grid, lr, epochs, evals, batch_size, seeds, ratio, per_class=False):
    try:
        gs = [float(x) for x in gammas.split(",") if x.strip()]
        grid_gs = tuple(float(x) for x in (grid or "").split(",") if x.strip())
        sd = tuple(int(x) for x in seeds.split(",") if x.strip())
    except ValueError:
        raise DDBError("γ, the γ grid and seeds must be comma-separated numbers") from None
    if len(gs) == 1:
        gs = gs * len(state.class_names())
    train = replace(DEFAULTS.train, lr=float(lr), epochs=int(epochs), evals_per_epoch=int(evals), batch_size=int(batch_size))
    cfg = RetrainConfig(train=train, gammas=tuple(gs), gamma_grid=grid_gs, per_class=bool(per_class), seeds=sd or (0,),
                        gen_ratio=float(ratio))
    return started(state, "retrain on accepted samples", lambda on_progress, cancel: api.retrain(
        state.project(), cfg, on_progress=on_progress, cancel=cancel))
