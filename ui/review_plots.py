"""Selecting on the Review screen's plots: a lasso or a box drawn on the ψ–ρ plot or on the map of the
candidates becomes the gallery's filter (with its count), ready for the batch actions; a click on a
dot opens that candidate. Also the map itself (the ERM model's features of the candidates in two
dimensions, coloured by decision, direction or a score) and the large view of one candidate (the page copies
the chosen panel's image into it: ``LARGE_JS`` in ui/app.py).

The browser draws the selection over the plot image (``SELECT_JS``) and sends its points in image
pixels; they map back through the same ``PlotFrame`` the plot was drawn with, so a selection holds
exactly the dots it covers.
"""

from __future__ import annotations

import json
from functools import partial
from types import SimpleNamespace

import gradio as gr
import numpy as np

from ddb_core.project.errors import DDBError

from . import plots
from .review_view import (PAGE, Ids, counts_markdown, sent_once, current_filter, detail_panels, gallery_items, refilter, scatter_frame,
                          status_codes, thresholds_from)
from .state import ORDERED, AppState, safe, started

COLOUR_BY = [("decision", "decision"), ("direction", "direction"), ("ψ", "psi"), ("ρ", "rho"),
             ("detection score", "detection")]
DIRECTION_COLOURS = [(33, 150, 243), (255, 152, 0), (76, 175, 80), (156, 39, 176), (0, 150, 136), (233, 30, 99)]
RAMP = [(49, 54, 149), (69, 117, 180), (116, 173, 209), (253, 174, 97), (244, 109, 67), (165, 0, 38)]  # low → high
LARGE_MODES = [("source (1)", "source"), ("mask (2)", "mask"), ("result (3)", "result"), ("IG map (4)", "ig")]


def build(state: AppState, v: SimpleNamespace) -> None:
    """The selection controls, the map and the large view (inside the Review screen's layout)."""
    with gr.Row():
        v.selection_md = gr.Markdown("No selection: drag on a plot to select.", elem_id="selection-info")
        v.clear_selection = gr.Button("Clear the selection", size="sm", elem_id="btn-clear-selection")
    with gr.Accordion("Map of the candidates (ERM features in 2-D): select clusters there too", open=False):
        with gr.Row():
            v.colour_by = gr.Dropdown(COLOUR_BY, value="decision", label="colour by")
            v.map_method = gr.Dropdown(["pca"] + (["umap"] if _umap() else []), value="pca", label="projection")
            v.compute_map = gr.Button("Compute the map (a background job)")
        v.map = gr.Image(label="map: candidates (colour), their sources (grey)", type="numpy", format="png", interactive=False,
                         elem_id="map-plot", elem_classes=["selectable-plot"], show_label=False, buttons=[])
    v.plot_payload = gr.Textbox(elem_id="plot-selection", elem_classes=["ddb-hidden"], label="selection")
    v.plot_select = gr.Button("select", elem_id="btn-plot-select", elem_classes=["ddb-hidden"])
    v.selection = gr.State(None)  # the candidate ids selected on a plot, or None


def build_large(state: AppState, v: SimpleNamespace) -> None:
    with gr.Accordion("Large view (keys 1–4 flip it)", open=True):
        v.large_mode = gr.Radio(LARGE_MODES, value="result", show_label=False, elem_id="large-mode",
                                interactive=True)  # read by the page alone (LARGE_JS)
        # the chosen panel's own image, enlarged by the page (LARGE_JS in ui/app.py): no round trip to the server, so a
        # key press that shows the next candidate shows it here at the same moment
        v.large = gr.HTML('<img alt="large view of the shown candidate" class="ddb-large" hidden>', elem_id="large-view",
                          elem_classes=["pixelated"])


def wire(state: AppState, v: SimpleNamespace, shared: SimpleNamespace) -> None:
    batch_reset = [v.batch_msg, v.batch_confirm, v.pending_batch]
    inputs = [v.plot_payload, *v.sliders, v.plot_dir, v.colour_by, *v.filters]
    v.plot_select.click(safe(partial(select, state, v)), inputs, [v.selection, v.selection_md, *batch_reset, *v.refiltered],
                        show_progress="hidden", api_name="plot_select", **ORDERED)
    v.clear_selection.click(safe(partial(clear, state)), v.filters, [v.selection, v.selection_md, *batch_reset,
                                                                       *v.refiltered], show_progress="hidden")
    v.colour_by.change(safe(partial(map_image, state)), [*v.sliders, v.colour_by], [v.map], show_progress="hidden")
    v.compute_map.click(safe(partial(compute_map, state)), [v.map_method], [shared.job_md, shared.timer], api_name="compute_map")


def _umap() -> bool:
    from ddb_core.curation.candidate_map import umap_available

    return umap_available()


# -- the map ---------------------------------------------------------------------------------------

def map_data(state: AppState):
    """The active model's map (cached until it changes)."""
    p = state.project()
    key = p.db.execute("select count(*), coalesce(max(erm_model_id), 0) from map_points").fetchone()
    if getattr(state, "_map_key", None) != (key, p.active_erm_id):
        from ddb_core.curation.candidate_map import load_map

        state._map, state._map_key = load_map(p), (key, p.active_erm_id)
    return state._map


def map_frame(index, data: dict):
    """(candidate positions in the index, x, y, PlotFrame) of the map."""
    pos = np.clip(np.searchsorted(index.ids, data["candidate_ids"]), 0, max(0, len(index) - 1))
    known = index.ids[pos] == data["candidate_ids"] if len(index) else np.zeros(0, bool)
    x, y = data["cx"][known], data["cy"][known]
    every_x, every_y = np.concatenate([x, data["sx"]]), np.concatenate([y, data["sy"]])
    (x0, x1), (y0, y1) = np.percentile(every_x, [0.5, 99.5]), np.percentile(every_y, [0.5, 99.5])
    pad_x, pad_y = max(x1 - x0, 1e-6) * 0.05, max(y1 - y0, 1e-6) * 0.05
    frame = plots.PlotFrame(14, 30, 640 - 28, 420 - 30 - 14, float(x0 - pad_x), float(x1 + pad_x), float(y0 - pad_y),
                            float(y1 + pad_y), 640, 420)
    return pos[known], x, y, frame


def map_image(state: AppState, *values):
    """The map at the sliders' thresholds (a colour-by change)."""
    *sliders, colour_by = values
    index = state.index()
    if index is None or not len(index):
        return None
    half = len(sliders) // 2  # Ψ sliders, then P sliders
    Psi, P = thresholds_from(index, list(sliders[:index.n_classes]) + list(sliders[half:half + index.n_classes]))
    return sent_once("map", render_map(state, Psi, P, colour_by), False)


def render_map(state: AppState, Psi: dict, P: dict, colour_by: str = "decision"):
    """The map of the candidates coloured by ``colour_by``, their sources faded; before it is computed, a panel that
    says how to compute it."""
    index, data = state.index(), map_data(state)
    if index is None or not len(index):
        return None
    if data is None:
        from PIL import Image

        img = Image.new("RGB", (640, 120), plots.BG)
        d = plots._draw(img, 13)
        d.text((16, 30), "No map yet: press “Compute the map” below.", fill=plots.AXIS)
        d.text((16, 56), "It places every candidate and its source by the ERM model's features, so that groups of",
               fill=plots.AXIS)
        d.text((16, 76), "similar failures show together (a background job; the rest of the screen works meanwhile).",
               fill=plots.AXIS)
        return np.asarray(img)
    pos, x, y, frame = map_frame(index, data)
    layers = [(data["sx"], data["sy"], (200, 200, 200))]  # the sources, faded
    if colour_by == "decision":
        codes = status_codes(index, Psi, P)[pos]
        layers += [(x[codes == c], y[codes == c], col) for c, col in
                   ((0, plots.PRUNED), (1, plots.KEPT), (3, plots.REJECTED), (2, plots.ACCEPTED))]
        legend = "green kept, red pruned, blue/purple manual"
    elif colour_by == "direction":
        names = state.class_names()
        dirs = sorted(set(zip(index.src[pos].tolist(), index.tgt[pos].tolist())))
        layers += [(x[(index.src[pos] == i) & (index.tgt[pos] == j)], y[(index.src[pos] == i) & (index.tgt[pos] == j)],
                    DIRECTION_COLOURS[k % len(DIRECTION_COLOURS)]) for k, (i, j) in enumerate(dirs)]
        legend = ", ".join(f"{names[i]}→{names[j]} {['blue', 'orange', 'green', 'purple', 'teal', 'pink'][k % 6]}"
                           for k, (i, j) in enumerate(dirs))
    else:
        values_ = (index.det if colour_by == "detection" else index.psi if colour_by == "psi" else index.rho)[pos]
        ok = np.isfinite(values_)
        edges = np.quantile(values_[ok], np.linspace(0, 1, len(RAMP) + 1)) if ok.any() else np.zeros(len(RAMP) + 1)
        bins = np.clip(np.searchsorted(edges, values_, side="right") - 1, 0, len(RAMP) - 1)
        layers += [(x[ok & (bins == b)], y[ok & (bins == b)], RAMP[b]) for b in range(len(RAMP))]
        shown = {"psi": "ψ", "rho": "ρ", "detection": "detection score"}.get(colour_by, colour_by)
        legend = f"{shown} low (blue) → high (red), by sixths"
    img = plots.raster(layers, frame)

    plots._title(plots._draw(img), f"{data['method'].upper()} map of {len(x)} candidates: {legend}; drag to select",
                 frame.image_w, 12)
    return np.asarray(img)


def compute_map(state: AppState, method):
    from ddb_core.curation.candidate_map import MapConfig, compute_map as _compute

    cfg = MapConfig(method=method or "pca")
    return started(state, f"map of the candidates ({cfg.method})", lambda on_progress, cancel: _compute(
        state.project(), cfg, on_progress=on_progress, cancel=cancel))


# -- selections ------------------------------------------------------------------------------------

def _selection_text(ids, where: str) -> str:
    return f"**Selection: {len(ids)} candidates** drawn on the {where}; the gallery below shows them (with its filter)."


def select(state: AppState, v: SimpleNamespace, payload, *values):
    """A drag (lasso or box) → the selection, and the gallery filtered by it; a click → that candidate."""
    n = v.n_sliders
    sliders, (direction, colour_by), filters = values[:2 * n], values[2 * n:2 * n + 2], values[2 * n + 2:]
    *filt, selection, nav = filters
    index = state.index()
    try:
        sel = json.loads(payload or "{}")
        points = [(float(x), float(y)) for x, y in sel.get("points", [])]
    except (ValueError, TypeError, AttributeError, RecursionError):
        raise DDBError(f"a plot selection is a JSON object with points, got {str(payload)[:80]!r}") from None
    if index is None or not len(index) or not points:
        return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), *refilter(state, *filt, selection, nav))
    Psi, P = thresholds_from(index, list(sliders[:index.n_classes]) + list(sliders[n:n + index.n_classes]))
    if sel.get("plot") == "map":
        data = map_data(state)
        if data is None:
            raise DDBError("the map is not computed yet: press “Compute the map” first")
        pos, x, y, frame = map_frame(index, data)
        where = "map"
    else:
        pos, x, y, frame = scatter_frame(index, Psi, P, direction)
        where = "ψ–ρ plot"
    if sel.get("click") or len(points) < 3:
        k = plots.nearest(frame, x, y, points[0])
        if k is None:
            return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), *refilter(state, *filt, selection, nav))
        cid = int(index.ids[pos[k]])  # that candidate is shown, in the filter or not
        ids = [int(i) for i in index.query(current_filter(*filt, selection))]
        outside = cid not in ids
        if outside:
            ids.insert(0, cid)
        at = ids.index(cid)
        gallery, page_info = gallery_items(index, np.array(ids, np.int64), at // PAGE)
        names = state.class_names()
        *panels, info = detail_panels(index, cid, names)
        if outside:
            info = (f"<span id='outside-msg'>**Outside the current filter**: candidate {cid} is shown because it was "
                    f"clicked on the plot; the gallery shows it first.</span>\n\n" + (info or ""))
        return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), counts_markdown(index, index.Psi, index.P, names),
                gallery, page_info, {"ids": Ids(ids), "pos": at, "page": at // PAGE}, *panels, info)
    chosen = [int(i) for i in index.ids[pos[plots.selected_in(frame, x, y, points)]]]
    return (chosen, _selection_text(chosen, where), "", gr.Button(visible=False), None,  # a pending batch is cancelled
            *refilter(state, *filt, chosen, nav))


def clear(state: AppState, *filters):
    *filt, _selection, nav = filters
    return (None, "No selection: drag on a plot to select.", "", gr.Button(visible=False), None,
            *refilter(state, *filt, None, nav))
