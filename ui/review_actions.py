"""What a person does on the Review screen: move between candidates and gallery pages, accept /
reject / back to automatic, undo the latest action (one candidate or a whole batch), act on a
filter with a bound confirmation, and repaint a candidate with a mask drawn by hand.

Every decision is one action of the project's audit log (``ddb_core.curation.decisions``), recorded with the
signed-in user's name.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace
from typing import Optional

import gradio as gr
import numpy as np

from ddb_core import api
from ddb_core.project.errors import DDBError

from . import plots
from .review_view import BIG, PAGE, Ids, counts_markdown, detail_panels, gallery_items, refilter
from .state import AFTER, ORDERED, AppState, load_image, reviewer, safe, session_of, user_of


def wire(state: AppState, v: SimpleNamespace) -> None:
    nav_detail = [v.nav, *v.detail]
    v.page_prev.click(partial(change_page, state, -1), [v.nav], [v.gallery, v.page_info, v.nav], show_progress="hidden", **ORDERED)
    v.page_next.click(partial(change_page, state, +1), [v.nav], [v.gallery, v.page_info, v.nav], show_progress="hidden",
                      **ORDERED)

    def on_pick(nav: dict, evt: gr.SelectData):  # Gradio passes the selection to a parameter annotated so
        return pick(state, nav, evt)

    v.gallery.select(on_pick, [v.nav], nav_detail, show_progress="hidden", **ORDERED)
    v.prev.click(partial(move, state, -1), [v.nav], nav_detail, show_progress="hidden", api_name="previous", **ORDERED)
    v.next.click(partial(move, state, +1), [v.nav], nav_detail, show_progress="hidden", api_name="next", **ORDERED)
    v.queue_next.click(safe(partial(next_in_queue, state)), v.filters, [v.f_sort, *v.refiltered], show_progress="hidden",
                       api_name="next_in_queue", **ORDERED).then(*v.after, **AFTER)
    def decided(decision):
        """A decision and the screen drawn after it, in one event: a reviewer's key press is one round trip (the
        redraw chained after it cost another, about as long as the decision itself)."""
        def run(nav: dict, direction=None, colour_by=None):
            out = decide(state, decision, nav)
            return (*out, *v.redraw(direction, colour_by, out[0]))
        return run

    for btn, decision in ((v.accept, "accept"), (v.reject, "reject"), (v.auto, None)):
        btn.click(safe(decided(decision)), [v.nav, v.plot_dir, v.colour_by], [*nav_detail, v.counts, *v.after[2]],
                  show_progress="hidden", api_name=f"decide_{decision or 'auto'}", **ORDERED)
    v.undo.click(safe(partial(undo, state)), [v.nav], [*nav_detail, v.counts], show_progress="hidden",
                 api_name="undo", **ORDERED).then(*v.after, **AFTER)
    v.edit_btn.click(safe(partial(load_editor, state)), [v.nav], [v.editor])
    v.regen_btn.click(safe(partial(regenerate, state)), [v.nav, v.editor], [*nav_detail, v.counts, v.regen_msg],
                      api_name="regenerate").then(*v.after, **AFTER)
    v.audit_box.expand(safe(partial(audit_table, state)), [], [v.audit_md], show_progress="hidden")
    v.audit_ask.click(safe(partial(audit_ask, state)), [v.audit_id], [v.audit_msg, v.audit_confirm])
    v.audit_id.change(lambda: ("", gr.Button(visible=False)), [], [v.audit_msg, v.audit_confirm], show_progress="hidden")
    v.audit_confirm.click(safe(partial(audit_undo, state)), [v.audit_id, v.nav],
                          [v.audit_msg, v.audit_confirm, v.audit_md, *nav_detail, v.counts], api_name="undo_action",
                          **ORDERED).then(*v.after, **AFTER)
    batch_out = [v.batch_msg, v.batch_confirm, v.pending_batch]
    v.batch_btn.click(partial(batch_ask, state), [v.batch_action, v.nav, v.f_dir, v.f_status, v.f_sort, v.f_psi, v.f_rho, v.f_method,
                                  v.selection], batch_out, api_name="batch_ask")
    for comp in (v.batch_action, v.f_dir, v.f_status, v.f_sort, v.f_psi, v.f_rho, v.f_method):
        comp.change(batch_cancel, [v.pending_batch], batch_out, show_progress="hidden")
    v.batch_confirm.click(safe(partial(batch_confirm, state)), [v.pending_batch], [*batch_out[:2], v.counts, v.pending_batch],
                          api_name="batch_confirm").then(safe(partial(refilter, state, keep_current=True)), v.filters,
                                                         v.refiltered, trigger_mode="always_last").then(*v.after, **AFTER)


def _counts(state: AppState, index) -> str:
    return counts_markdown(index, index.Psi, index.P, state.class_names()) if index is not None else ""


# -- moving around -------------------------------------------------------------------------------

def change_page(state: AppState, delta: int, nav: dict):
    ids = np.array(nav.get("ids", []), np.int64)
    page = min(max(0, nav.get("page", 0) + delta), max(1, -(-len(ids) // PAGE)) - 1)
    gallery, page_info = gallery_items(state.index(), ids, page)
    return gallery, page_info, {**nav, "page": page}


def pick(state: AppState, nav: dict, evt: gr.SelectData):
    pos = nav.get("page", 0) * PAGE + int(evt.index)
    nav = {**nav, "pos": pos}
    cid = nav["ids"][pos] if pos < len(nav["ids"]) else None
    return nav, *detail_panels(state.index(), cid, state.class_names())


def move(state: AppState, delta: int, nav: dict):
    ids = nav.get("ids", [])
    if not ids:
        return nav, *detail_panels(state.index(), None, state.class_names())
    pos = min(max(0, nav.get("pos", 0) + delta), len(ids) - 1)
    return {**nav, "pos": pos}, *detail_panels(state.index(), ids[pos], state.class_names())


def next_in_queue(state: AppState, d, st, sort, fpsi, frho, method, selection, nav):
    """The gallery in queue order (the current filter kept) and, shown, the next candidate in it that no one has
    decided: the first one on the first press, then the next after the one shown (each press moves forward)."""
    from .review_view import current_filter

    index = state.index()
    names = state.class_names()
    shown = nav["ids"][nav["pos"]] if nav.get("ids") and nav.get("pos", 0) < len(nav["ids"]) else None
    found = index.query(current_filter(d, st, "queue", fpsi, frho, method, selection))
    at, ok = index.pos.lookup(found)
    open_ = ok & (index.manual[at] == 0) & (found != (shown if shown is not None else -1))
    ids = [int(i) for i in found]
    if not open_.any():
        *panels, info = detail_panels(index, shown, names)
        note = ("<span id='queue-msg'>**The queue is done**: every candidate of this filter has a decision"
                + (" (or is the one shown)" if shown is not None else "") + ".</span>\n\n")
        pos = ids.index(shown) if shown in ids else 0
        gallery, page_info = gallery_items(index, found, pos // PAGE)
        return ("queue", counts_markdown(index, index.Psi, index.P, names), gallery, page_info,
                {"ids": Ids(ids), "pos": pos, "page": pos // PAGE}, *panels, note + (info or ""))
    start = ids.index(shown) + 1 if shown in ids and sort == "queue" else 0  # the first press: from the top
    ahead = np.flatnonzero(open_[start:])
    pos = start + int(ahead[0]) if ahead.size else int(np.argmax(open_))  # past the end: from the top again
    gallery, page_info = gallery_items(index, found, pos // PAGE)
    return ("queue", counts_markdown(index, index.Psi, index.P, names), gallery, page_info,
            {"ids": Ids(ids), "pos": pos, "page": pos // PAGE}, *detail_panels(index, ids[pos], names))


# -- decisions -------------------------------------------------------------------------------------

def decide(state: AppState, decision, nav: dict):
    """accept / reject / None (back to automatic) on the shown candidate, then the next one."""
    index = state.index()
    ids = nav.get("ids", [])
    if not ids:
        return nav, *detail_panels(index, None, state.class_names()), counts_markdown(index, {}, {}, state.class_names())
    cid = ids[nav.get("pos", 0)]
    other = changed_elsewhere(state, cid)
    index.decide([cid], decision, who=user_of(), session=session_of())
    pos = min(nav.get("pos", 0) + 1, len(ids) - 1)  # auto-advance
    *panels, info = detail_panels(index, ids[pos], state.class_names())
    if other:
        word = {"accept": "accept", "reject": "reject", None: "back to automatic"}
        info = (f"<span id='changed-elsewhere'>**Candidate {cid} had been changed elsewhere** since your screen showed "
                f"it ({other['who']}: {word.get(other['new'], other['new'])}, via {other['source']}); your "
                f"{word[decision]} replaced it (undo with u).</span>\n\n" + (info or ""))
    return {**nav, "pos": pos}, *panels, info, _counts(state, index)


def changed_elsewhere(state: AppState, cid: int) -> Optional[dict]:
    """The latest change of candidate ``cid``'s decision made elsewhere (another tab, user or ``ddb``) since this
    session's screen was last drawn, if any."""
    shown = state.shown.get(session_of(), {}).get("version")
    if shown is None:
        return None
    row = state.project().db.execute(
        "select a.who, a.source, au.new from audit au join actions a on a.id = au.action_id where au.candidate_id = ? "
        "and au.action_id > ? and coalesce(json_extract(a.detail, '$.session'), '') != ? order by au.id desc limit 1",
        [int(cid), shown[1], session_of()]).fetchone()
    return {"who": row[0], "source": row[1], "new": row[2]} if row else None


def undo(state: AppState, nav: dict):
    """Revert this reviewer's latest decision action — one candidate, or a whole batch — and show its first
    candidate, saying what was undone. This reviewer: the signed-in user, or without sign-in this browser session;
    another reviewer's actions are never undone from here."""
    index = state.index()
    res = index.undo_action(who=user_of(), session=session_of(), mine=reviewer()) if index is not None else None
    if res is None or not res.candidate_ids:  # the shown candidate stays, and the text says why nothing changed
        ids = nav.get("ids", [])
        shown = ids[nav.get("pos", 0)] if ids and nav.get("pos", 0) < len(ids) else None
        *panels, info = detail_panels(index, shown, state.class_names())
        note = ("<span id='undo-msg'>**Nothing to undo**: none of your decisions is left to revert (another "
                "reviewer's are theirs to undo).</span>\n\n") if res is None else (
            f"<span id='undo-msg'>**Not undone**: your latest decision (candidate "
            f"{', '.join(map(str, res.skipped[:5]))}) was changed since by a later action, which stands.</span>\n\n")
        return nav, *panels, note + (info or ""), _counts(state, index) if index is not None else ""
    cid = res.candidate_ids[0]
    ids = nav.get("ids", [])
    if cid in ids:
        nav = {**nav, "pos": ids.index(cid)}
    what = {"accept": "acceptance", "reject": "rejection", None: "return to automatic"}[res.decision]
    n = len(res.candidate_ids)
    said = (f"your {what} of candidate {cid}" if n == 1 else f"your batch {what} of {n} candidates (first: {cid})")
    *panels, info = detail_panels(index, cid, state.class_names())
    if res.skipped:
        said += f"; {len(res.skipped)} changed since by a later action stay as they are"
    note = f"<span id='undo-msg'>**Undone**: {said}.</span>\n\n"
    return nav, *panels, note + (info or ""), _counts(state, index)


def batch_ask(state: AppState, action, nav, d, st, sort, fpsi, frho, method, selection=None):
    """Count the filter's candidates and bind the batch to exactly them and this action: Confirm applies it
    to these ids, whatever the filter or the action shows by then."""
    ids = [int(i) for i in nav.get("ids", [])]
    word = {"accept": "accept", "reject": "reject", "auto": "set back to automatic"}[action]
    if not ids:
        return "No candidate in the current filter.", gr.Button(visible=False), None
    names = state.class_names()
    if d and "->" in d:
        i, j = (int(x) for x in d.split("->"))
        d = f"{names[i]} → {names[j]}" if max(i, j) < len(names) else d
    described = {"direction": d or "all", "decision": st or "all", "method": method or "all", "psi": fpsi or "",
                 "rho": frho or "", "selection": f"{len(selection)} drawn on a plot" if selection is not None else ""}
    pending = {"ids": Ids(ids), "action": action, "filter": described}
    shown = ", ".join(f"{k} {val}" for k, val in described.items() if val)
    return (f"This will **{word} {len(ids)} candidates** (every candidate of the current filter: {shown}). Press "
            f"Confirm; changing the filter or the action cancels this.", gr.Button(visible=True), pending)


def batch_cancel(pending):
    if pending:
        return "The pending batch action was cancelled (the filter or the action changed).", gr.Button(visible=False), None
    return gr.skip(), gr.Button(visible=False), None


def batch_confirm(state: AppState, pending):
    if not pending:
        return "Nothing to confirm: press “Apply to the filter…” first.", gr.Button(visible=False), gr.skip(), None
    index = state.index()
    action = pending["action"]
    changed = index.decide(pending["ids"], None if action == "auto" else action, who=user_of(), session=session_of(),
                           detail={"filter": pending["filter"], "batch": len(pending["ids"])})
    return (f"{changed} decisions changed ({len(pending['ids'])} candidates in the batch); undo (u) reverts the whole "
            f"batch.", gr.Button(visible=False), _counts(state, index), None)


# -- the audit log: undo a chosen action ------------------------------------------------------------

def audit_table(state: AppState, limit: int = 15) -> str:
    """The latest actions of the project, newest first: who did what, from where, and whether it was undone."""
    from ddb_core.curation.decisions import audit_log

    if not state.exists():
        return ""
    rows = ["| # | when | who | from | what | undone |", "| ---: | --- | --- | --- | --- | --- |"]
    word = {"accept": "accept", "reject": "reject", None: "back to automatic"}
    for a in audit_log(state.project(), limit):
        d = a["detail"]
        if a["kind"] == "decision":
            what = f"{word.get(d.get('decision'), d.get('decision'))} {a['n']} candidate{'s' if a['n'] != 1 else ''}" + (
                f" ({', '.join(map(str, d.get('candidates', [])[:3]))}{'…' if a['n'] > 3 else ''})")
        elif a["kind"] == "undo":
            what = f"undo of #{a['undoes']}"
        else:
            what = a["kind"].replace("-", " ")
        rows.append(f"| {a['id']} | {a['at']} | {a['who']} | {a['source']} | {what} | {'yes' if a['undone'] else ''} |")
    return "\n".join(rows)


def audit_ask(state: AppState, action_id):
    if action_id is None:
        return "Type the number of a decision from the list first.", gr.Button(visible=False)
    row = state.project().db.execute("select kind, who, n from actions where id = ?", [int(action_id)]).fetchone()
    if row is None or row[0] != "decision":
        return f"Action #{int(action_id)} is not a decision (only decisions can be undone here).", gr.Button(visible=False)
    return (f"Undo action #{int(action_id)} by **{row[1]}** ({row[2]} candidate{'s' if row[2] != 1 else ''})? Press "
            f"Confirm.", gr.Button(visible=True))


def audit_undo(state: AppState, action_id, nav: dict):
    index = state.index()
    res = index.undo_action(who=user_of(), session=session_of(), action_id=int(action_id))
    ids = nav.get("ids", [])
    cid = res.candidate_ids[0] if res.candidate_ids else (ids[nav.get("pos", 0)] if ids else None)
    if cid in ids:
        nav = {**nav, "pos": ids.index(cid)}
    msg = (f"Action #{int(action_id)} by {res.who} undone: {len(res.candidate_ids)} candidate(s) restored"
           + (f"; {len(res.skipped)} changed since by a later action stay as they are" if res.skipped else "") + ".")
    return (msg, gr.Button(visible=False), audit_table(state), nav, *detail_panels(index, cid, state.class_names()),
            _counts(state, index))


# -- the mask editor ---------------------------------------------------------------------------------

def load_editor(state: AppState, nav: dict):
    """The shown candidate's source (aspect ratio kept) with its mask as a red layer to paint on."""
    from PIL import Image

    ids = nav.get("ids", [])
    if not ids:
        return None
    d = state.index().detail(ids[nav.get("pos", 0)])
    src = load_image(d["source_path"])
    mask = load_image(d["mask_path"], src.shape[:2], mask=True) if d["mask_path"] else np.zeros(src.shape[:2], np.uint8)
    big = plots.enlarge(src, BIG)
    bh, bw = big.shape[:2]
    m = np.asarray(Image.fromarray(mask).resize((bw, bh), Image.NEAREST))
    layer = np.zeros((bh, bw, 4), np.uint8)
    layer[..., 0], layer[..., 1], layer[..., 2] = 255, 48, 48
    layer[..., 3] = np.where(m >= 128, 200, 0)
    return {"background": np.dstack([big, np.full((bh, bw), 255, np.uint8)]), "layers": [layer], "composite": None}


def regenerate(state: AppState, nav: dict, value):
    """A new candidate from the shown one's source, prompt and seed, with the painted mask (at the source's size)."""
    from PIL import Image

    index = state.index()
    ids = list(nav.get("ids", []))
    if not ids or not value or not value.get("layers"):
        raise DDBError("Load the current mask first, then paint on it.")
    cid = ids[nav.get("pos", 0)]
    h, w = load_image(index.detail(cid)["source_path"]).shape[:2]
    alpha = np.zeros(value["layers"][0].shape[:2], np.uint8)
    for layer in value["layers"]:
        if layer is not None and layer.ndim == 3 and layer.shape[2] == 4 and layer.shape[:2] == alpha.shape:
            alpha = np.maximum(alpha, layer[..., 3])
    mask = np.asarray(Image.fromarray(np.where(alpha > 0, 255, 0).astype(np.uint8)).resize((w, h), Image.BILINEAR))
    mask = np.where(mask >= 128, 255, 0).astype(np.uint8)
    new_id = state.with_model("regenerate", lambda: api.regenerate_candidate(index.project, cid, mask,
                                                                             inpainter=state.inpainter()))
    index = state.index(reload=True)
    pos = nav.get("pos", 0) + 1
    ids = Ids([*ids[:pos], new_id, *ids[pos:]])
    return ({**nav, "ids": ids, "pos": pos}, *detail_panels(index, new_id, state.class_names()), _counts(state, index),
            f"New candidate #{new_id} from #{cid} (scored; shown above).")
