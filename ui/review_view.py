"""What the Review screen shows, as plain functions of the review model (``ddb_core.curation.review``): the
counts table, the plots, a gallery page, one candidate's five panels and its text. No Gradio here:
the screen module wires these to components, and tests and the scale benchmark call them directly.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from typing import Optional

import numpy as np

from ddb_core.project.errors import DDBError
from ddb_core.pipeline.igmaps import load_ig
from ddb_core.curation.queue import SIGNALS
from ddb_core.data.thumbnails import thumbnail_file

from . import charts, plots
from .state import load_image

PAGE = 48  # gallery thumbnails per page
BIG = 256  # longer side of an enlarged panel, px
STATUS_CHOICES = [("all", "all"), ("automatically kept", "auto-kept"), ("automatically pruned", "auto-pruned"),
                  ("manually accepted", "accepted"), ("manually rejected", "rejected"), ("not scored", "unscored"),
                  ("stale scores (another ERM model)", "stale")]
SORT_CHOICES = [("id", "id"), ("review first (queue)", "queue"), ("ρ high → low", "-rho"), ("ρ low → high", "rho"), ("ψ low → high", "psi"),
                ("ψ high → low", "-psi"), ("detection score high → low", "-detection")]


class Ids(tuple):
    """The candidate ids the screen shows, in the gallery's order (the page's ``nav`` state). Immutable, so that the
    copies Gradio makes of the state at each event share it instead of copying every id (a list of 120,000 ids
    took about 20 ms a copy, several times per key press)."""

    __slots__ = ()

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


EMPTY_NAV = {"ids": Ids(), "pos": 0, "page": 0}


def parse_range(text: str) -> tuple[float, float]:
    """"min,max" (either side may be empty) → a range; empty → everything."""
    if not text or not text.strip():
        return (-np.inf, np.inf)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise DDBError(f"a range is 'min,max' (either side may be empty), got {text!r}")
    try:
        return (float(parts[0]) if parts[0] else -np.inf, float(parts[1]) if parts[1] else np.inf)
    except ValueError:
        raise DDBError(f"a range is two numbers 'min,max', got {text!r}") from None


def current_filter(direction, status, sort, psi_range, rho_range, method="", selection=None):
    from ddb_core.curation.review import Filter

    ids = None if selection is None else np.asarray(selection, np.int64)
    return Filter(direction=direction or None, status=status or "all", sort=sort or "id", psi_range=parse_range(psi_range),
                  rho_range=parse_range(rho_range), method=method or None, ids=ids)


def direction_choices(index, names: list[str]) -> list[tuple[str, str]]:
    """DDB's directions (i → i', i ≠ i') first, SCGS's i → i after them."""
    dirs = [(f"{names[i]} → {names[j]}", f"{i}->{j}") for i, j in (index.directions if index is not None else [])]
    return sorted(dirs, key=lambda d: d[1].split("->")[0] == d[1].split("->")[1])


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
    for c, d in sorted((getattr(index, "P_default", {}) or {}).get("ddb", {}).items()):
        if d.get("provisional"):
            notes.append(f"P of {html.escape(names[int(c)])}: default from {d['n']} of {d['of']} scored candidates "
                         f"(it follows the scores until all are scored, then stays)")
    counts = index.counts(Psi, P)
    lines = ["| direction | all | kept | pruned | manual ✓/✗ |", "| --- | ---: | ---: | ---: | ---: |"]
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


def plotted(index, Psi: dict, P: dict, direction: Optional[str]):
    """What the ψ–ρ plot of ``direction`` (or all) shows: (the review model's cached view of the direction,
    Ψ line, P line)."""
    if direction:
        i, j = (int(x) for x in direction.split("->"))
        return index.view(direction), Psi.get(i), P.get(j)
    return index.view(None), None, None


def scatter_frame(index, Psi: dict, P: dict, direction: Optional[str]):
    """(candidate positions drawn, x and y in the plot's coordinates, its PlotFrame): what a selection drawn
    on the ψ–ρ plot maps back to (the same frame the plot was drawn with)."""
    view, psi_line, _rho_line = plotted(index, Psi, P, direction)
    frame = plots.psi_rho_frame(view["psi"], view["rho"], psi_line, view["rho_range"],
                                lpsi_range=view["lpsi_range"])
    return view["pos"], view["lpsi"], view["rho"], frame


def threshold_plots(index, Psi: dict, P: dict, direction: Optional[str]):
    """(scatter, ψ histogram, ρ histogram) of one direction (or all) at the given thresholds. ψ is drawn on
    a logit scale, where the values near 1 that most candidates have spread out."""
    if index is None or len(index) == 0:
        blank = np.full((120, 300, 3), 255, np.uint8)
        return blank, blank, blank
    view, psi_line, rho_line = plotted(index, Psi, P, direction)
    codes = status_codes(index, Psi, P)[view["pos"]]
    psi, rho = view["psi"], view["rho"]
    sc, _frame = plots.psi_rho_scatter(psi, rho, codes, psi_line, rho_line, view["rho_range"],
                                       title=f"{len(view['pos'])} candidates: green kept, red pruned, blue/purple manual; "
                                             f"drag to select, click to open", lpsi=view["lpsi"],
                                       lpsi_range=view["lpsi_range"], pixel_cache=view.get("pixels"),
                                       p_decimals=p_step(index)[1])
    hp = charts.histogram(view["psi_hist"], None if psi_line is None else float(plots.logit(psi_line)),
                         "ψ (logit scale): green kept (< Ψ), red pruned", keep_below=True,
                         shown=lambda v: 1 / (1 + np.exp(-v)))
    hr = charts.histogram(view["rho_hist"], rho_line, "ρ: green kept (> P), red pruned",
                         keep_below=False)
    return sc, hp, hr


def nice_step(span: float, divisions: int = 500) -> tuple[float, int]:
    """A round slider step (a power of ten) giving about ``divisions`` positions over ``span``, and its
    decimals: the values shown are as precise as the step, no more."""
    exponent = int(np.floor(np.log10(max(span, 1e-12) / divisions)))
    return float(10.0 ** exponent), max(0, -exponent)


def p_step(index) -> tuple[float, int]:
    """The P sliders' step and its decimals, from the spread of ρ (the plot writes P as the slider shows it)."""
    rho = index.rho[np.isfinite(index.rho)]
    lo, hi = (float(rho.min()), float(rho.max())) if rho.size else (-1.0, 1.0)
    margin = max(hi - lo, 1e-6) * 0.05
    return nice_step(hi - lo + 2 * margin)


_SENT: "OrderedDict[str, dict[str, bytes]]" = OrderedDict()  # browser session -> part -> digest of the image last sent
_SENT_SESSIONS = 1000


def sent_once(part: str, image, skip_same: bool):
    """``image`` for the screen's ``part``, or ``gr.skip()`` when ``skip_same`` and this browser session was last
    sent this very image there (an unchanged picture is not encoded, sent and drawn again: after a decision the
    histograms and an uncomputed map stay as they are). Only the redraw after an action skips; every other writer
    sends and records what it sent, so that a skip never leaves another picture on the screen."""
    import hashlib

    import gradio as gr

    from .state import session_of

    session = session_of()
    if not session or image is None:
        return image
    arr = np.ascontiguousarray(image)
    digest = hashlib.blake2b(arr.tobytes() + repr((arr.shape, arr.dtype.str)).encode(), digest_size=16).digest()
    sent = _SENT.setdefault(session, {})
    _SENT.move_to_end(session)
    while len(_SENT) > _SENT_SESSIONS:
        _SENT.popitem(last=False)
    if skip_same and sent.get(part) == digest:
        return gr.skip()
    sent[part] = digest if skip_same else None  # another writer: the next redraw sends again
    return image


def plots_at(index, Psi: dict, P: dict, direction, skip_same: bool = False):
    """The ψ–ρ plot, both histograms, and what the plot was drawn from (``plot_state``); with ``skip_same`` (the
    redraw after an action) a histogram this session already shows is not sent again."""
    sc, hp, hr = threshold_plots(index, Psi, P, direction)
    return (sc, sent_once("hist_psi", hp, skip_same), sent_once("hist_rho", hr, skip_same),
            plot_state(index, Psi, P, direction))


def plot_state(index, Psi: dict, P: dict, direction: Optional[str]) -> str:
    """What the ψ–ρ plot was drawn from, as JSON (a hidden element of the page, read by the browser tests and
    by anyone who wants the numbers behind the picture): the direction, the Ψ and P lines, and how many dots
    of each colour it has."""
    import json

    if index is None or len(index) == 0:
        return json.dumps({"direction": None, "Psi_line": None, "P_line": None, "dots": {}})
    view, psi_line, rho_line = plotted(index, Psi, P, direction)
    drawn = np.isfinite(view["psi"]) & np.isfinite(view["rho"])
    codes = status_codes(index, Psi, P)[view["pos"]][drawn]
    dots = {name: int((codes == c).sum()) for c, name in enumerate(("pruned", "kept", "accepted", "rejected"))}
    return json.dumps({"direction": direction, "Psi_line": psi_line, "P_line": rho_line, "dots": dots})


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
        # the thumbnail's file, not its pixels: Gradio sends a file as it is (pixels it encodes again at every redraw,
        # 48 of them per key press), and the browser keeps it cached; the page enlarges it (pixelated)
        items.append((str(thumbnail_file(index.project, paths[cid])), f"#{cid} {mark}"))
    return items, f"page {page + 1} of {pages} — {len(ids)} candidates"


def detail_panels(index, cid: Optional[int], names: list[str]):
    """The five panels and the info text of one candidate."""
    if index is None or cid is None:
        return None, None, None, None, None, "No candidate selected."
    d = index.detail(int(cid))
    src = load_image(d["source_path"])
    mask = load_image(d["mask_path"], src.shape[:2], mask=True) if d["mask_path"] else None
    res = load_image(d["result_path"])
    p1 = plots.enlarge(src, BIG)
    p2 = plots.enlarge(plots.overlay_mask(src, mask), BIG)
    p3 = plots.enlarge(res, BIG)
    if d["probs_source"] and d["probs_generated"]:
        p4 = charts.softmax_bars(d["probs_source"], d["probs_generated"], names, d["source_label"], d["Psi"])
    else:
        p4 = None
    if d["ig_path"]:
        ig = load_ig(d["ig_path"])
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
        f"- ψ = {fmt(d['psi'])} {sign(psi_ok)} (must be < Ψ = {fmt(d['Psi'])}; ψ: the ERM softmax of the source "
        f"class on the result)",
        f"- ρ = {fmt(d['rho'])} {sign(rho_ok)} (must be > P = {fmt(d['P'])}; ρ: Σ mask · IG toward the target); "
        f"IG convergence δ {fmt(d['ig_delta'])} (small: the IG map can be trusted)",
        f"- prompt “{html.escape(d['prompt'] or '')}”, seed {d['seed']}",
        f"- mask: {d['mask_backend']} (detection score {fmt(d['detection_score'])}); "
        f"model {str(prov.get('model_ref', prov.get('model', '—')))}",
        f"- source {src.shape[1]}×{src.shape[0]} px; scores by ERM model {d.get('score_model_id') or '—'}"
        + (" (**stale**: not the active model)" if d.get("stale") else ""),
        queue_line(d["queue"], len(index)),
    ] + ([f"- SCGS candidate: the mask is Grad-CAM++ of the ERM model with the **high** (spurious) region kept and the "
          f"rest repainted with the true class; SCGS does not prune, so it is kept unless pruning is turned on for SCGS"]
         if d["method"] == "scgs" else []))
    return p1, p2, p3, p4, p5, info


def queue_line(q: dict, n: int) -> str:
    """Where the candidate stands in the review queue, and why (ddb_core.curation.queue)."""
    why = "; ".join(html.escape(r) for r in q["reasons"]) or "no signal above 0.2"
    state = "decided, so at the back" if q["decided"] else f"#{q['rank']} of {n}"
    return (f"- <span id='queue-why'>review queue: {state}, priority {q['priority']:.2f} of {len(SIGNALS)} (the sum of "
            f"{len(SIGNALS)} signals in [0, 1]; “How to read this screen” names them) — {why}</span>")


def refilter(state, d, st, sort, fpsi, frho, method, selection, nav, keep_current=False, page=0):
    """The gallery and the shown candidate for the filter and the plot selection (the shown one kept
    when it still matches)."""
    index = state.index()
    names = state.class_names()
    ids = [int(i) for i in index.query(current_filter(d, st, sort, fpsi, frho, method, selection))]
    current = None
    if keep_current and nav.get("ids") and nav["pos"] < len(nav["ids"]):
        current = nav["ids"][nav["pos"]]
    pos = ids.index(current) if current in ids else 0
    gallery, page_info = gallery_items(index, np.array(ids, np.int64), page)
    return (counts_markdown(index, index.Psi, index.P, names), gallery, page_info, {"ids": Ids(ids), "pos": pos, "page": page},
            *detail_panels(index, ids[pos] if ids else None, names))
