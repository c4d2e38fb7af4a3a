"""The Review screen's thresholds: Ψ per source class and P per target class on sliders, live counts and plots while
one moves, saved once per change (rounded to the step, refused on a screen whose sliders are stale), reset to the
computed defaults and undone."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np

from ddb_core.curation.decisions import THRESHOLD_KINDS

from .review_view import EMPTY_NAV, counts_markdown, nice_step, p_step, plots_at, refilter, thresholds_from
from .state import AppState, session_of, user_of


def _lenient_slider_class():
    """``gr.Slider`` with an empty number box passed on as None (see ``threshold_slider``). A class, not an instance's
    own ``preprocess``: a screen's update makes a new component of the same class, and an instance attribute would be
    lost. Gradio writes a ``.pyi`` stub beside the module of every component class defined outside it; that is switched
    off while this one class is made (its interface is ``gr.Slider``'s)."""
    from gradio import component_meta

    write_stub = component_meta.create_or_modify_pyi
    component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        class ThresholdSlider(gr.Slider):
            is_template = True  # the page draws the parent's component (``Block.get_block_name``)

            def preprocess(self, payload):
                if payload is None or (isinstance(payload, str) and not payload.strip()):
                    return None
                return super().preprocess(payload)
    finally:
        component_meta.create_or_modify_pyi = write_stub
    return ThresholdSlider


ThresholdSlider = _lenient_slider_class()


def threshold_slider(*args, **kwargs) -> gr.Slider:
    """A slider whose number box may be empty for a moment: a reviewer empties it to type a value (or starts a negative
    value with its sign), and the page sends the slider's events an empty value, which ``gr.Slider`` refuses with an
    error before any handler runs. This one passes an empty box on as None (the preview draws nothing, the save saves
    nothing); a number out of the slider's range is refused as before."""
    return ThresholdSlider(*args, **kwargs)


def thresholds_version(project) -> str:
    """The id of the project's latest threshold change (a save, reset or undo of any session), as text."""
    return str(project.db.execute(f"select coalesce(max(id), 0) from actions where kind in {THRESHOLD_KINDS}").fetchone()[0])


def changed_since(project, drawn) -> bool:
    """Whether a threshold change not made by this session came after the one the sliders were drawn from
    (``drawn``, sent back by the page; none sent: an API caller, taken as current)."""
    if drawn in (None, ""):
        return False
    try:
        drawn = int(drawn)
    except (TypeError, ValueError):
        return True
    return project.db.execute(f"select count(*) from actions where id > ? and kind in {THRESHOLD_KINDS} and "
                              "coalesce(json_extract(detail, '$.session'), '') != ?", [drawn, session_of()]).fetchone()[0] > 0


def slider_updates(v: SimpleNamespace, index) -> list:
    """Slider ranges and values from the project's thresholds and the ρ distribution.

    The P range spans every ρ with a 5% margin; a stored P outside it is shown at the nearest end,
    which keeps and prunes exactly the same candidates."""
    if index is None or len(index) == 0:
        return [gr.Slider() for _ in v.sliders] + [""]
    names = index.project.class_names  # the page may have been built before the project had its classes
    name = lambda c: names[c] if c < len(names) else f"class {c}"
    rho = index.rho[np.isfinite(index.rho)]
    lo, hi = (float(rho.min()), float(rho.max())) if rho.size else (-1.0, 1.0)
    margin = max(hi - lo, 1e-6) * 0.05
    step, decimals = nice_step(hi - lo + 2 * margin)
    lo, hi = float(np.floor((lo - margin) / step) * step), float(np.ceil((hi + margin) / step) * step)
    lo, hi = round(lo, decimals), round(hi, decimals)
    n = index.n_classes
    ups = [gr.Slider(minimum=0.0, maximum=1.001, step=PSI_STEP,
                     value=round(min(max(index.Psi.get(c, 0.5), 0.0), 1.001), PSI_DECIMALS),
                     visible=c < n, label=f"Ψ {name(c)} (source)") for c in range(v.n_sliders)]
    ps = [gr.Slider(minimum=lo, maximum=hi, step=step, visible=c < n, label=f"P {name(c)} (target)",
                    value=round(min(max(index.P.get(c, 0.0), lo), hi), decimals)) for c in range(v.n_sliders)]
    return ups + ps + [thresholds_version(index.project)]


PSI_STEP, PSI_DECIMALS = 0.0001, 4  # the Ψ sliders' step (ψ is a probability)


def stale_preview(index, drawn) -> bool:
    """Whether a slider preview was sent from a screen whose thresholds a change has replaced since (``drawn``: the
    threshold version the page held when it sent the preview; none sent: an API caller, taken as current). A preview
    of an earlier key press or drag position can answer after the redraw of a later save, however long the queue:
    drawing it would leave the plot at a value the project does not hold. The change's own redraw (a save's, a
    reset's, an undo's, or the poll's for a change made elsewhere) draws what the project holds."""
    return drawn not in (None, "") and str(drawn) != thresholds_version(index.project)


def on_threshold(state: AppState, v: SimpleNamespace, *values):
    """A slider moved: counts and plots at the new thresholds (nothing saved yet)."""
    index = state.index()
    names = state.class_names()
    if index is None or len(index) == 0:
        return counts_markdown(index, {}, {}, names), *plots_at(None, {}, {}, None)
    *th, direction, drawn = values
    n = index.n_classes
    shown = list(th[:n]) + list(th[v.n_sliders:v.n_sliders + n])
    if None in shown or stale_preview(index, drawn):
        # a number box emptied to type into, or a preview a later save replaced: the counts, the three plots and
        # the plot's state stay as drawn
        return tuple(gr.skip() for _ in range(5))
    Psi, P = thresholds_from(index, shown)
    return counts_markdown(index, Psi, P, names), *plots_at(index, Psi, P, direction)


def on_direction(state: AppState, direction):
    """The plots' direction chosen: counts and plots at the thresholds the project holds (a direction changes nothing
    stored; the sliders show the stored values rounded to their step, which a plot drawn from them would show too)."""
    index = state.index()
    names = state.class_names()
    if index is None or len(index) == 0:
        return counts_markdown(index, {}, {}, names), *plots_at(None, {}, {}, None)
    return counts_markdown(index, index.Psi, index.P, names), *plots_at(index, index.Psi, index.P, direction)


def save_threshold(state: AppState, v: SimpleNamespace, slot: int, *values):
    """Slider ``slot`` released (a drag, a key press, Enter or leaving its number box): its value alone, rounded to
    the slider's step, is saved with the project (a value another process saved for another class meanwhile is
    kept); the gallery and detail follow. A screen whose sliders show other thresholds than the project holds
    (changed in another tab, by another user or ``ddb``) saves nothing: it is shown the stored ones."""
    version = state.version()
    index = state.index()
    keep = [gr.skip() for _ in v.slider_outs]
    if index is None or len(index) == 0:
        return *keep, "", gr.Markdown(), [], "", dict(EMPTY_NAV), None, None, None, None, None, ""
    *th, d, st, sort, fpsi, frho, method, selection, nav, drawn = values
    c = slot % v.n_sliders
    if changed_since(index.project, drawn):
        state.mark_shown(index, True, version)
        return (*slider_updates(v, index), "<span id='threshold-stale'>**Changed elsewhere** (another tab, another user "
                "or the command line) — now showing the stored thresholds; nothing was saved.</span>",
                *refilter(state, d, st, sort, fpsi, frho, method, selection, nav, keep_current=True))
    msg = ""
    if c < index.n_classes and th[slot] is not None:
        psi = slot < v.n_sliders
        step, decimals = (PSI_STEP, PSI_DECIMALS) if psi else p_step(index)
        typed = float(th[slot])
        value = round(round(typed / step) * step, decimals)
        before = (index.Psi if psi else index.P).get(c)
        index.save_thresholds(**{"Psi" if psi else "P": {c: value}}, who=user_of(), session=session_of())
        state.mark_shown(index, True, version)
        keep[-1] = thresholds_version(index.project)
        names = state.class_names()
        name = names[c] if c < len(names) else f"class {c}"
        if before is None or before != value:
            msg = (f"<span id='threshold-saved'>Saved: {'Ψ' if psi else 'P'} {name} = {value:.{decimals}f}"
                   + (f" (from {before:.{decimals}f})" if before is not None else "") + ".</span>")
        if value != typed:  # typed between two steps: the slider shows what was stored
            keep[slot] = slider_updates(v, index)[slot]
    return (*keep, msg, *refilter(state, d, st, sort, fpsi, frho, method, selection, nav, keep_current=True))


def ask_reset():
    return ("**Reset the thresholds** of the active ERM model to the computed defaults (Ψ from Eq. 3, P from the "
            "candidates scored now)? Every decision that follows from them may change; “Undo the last threshold "
            "change” restores them.", gr.Button(visible=True), gr.Button(visible=True))


def reset_thresholds(state: AppState, v: SimpleNamespace):
    index = state.index()
    if index is None:
        return [gr.Slider() for _ in v.slider_outs] + ["", gr.Button(visible=False), gr.Button(visible=False)]
    version = state.version()
    index.reset_thresholds(who=user_of(), session=session_of())
    state.mark_shown(index, True, version)
    return slider_updates(v, index) + ["Thresholds reset to the computed defaults.", gr.Button(visible=False),
                                       gr.Button(visible=False)]


def undo_thresholds(state: AppState, v: SimpleNamespace):
    version = state.version()
    index = state.index()
    if index is None or index.undo_thresholds(who=user_of(), session=session_of()) is None:
        return [gr.skip() for _ in v.slider_outs] + ["No threshold change to undo.", gr.Button(visible=False),
                                                 gr.Button(visible=False)]
    state.mark_shown(index, True, version)
    return slider_updates(v, index) + ["The thresholds are back as they were before the last change.",
                                       gr.Button(visible=False), gr.Button(visible=False)]
