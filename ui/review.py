"""The Review screen: thresholds (Ψ per source class, P per target class) with live counts and plots,
one candidate's five panels (source, mask, result, softmax shift, IG map) and its decision, and a
filtered gallery with batch actions. What it shows comes from ``review_view``; decisions, undo,
batches and the mask editor are in ``review_actions``.
"""

from __future__ import annotations

import json
import time
from functools import partial
from types import SimpleNamespace

import gradio as gr
import numpy as np

from ddb_core.project.errors import DDBError

from . import review_actions as actions
from . import review_plots
from .review_thresholds import (PSI_STEP, ask_reset, on_direction, on_threshold, reset_thresholds, save_threshold,
                                slider_updates, threshold_slider, undo_thresholds)
from .review_view import (EMPTY_NAV, SORT_CHOICES, STATUS_CHOICES, counts_markdown, current_filter, detail_panels,
                          direction_choices, gallery_items, plots_at, refilter, sent_once, Ids)
from .state import AFTER, ORDERED, REDRAW, AppState, safe


POLL_S = 3.0  # how often a shown review screen asks whether its project changed elsewhere

HOW_TO_READ = """
Each **candidate** is a training image of a *source* class whose object was repainted by the diffusion model with
the *target* class's learned token (its source image, the mask, the result, the classifier's softmax before and
after, and the integrated-gradients map are the five panels). DDB keeps a candidate for retraining when both rules
hold; you can override any decision.

| symbol | what it is |
| --- | --- |
| **ψ** | the ERM classifier's softmax for the *source* class on the result: low means it no longer sees the source class |
| **Ψ** (slider, one per source class) | the ψ rule: keep only if ψ < Ψ; its default is the mean ψ of the class's train images (Eq. 3) |
| **ρ** = Σ mask · IG | the integrated-gradients attribution toward the *target* class, summed inside the mask: high means the classifier's change comes from the repainted region, not the background |
| **P** (slider, one per target class) | the ρ rule: keep only if ρ > P; its default is the 25% quantile of the class's ρ |
| IG convergence **δ** | how far the attributions' sum is from the change in the classifier's score (small: the map can be trusted) |
| kept / pruned | what the two rules decide; **accepted / rejected** are decisions made by hand, which win over the rules |
| review queue, **priority _x_ of 7** | the sum of seven signals in [0, 1] saying where a look is most useful: *near Ψ* or *near P* (a small threshold change flips it), *rules split* (the ψ and ρ rules disagree), *unchanged* (little was repainted), *like source* (on the map it sits with its source class), *weak box* (a low detection score), *object lost* (the detector no longer finds the object in the result; langsam projects, `ddb refind`) |
| ψ–ρ plot | one dot per candidate of the chosen direction (ψ on a logit scale): the lines are Ψ and P, dots are coloured by decision; drag a lasso or a box to select |

Keys (on this screen, outside text boxes): **a** accept, **r** reject, **u** undo your latest decision, **n** next in
the review queue, **←/→** previous / next, **1–4** the large view. A threshold is saved when you release the slider,
press an arrow key on it, or press Enter or leave its number box; the line under the sliders says what was saved.
Changes made in another tab, by another reviewer or with `ddb` appear within a few seconds.
"""


def build(state: AppState) -> SimpleNamespace:
    v = SimpleNamespace()
    names = state.class_names()
    v.n_sliders = max(2, len(names))
    with gr.Accordion("How to read this screen (Ψ, P, ψ, ρ, δ, the queue, the keys)", open=False, elem_id="how-to-read"):
        gr.Markdown(HOW_TO_READ)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            gr.Markdown("**Thresholds** (keep x′ iff ψ < Ψ of its source class and ρ > P of its target class)")
            label = lambda c: names[c] if c < len(names) else f"class {c}"
            v.psi = [threshold_slider(0, 1, value=0.5, step=PSI_STEP, label=f"Ψ {label(c)} (source)", visible=c < len(names),
                               elem_id=f"psi-{c}", info="keep iff ψ (the source class's softmax on the result) < Ψ")
                     for c in range(v.n_sliders)]
            v.p = [threshold_slider(-1, 1, value=0.0, step=0.0001, label=f"P {label(c)} (target)", visible=c < len(names),
                             elem_id=f"p-{c}", info="keep iff ρ (IG toward the target, summed in the mask) > P")
                   for c in range(v.n_sliders)]
            with gr.Row():
                v.reset = gr.Button("Reset to the computed defaults…", size="sm", elem_id="btn-reset-th")
                v.undo_th = gr.Button("Undo the last threshold change", size="sm", elem_id="btn-undo-th")
            v.th_msg = gr.Markdown(elem_id="threshold-msg")  # the reset's question sits above its answers
            # the latest threshold change the sliders were drawn from (sent back with every save: a save from sliders
            # drawn before another tab's, user's or `ddb`'s change is refused)
            v.th_version = gr.Textbox("", elem_id="threshold-version", elem_classes=["ddb-hidden"], label="thresholds version")
            with gr.Row():
                v.reset_confirm = gr.Button("Confirm the reset", size="sm", variant="stop", visible=False,
                                            elem_id="btn-reset-confirm")
                v.reset_cancel = gr.Button("Cancel", size="sm", visible=False, elem_id="btn-reset-cancel")
            v.counts = gr.Markdown(elem_id="counts")
        with gr.Column(scale=2):
            with gr.Row():
                v.plot_dir = gr.Dropdown(label="plots for direction", choices=[], value=None)
                v.select_mode = gr.Radio([("lasso", "lasso"), ("box", "box")], value="lasso", label="dragging draws a",
                                         elem_id="select-mode", interactive=True)  # read by the page's script
            v.scatter = gr.Image(label="ψ–ρ plot (ψ on a logit scale)", type="numpy", format="png", interactive=False, elem_id="scatter",
                                 elem_classes=["selectable-plot"], show_label=False, buttons=[])
            with gr.Row():  # the plots carry their titles: no label or buttons over them
                v.hist_psi = gr.Image(label="ψ", type="numpy", format="png", interactive=False, height=130, show_label=False, buttons=[])
                v.hist_rho = gr.Image(label="ρ", type="numpy", format="png", interactive=False, height=130, show_label=False, buttons=[])
            v.plot_state = gr.Textbox(elem_id="plot-state", elem_classes=["ddb-hidden"], label="plot state")
            # set by the poll only when the project changed elsewhere; its change redraws the screen
            v.elsewhere = gr.Textbox("", elem_id="elsewhere-version", elem_classes=["ddb-hidden"], label="changed elsewhere")
            review_plots.build(state, v)  # the selection, the map
    gr.Markdown("### Candidate")
    with gr.Row():  # PNG, not Gradio's WebP: the pixels a reviewer judges arrive unchanged, and encode 3× faster
        panel = lambda label, eid, pixelated=True: gr.Image(label=label, type="numpy", format="png", interactive=False, elem_id=eid,
                                                            elem_classes=["pixelated"] if pixelated else None,
                                                            buttons=["fullscreen"])
        v.panels = [panel("source", "panel-source"), panel("mask on source", "panel-mask"),
                    panel("inpainted result", "panel-result"), panel("softmax shift", "panel-softmax", False),
                    panel("IG on result, mask outline", "panel-ig")]
    v.info = gr.Markdown(elem_id="review-info")
    with gr.Row():
        v.prev = gr.Button("← previous", elem_id="btn-prev")
        v.accept = gr.Button("accept (a)", variant="primary", elem_id="btn-accept")
        v.reject = gr.Button("reject (r)", variant="stop", elem_id="btn-reject")
        v.auto = gr.Button("back to automatic", elem_id="btn-auto")
        v.undo = gr.Button("undo (u)", elem_id="btn-undo")
        v.next = gr.Button("next →", elem_id="btn-next")
        v.queue_next = gr.Button("next in queue (n)", elem_id="btn-queue-next")
    review_plots.build_large(state, v)
    with gr.Accordion("Edit the mask and regenerate this candidate", open=False):
        gr.Markdown("Paint the region to repaint (red) on the source, then regenerate: the new candidate keeps the "
                    "source, prompt and seed, is scored at once, and appears next to the original.")
        v.editor = gr.ImageEditor(type="numpy", image_mode="RGBA", height=300, elem_id="mask-editor",
                                  brush=gr.Brush(colors=["#ff3030"], default_size=10, color_mode="fixed"),
                                  transforms=(), sources=())
        with gr.Row():
            v.edit_btn = gr.Button("Load the current mask")
            v.regen_btn = gr.Button("Regenerate with this mask", variant="primary")
        v.regen_msg = gr.Markdown()
    with gr.Accordion("Recent actions (the audit log): undo another reviewer's decision", open=False,
                      elem_id="audit-list") as v.audit_box:
        gr.Markdown("`u` undoes only your own decisions. To undo one made by another reviewer or by `ddb`, choose its "
                    "number here and confirm; candidates changed again since keep their later decision.")
        v.audit_md = gr.Markdown(elem_id="audit-table")
        with gr.Row():
            v.audit_id = gr.Number(label="action #", precision=0, elem_id="audit-id")
            v.audit_ask = gr.Button("Undo this action…", size="sm", elem_id="btn-audit-undo")
            v.audit_confirm = gr.Button("Confirm the undo", size="sm", variant="stop", visible=False,
                                        elem_id="btn-audit-confirm")
        v.audit_msg = gr.Markdown(elem_id="audit-msg")
    gr.Markdown("### Gallery")
    with gr.Row():
        v.f_dir = gr.Dropdown(label="direction", choices=[("all", "")], value="")
        v.f_method = gr.Dropdown([("all", ""), ("DDB", "ddb"), ("SCGS", "scgs")], value="", label="method")
        v.f_status = gr.Dropdown(STATUS_CHOICES, value="all", label="decision")
        v.f_sort = gr.Dropdown(SORT_CHOICES, value="id", label="sort")
        v.f_psi = gr.Textbox(label="ψ range (min,max)", placeholder="e.g. 0,0.5")
        v.f_rho = gr.Textbox(label="ρ range (min,max)", placeholder="e.g. 0.1,")
    with gr.Row():
        v.page_prev = gr.Button("◀ page", size="sm")
        v.page_info = gr.Markdown(elem_id="page-info")
        v.page_next = gr.Button("page ▶", size="sm")
    v.gallery = gr.Gallery(columns=12, height="auto", allow_preview=False, elem_id="gallery", elem_classes=["pixelated"],
                           show_label=False)  # every row of a page shown; no label over the first thumbnail
    with gr.Row():
        v.batch_action = gr.Dropdown([("accept", "accept"), ("reject", "reject"), ("back to automatic", "auto")],
                                     value="reject", label="batch action on every candidate of the current filter")
        v.batch_btn = gr.Button("Apply to the filter…")
        v.batch_confirm = gr.Button("Confirm", visible=False, variant="stop", elem_id="btn-batch-confirm")
    v.batch_msg = gr.Markdown(elem_id="batch-msg")
    v.pending_batch = gr.State(None)  # the ids and action counted, until confirmed or cancelled
    v.nav = gr.State(dict(EMPTY_NAV))
    v.poll = gr.Timer(POLL_S)  # see poll()
    # groups of components the handlers read and write
    v.sliders = [*v.psi, *v.p]
    v.slider_outs = [*v.sliders, v.th_version]  # what ``slider_updates`` draws
    v.filters = [v.f_dir, v.f_status, v.f_sort, v.f_psi, v.f_rho, v.f_method, v.selection, v.nav]
    v.detail = [*v.panels, v.info]
    v.refiltered = [v.counts, v.gallery, v.page_info, v.nav, *v.detail]
    return v


def wire(state: AppState, v: SimpleNamespace, shared: SimpleNamespace) -> None:
    plots_out = [v.counts, v.scatter, v.hist_psi, v.hist_rho, v.plot_state]
    # after every action that changes what the project holds (a decision, a batch, an undo, a saved threshold,
    # a reset, an undo of a threshold change, a regeneration): the plots and the map drawn from the database
    v.redraw = partial(redraw, state)
    v.after = (safe(v.redraw), [v.plot_dir, v.colour_by, v.nav],
               [v.scatter, v.hist_psi, v.hist_rho, v.plot_state, v.map, v.gallery, v.page_info])
    # .input (a user's move), not .change: a programmatic update must not redraw stale values. Each preview sends the
    # threshold version its page holds, and one sent before a change it has not seen is not drawn: under load a
    # preview answered after the redraw of a later key's save and left the plot at the value before that key
    for s in v.sliders:
        s.input(partial(on_threshold, state, v), [*v.sliders, v.plot_dir, v.th_version], plots_out, show_progress="hidden",
                trigger_mode="always_last", api_name=f"threshold_{s.elem_id.replace('-', '_')}", **REDRAW)
    # the plots' direction: drawn at the stored thresholds; a second choice made while the first is drawn, drawn after it
    v.plot_dir.input(partial(on_direction, state), [v.plot_dir], plots_out, show_progress="hidden",
                     trigger_mode="always_last", **REDRAW)
    for slot, s in enumerate(v.sliders):
        s.release(safe(partial(save_threshold, state, v, slot)), [*v.sliders, *v.filters, v.th_version],
                  [*v.slider_outs, v.th_msg, *v.refiltered],
                  show_progress="hidden", api_name=f"save_{s.elem_id.replace('-', '_')}", **ORDERED).then(*v.after, **AFTER)
    refilter_fn = safe(partial(refilter, state))
    # .select (a user's choice), not .change: "next in queue" and a refresh set these themselves, with the gallery
    # that goes with them; a .change would filter again behind them and could answer after a later decision. Not
    # .input either: a dropdown sends it twice for one choice (on the pick and again as it closes), and the second
    # filtering drew the gallery and the panels a second time. In the actions' group, every one processed in order
    # (Gradio's default, "once", dropped a second choice made while the first was filtering, and filters of two
    # dropdowns could answer out of order: the gallery then showed another filter than the dropdowns)
    for comp in (v.f_dir, v.f_status, v.f_sort, v.f_method):
        comp.select(refilter_fn, v.filters, v.refiltered, show_progress="hidden", **ORDERED)
    for comp, name in ((v.f_psi, "filter_psi"), (v.f_rho, "filter_rho")):
        comp.submit(refilter_fn, v.filters, v.refiltered, show_progress="hidden", api_name=name, **ORDERED)
    v.reset.click(ask_reset, [], [v.th_msg, v.reset_confirm, v.reset_cancel])
    v.reset_cancel.click(lambda: ("The reset was cancelled; nothing changed.", gr.Button(visible=False),
                                  gr.Button(visible=False)), [], [v.th_msg, v.reset_confirm, v.reset_cancel])
    for btn, fn, name in ((v.reset_confirm, reset_thresholds, "reset_thresholds"),
                          (v.undo_th, undo_thresholds, "undo_thresholds")):
        btn.click(safe(partial(fn, state, v)), [], [*v.slider_outs, v.th_msg, v.reset_confirm, v.reset_cancel],
                  api_name=name, **ORDERED).then(
            safe(partial(refilter, state, keep_current=True)), v.filters, v.refiltered, trigger_mode="always_last").then(
            *v.after, **AFTER)
    # a cheap look every few seconds: a screen whose project changed elsewhere (another tab, user, `ddb`) is drawn again
    # (in the actions' group: it writes the shown candidate, which an action in flight may be moving)
    # The tick itself writes one hidden field, and only when the project changed: a tick that finds nothing new
    # leaves the screen untouched (an event whose outputs were the whole screen restyled every part at each tick)
    v.poll.tick(partial(poll_check, state), [], [v.elsewhere], show_progress="hidden",
                concurrency_id="review-poll", concurrency_limit=1)
    v.elsewhere.change(safe(partial(poll, state, v)), [*v.filters, v.plot_dir, v.colour_by], poll_outputs(v),
                       show_progress="hidden", **ORDERED)
    actions.wire(state, v)
    review_plots.wire(state, v, shared)


def poll_outputs(v: SimpleNamespace) -> list:
    return [*v.slider_outs, v.th_msg, v.counts, v.scatter, v.hist_psi, v.hist_rho, v.plot_state, v.gallery, v.page_info, v.nav,
            *v.detail, v.map]


def poll_check(state: AppState):
    """The poll's tick: a new value for the hidden field when the project changed elsewhere (its change then redraws
    the screen), else nothing at all."""
    version = state.version()
    if not state.changed_elsewhere(version):
        return gr.skip()
    return json.dumps([*version, time.monotonic()])  # always new, so that a second change elsewhere fires again


def poll(state: AppState, v: SimpleNamespace, *values):
    """Nothing when the project is as this screen was drawn from; else the whole screen again (the thresholds as
    stored, the counts, plots, gallery, the shown candidate, the map), the filters and the shown candidate kept."""
    version = state.version()
    if not state.changed_elsewhere(version):
        return [gr.skip() for _ in poll_outputs(v)]
    *filters, direction, colour_by = values
    index = state.index()
    if index is None or len(index) == 0:
        return [gr.skip() for _ in poll_outputs(v)]
    d, st, sort, fpsi, frho, method, selection, nav = filters
    counts, gallery, page_info, nav, *detail = refilter(state, d, st, sort, fpsi, frho, method, selection, nav,
                                                        keep_current=True, page=nav.get("page", 0))
    state.mark_shown(index, True, version)
    return [*slider_updates(v, index), "<span id='elsewhere-msg'>The project changed elsewhere (another tab, another "
            "user or the command line): the screen now shows what it holds.</span>", counts,
            *plots_at(index, index.Psi, index.P, direction), gallery, page_info, nav, *detail,
            sent_once("map", review_plots.render_map(state, index.Psi, index.P, colour_by or "decision"), False)]


def refresh_outputs(v: SimpleNamespace) -> list:
    return [*v.slider_outs, v.counts, v.scatter, v.hist_psi, v.hist_rho, v.plot_state, v.plot_dir, v.f_dir, v.f_method, v.f_status,
            v.f_sort, v.f_psi, v.f_rho, v.gallery, v.page_info, v.nav, *v.detail, v.map, v.selection, v.selection_md]


def refresh_inputs(v: SimpleNamespace) -> list:
    return [*v.filters, v.plot_dir]


def refresh(state: AppState, v: SimpleNamespace, d="", st="all", sort="id", fpsi="", frho="", method="", selection=None,
            nav=None, direction=None) -> list:
    """Everything the screen shows, from the stored thresholds (on page load, Refresh and after every job). The
    filters, the sort, the plot selection, the plots' direction and the shown candidate stay as they were where
    they still exist."""
    version = state.version()
    index = state.index(reload=True)
    names = state.class_names()
    no_selection = [None, "No selection: drag on a plot to select."]
    state.mark_shown(index, True, version)
    if index is None or len(index) == 0:
        return [*slider_updates(v, index), counts_markdown(index, {}, {}, names), *plots_at(None, {}, {}, None),
                gr.Dropdown(choices=[]), gr.Dropdown(choices=[("all", "")], value=""), *FILTER_DEFAULTS, [], "", dict(EMPTY_NAV),
                None, None, None, None, None, "No candidates yet.", None, *no_selection]
    dirs = direction_choices(index, names)
    known = {value for _label, value in dirs}
    d = d if d in known else ""
    direction = direction if direction in known else (dirs[0][1] if dirs else None)
    if selection is not None:  # the ids drawn on a plot: those that still exist
        selection = [int(i) for i in np.asarray(selection, np.int64)[index.pos.lookup(np.asarray(selection, np.int64))[1]]] \
            if len(selection) else selection
    try:
        f = current_filter(d, st, sort, fpsi, frho, method, selection)
    except DDBError:  # a range typed that no longer parses: the whole gallery
        d, st, sort, fpsi, frho, method, selection = "", *FILTER_DEFAULTS[1:], "", None
        f = current_filter(d, st, sort, fpsi, frho, method, selection)
    ids = index.query(f)
    shown = (nav or {}).get("ids", [])[(nav or {}).get("pos", 0)] if (nav or {}).get("ids") and \
        (nav or {}).get("pos", 0) < len(nav["ids"]) else None
    id_list = [int(i) for i in ids]
    pos = id_list.index(shown) if shown in id_list else 0
    from .review_view import PAGE

    gallery, page_info = gallery_items(index, ids, pos // PAGE)
    nav = {"ids": Ids(id_list), "pos": pos, "page": pos // PAGE}
    selection_out = no_selection if selection is None else [selection, gr.skip()]
    return [*slider_updates(v, index), counts_markdown(index, index.Psi, index.P, names),
            *plots_at(index, index.Psi, index.P, direction),
            gr.Dropdown(choices=dirs, value=direction),
            gr.Dropdown(choices=[("all", "")] + dirs, value=d), method, st, sort, fpsi, frho, gallery, page_info, nav,
            *detail_panels(index, id_list[pos] if id_list else None, names),
            sent_once("map", review_plots.render_map(state, index.Psi, index.P), False), *selection_out]


# method, decision, sort, ψ range, ρ range: a refresh shows the whole gallery by id, and the filters say so
FILTER_DEFAULTS = ("", "all", "id", "", "")


def redraw(state: AppState, direction, colour_by, nav):
    """The ψ–ρ plot, both histograms, the map and the gallery's page (its badges) at the thresholds and
    decisions the project holds."""
    version = state.version()
    index = state.index()
    if index is None or len(index) == 0:
        return (*plots_at(None, {}, {}, None), gr.skip(), gr.skip(), gr.skip())
    state.mark_shown(index, False, version)
    gallery, page_info = gallery_items(index, np.array(nav.get("ids", []), np.int64), nav.get("page", 0))
    return (*plots_at(index, index.Psi, index.P, direction, skip_same=True),
            sent_once("map", review_plots.render_map(state, index.Psi, index.P, colour_by or "decision"), True),
            gallery, page_info)
