"""The generation stages as resumable jobs: masks, textual inversion, candidates, scores.

Consumes a project with a selection (``selection.select``), a masker and an inpainter; produces
rows of ``masks``, ``tokens`` and ``candidates`` and their files under the project folder:

    masks/<backend>-<params hash>/<sample id>.png       255 = repaint
    tokens/<token>.safetensors                         diffusers textual-inversion format
    candidates/<i>-<j>/<candidate key>.png             the generated image x'
    thumbs/candidates/<i>-<j>/<candidate key>.jpg      its gallery thumbnail (``thumbnails``)
    ig/<candidate id>.npz                              the IG map (channels summed), compact (``igmaps``)

Every unit is written atomically: files first (temporary name, then rename), then its DB rows in
one transaction, so a killed job leaves no half-written row and at most the batch in flight is
lost. Re-running a job skips what is finished (candidates by their unique key). Jobs can be
cancelled between batches and report progress (done/total, rate, ETA).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ..project.errors import ConfigError, ProjectError
from ..data.imaging import load_mask, load_rgb
from ..method.inpainting import InpaintConfig, Inpainter, prompt_for
from ..method.inversion import InversionConfig, class_token, learn_token, save_embedding
from ..method.masking import Masker, MaskResult, params_hash
from ..project.progress import CancelToken, ProgressFn, ProgressTracker, check_cancel
from ..method.selection import selected
from ..project.store import Project, file_sha256, now
from ..data.thumbnails import write_thumbnail
from ..project.device import IG_DTYPES, ig_half
from .engines import EngineConfig
from .work import inpaint_batch, score_batch


MAX_BOXES_KEPT = 10  # detection boxes stored with a mask (best first)


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)


def _rel(project: Project, path: Path) -> str:
    return os.path.relpath(path, project.root)


def directions(project: Project, pairs: Optional[Sequence[tuple[int, int]]] = None,
               same_class: bool = False) -> list[tuple[int, int]]:
    """The generation directions i -> i': given pairs, or both directions of a binary dataset.
    ``same_class`` (SCGS) allows and defaults to i -> i: the image keeps its class."""
    n = len(project.class_names)
    if same_class and not pairs:
        return [(i, i) for i in range(n)]
    if pairs:
        for i, j in pairs:
            if not (0 <= i < n and 0 <= j < n) or (i == j and not same_class):
                raise ConfigError(f"direction {i}->{j} is not a pair of two different classes in 0..{n - 1}")
        return list(pairs)
    if n != 2:
        raise ConfigError(f"the dataset has {n} classes: choose the directions (pairs i->j) to generate")
    return [(0, 1), (1, 0)]


def object_word(project: Project, label: int) -> str:
    prompts = project.get_meta("object_prompt") or {}
    name = project.class_names[label]
    return prompts.get(name, name)


# ---------------------------------------------------------------------------------------------
# masks


def compute_masks(project: Project, masker: Masker, sample_rows: list[dict], *, batch_size: int = 16,
                  on_progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
                  engine: Optional[EngineConfig] = None) -> dict[int, dict]:
    """Mask rows (sample id -> row) for ``sample_rows``, computing and storing the missing ones.

    The database changes only when every mask is computed, in one transaction: until then each finished
    batch is kept beside its mask files (``staged.jsonl``), so a cancelled, failed or killed run changes
    nothing in the database and the same command resumes from the staged batches. A ``RemoteMasker`` (its name,
    options and parameters; ``engine`` Ray) is built by the Ray workers, which run the same batches; a masker loaded
    here runs here. Either way this process alone writes the files, the staged lines and the rows."""
    from ..method.masking import RemoteMasker

    engine = engine or EngineConfig()
    if isinstance(masker, RemoteMasker) and engine.kind != "ray":
        raise ConfigError(f"the {masker.name} masker of this run was left for the Ray workers; use the Ray engine or "
                          "load the masker here")
    params = masker.params()
    ph = params_hash(params)
    folder = project.root / "masks" / f"{masker.name}-{ph}"
    staged_file = folder / "staged.jsonl"
    have = {r["sample_id"]: r for r in project.db.query(
        "select * from masks where backend = ? and params_hash = ?", [masker.name, ph])}
    staged: dict[int, dict] = {}
    if staged_file.is_file():
        for line in staged_file.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # the last line of a killed run may be cut short: its batch is computed again
            if r["sample_id"] not in have and (r["path"] is None or (project.root / r["path"]).is_file()):
                staged[r["sample_id"]] = r
    todo = [s for s in sample_rows if s["id"] not in have and s["id"] not in staged]
    tracker = ProgressTracker(f"mask ({masker.name})", len(sample_rows), on_progress, len(sample_rows) - len(todo))
    # each batch holds one class's images (one prompt per masker call), as it always has: a detector pads a batch's
    # images together, so a mask does not depend on another class's images
    batches = []
    for label in sorted({s["label"] for s in todo}):
        of_class = [s for s in todo if s["label"] == label]
        word = object_word(project, label)
        batches += [[{"sample": dict(s), "image_path": str(project.dataset_path(s["path"]).resolve()), "word": word}
                     for s in of_class[start:start + batch_size]] for start in range(0, len(of_class), batch_size)]

    def store(batch: list[dict], results: list[MaskResult]) -> None:
        rows = []
        for it, res in zip(batch, results):
            s, path = it["sample"], None
            if res.status == "ok":
                path = folder / f"{s['id']}.png"
                _write_png(path, res.mask)
            rows.append({"sample_id": s["id"], "backend": masker.name, "params_hash": ph,
                         # the best boxes (a detector with a low threshold returns hundreds; each candidate's
                         # provenance copies these), and how many there were
                         "params": json.dumps({**params, "boxes": res.boxes[:MAX_BOXES_KEPT], "n_boxes": len(res.boxes),
                                               "detail": res.detail}),
                         "status": res.status, "score": res.score, "area": res.area,
                         "path": _rel(project, path) if path else None, "created_at": now()})
        folder.mkdir(parents=True, exist_ok=True)
        with open(staged_file, "a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
        staged.update((r["sample_id"], r) for r in rows)
        tracker.update(tracker.done + len(batch), f"{sum(r['status'] == 'ok' for r in rows)}/{len(rows)} found")

    if not isinstance(masker, RemoteMasker):  # a masker loaded here runs here, whatever the engine
        from .work import mask_batch

        for batch in batches:
            check_cancel(cancel, "between mask batches")
            store(batch, mask_batch(masker, batch))
    elif batches:
        from .engines import mask_on_ray

        for k, results in mask_on_ray(engine, (masker.name, masker.options), project.root, batches, cancel,
                                      device=masker.device):
            store(batches[k], results)
    if staged:
        with project.write():  # every staged mask at once
            project.db["masks"].insert_all(list(staged.values()))
        staged_file.unlink(missing_ok=True)
        have = {r["sample_id"]: r for r in project.db.query(
            "select * from masks where backend = ? and params_hash = ?", [masker.name, ph])}
    return {s["id"]: have[s["id"]] for s in sample_rows}


def compute_selected_masks(project: Project, masker: Masker, labels: Optional[Sequence[int]] = None, *,
                           on_progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
                           engine: Optional[EngineConfig] = None) -> dict[str, int]:
    """Masks of the selected source images (D_i) of ``labels`` (default: every class); counts by status. The
    classes' images are masked as one run (on Ray, one pool of workers for them all)."""
    labels = range(len(project.class_names)) if labels is None else labels
    counts = {"ok": 0, "no_detection": 0}
    rows = [r for label in labels for r in selected(project, "source", label)]
    for m in compute_masks(project, masker, rows, on_progress=on_progress, cancel=cancel, engine=engine).values():
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    return counts


def _review_arrays_ready(project: Project) -> None:
    """As a job that changed candidates ends: the review's kept arrays and sort orders brought up to date, so
    that the review screen's next opening finds them ready."""
    # upward: the pipeline's one call into curation, so that a review after a long job opens at once
    from ..curation.review import keep_arrays

    keep_arrays(project)


def refind_objects(project: Project, masker, *, batch_size: int = 16, on_progress: Optional[ProgressFn] = None,
                   cancel: Optional[CancelToken] = None) -> int:
    """The object found again in each generated image whose mask came from langsam and that has none yet: the
    detector (``masker``, a ``LangSAMMasker``) run on the image with the target class's object word, its best box
    inside the mask's box (``LangSAMMasker.refind``). Stored per batch (a killed run resumes with the rest); returns
    how many were looked at."""

    if not hasattr(masker, "refind"):
        raise ConfigError(f"finding the object again needs the langsam masker (its detector); this one is {masker.name}")
    todo = list(project.db.query(
        "select c.id, c.target_label, c.path, m.path as mask_path from candidates c join masks m on m.id = c.mask_id "
        "left join refinds r on r.candidate_id = c.id where m.backend = 'langsam' and r.candidate_id is null "
        "order by c.target_label, c.id"))
    total = project.db.execute("select count(*) from candidates c join masks m on m.id = c.mask_id "
                               "where m.backend = 'langsam'").fetchone()[0]
    tracker = ProgressTracker("find the object again", total, on_progress, total - len(todo))
    for start in range(0, len(todo), batch_size):
        check_cancel(cancel, "between batches")
        batch = todo[start:start + batch_size]
        rows = []
        for label in sorted({r["target_label"] for r in batch}):
            part = [r for r in batch if r["target_label"] == label]
            images = [load_rgb(project.project_path(r["path"])) for r in part]
            masks = [load_mask(project.project_path(r["mask_path"]), im.shape[:2]) for r, im in zip(part, images)]
            for r, (score, n) in zip(part, masker.refind(images, masks, object_word(project, label))):
                rows.append({"candidate_id": r["id"], "score": float(score), "n_boxes": int(n), "created_at": now()})
        with project.write():
            project.db["refinds"].insert_all(rows, replace=True)
            project.db.execute("update candidate_version set v = v + 1")  # the review model reads them again
        tracker.update(tracker.done + len(batch), f"{sum(r['score'] > 0 for r in rows)}/{len(rows)} found")
    if todo:
        _review_arrays_ready(project)
    return len(todo)


# ---------------------------------------------------------------------------------------------
# textual inversion


def inversion_masker(masker: Masker) -> Masker:
    """The masker whose masks textual inversion counts its loss in: the object itself, not the region to repaint.
    A provided masker that repaints the object's box, or its silhouette grown, gives the silhouette here: in a box
    most of the loss would fall on the background around the object, and the token would learn that background
    (measured on the demo: `bench inpainter --ti-shape`, docs/benchmarks.md)."""
    import copy

    from ..method.masking import ProvidedMasker

    if isinstance(masker, ProvidedMasker) and (masker.shape != "mask" or masker.dilate_radius):
        return ProvidedMasker(masker.resolve)
    if getattr(masker, "dilate_radius", 0):  # langsam, grabcut, gradcam grown by the user: the object as found
        tight = copy.copy(masker)
        tight.dilate_radius = 0
        return tight
    return masker


def invert_classes(project: Project, inpainter: Inpainter, labels: Sequence[int], cfg: InversionConfig = InversionConfig(),
                   on_progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
                   masker: Optional[Masker] = None) -> dict[int, int]:
    """Learn and store one token per class in ``labels``; returns class -> tokens row id.

    With ``cfg.region`` "mask" (the default) the inversion images are masked first by ``masker`` (the project's
    masker, as for the source images, but the object's own silhouette: ``inversion_masker``; stored like every
    mask) and the loss is counted inside each object's mask;
    images where the masker finds nothing are left out, and the count is recorded with the token."""
    if cfg.region == "mask" and masker is None:
        raise ProjectError("textual inversion inside the object's mask needs the project's masker (or region 'image')")
    out = {}
    for label in labels:
        rows = selected(project, "inversion", label)
        if not rows:
            raise ProjectError(f"class {label} has no inversion images selected (ti_size 0?); generation will use the plain prompt")
        masks = repaint_masks = None
        if cfg.region == "mask" or inpainter.crop_scale:
            if masker is None:
                raise ProjectError(f"{inpainter.model_ref} repaints a window around the mask: its tokens are learned in "
                                   "the windows around each inversion image's object, which needs the project's masker")
            tight = inversion_masker(masker)
            found = compute_masks(project, tight, rows, on_progress=on_progress, cancel=cancel)
            # what generation repaints (the box, a grown silhouette): the UNet is given it during the inversion
            repaint = found if tight is masker else compute_masks(project, masker, rows, on_progress=on_progress,
                                                                  cancel=cancel)
            rows = [r for r in rows if found[r["id"]]["status"] == "ok" and repaint[r["id"]]["status"] == "ok"]
            if not rows:
                raise ProjectError(f"class {label}: the masker ({masker.name}) found no object in any of its inversion "
                                   "images; choose another masker or region 'image'")
            masks = [load_mask(project.project_path(found[r["id"]]["path"])) for r in rows]
            repaint_masks = [load_mask(project.project_path(repaint[r["id"]]["path"])) for r in rows]
        images = [load_rgb(project.dataset_path(r["path"])) for r in rows]
        token = class_token(project.class_names[label])
        res = learn_token(inpainter.pipe, images, token, object_word(project, label),
                          init_word=object_word(project, label), cfg=cfg, on_progress=on_progress, cancel=cancel,
                          masks=masks, crop_scale=inpainter.crop_scale,
                          repaint_masks=repaint_masks if cfg.region == "mask" else None)
        path = save_embedding(project.root / "tokens" / f"{token.strip('<>')}-{int(time.time())}.safetensors", token, res.embedding)
        inpainter.tokens[token] = res.embedding
        out[label] = project.db["tokens"].insert({
            "label": label, "token": token, "path": _rel(project, path), "sha256": file_sha256(path),
            "model_ref": inpainter.model_ref,
            "config": json.dumps({**asdict(cfg), "n_images": len(images), "model_sha256": inpainter.model_sha}),
            "loss_curve": json.dumps([round(x, 5) for x in res.loss_curve]), "created_at": now()}).last_pk
    return out


def latest_token(project: Project, label: int, model_sha: Optional[str] = None) -> Optional[dict]:
    """The latest token of class ``label`` (learned on the model of ``model_sha`` when given)."""
    for row in project.db.query("select * from tokens where label = ? order by id desc", [label]):
        if model_sha is None or json.loads(row["config"] or "{}").get("model_sha256") == model_sha:
            return row
    return None


# ---------------------------------------------------------------------------------------------
# candidates


@dataclass(frozen=True)
class GenerationConfig:
    seed: int = 0  # candidate seed = seed * 1_000_003 + source sample id * 31 + target class (+ variant * 7919)
    use_tokens: bool = True  # prompt with the target class's learned token when one exists
    method: str = "ddb"  # ddb | scgs
    purpose: str = "source"  # which selection supplies the source images (scgs: "scgs")
    variants: int = 1  # candidates per source image (different seeds)

    def __post_init__(self) -> None:
        if self.variants < 1:
            raise ConfigError(f"variants must be >= 1, got {self.variants}")

    def candidate_seed(self, source_id: int, target: int, variant: int = 0) -> int:
        return (self.seed * 1_000_003 + source_id * 31 + target + variant * 7919) % (2**31 - 1)


def candidate_key(method: str, source_id: int, i: int, j: int, mask: str, variant: int = 0) -> str:
    """Unique job key of a candidate: a different mask (backend or parameters) is a different candidate."""
    return f"{method}:{source_id}:{i}->{j}:{mask}:{variant}"


def generate(project: Project, inpainter: Optional[Inpainter], masker: Masker,
             pairs: Optional[Sequence[tuple[int, int]]] = None, cfg: GenerationConfig = GenerationConfig(),
             inpaint: InpaintConfig = InpaintConfig(), on_progress: Optional[ProgressFn] = None,
             cancel: Optional[CancelToken] = None, engine: Optional[EngineConfig] = None) -> dict[str, dict[str, int]]:
    """Generate the candidates of each direction; skips finished ones. Returns counts per direction.

    ``engine`` (default local) says where the inpainting runs; with the Ray engine ``inpainter`` may be
    None (the workers load ``inpaint.model``). Either way this process writes every file and row."""
    from ..method.inpainting import model_hash, resolve_model_ref

    engine = engine or EngineConfig()
    if engine.kind == "local" and inpainter is None:
        raise ConfigError("the local engine needs a loaded inpainter")
    if inpainter is not None:
        model_ref, model_sha = inpainter.model_ref, inpainter.model_sha
    else:
        model_ref = str(resolve_model_ref(str(inpaint.model)))
        model_sha = model_hash(model_ref)
    summary, plans = {}, []
    erm_id = project.active_erm_id
    # 1. Per direction: masks, token, prompt and the pending work, cut into batches.
    for i, j in directions(project, pairs, same_class=cfg.method == "scgs"):
        sources = selected(project, cfg.purpose, i)
        if not sources:
            if cfg.method == "scgs":
                summary[f"{i}->{j}"] = {"sources": 0, "no_detection": 0, "candidates": 0}
                continue
            raise ProjectError(f"no source images selected for class {i}: run `ddb select` first")
        masks = compute_masks(project, masker, sources, on_progress=on_progress, cancel=cancel, engine=engine)
        token_row = latest_token(project, j) if cfg.use_tokens else None
        token = None
        if token_row:
            token = token_row["token"]
            learned_on = json.loads(token_row["config"] or "{}").get("model_sha256")
            # (a pipeline built in memory has no identity to compare: its sha is "mem:…")
            in_memory = learned_on and (learned_on.startswith("mem:") or model_sha.startswith("mem:"))
            if learned_on and learned_on != model_sha and not in_memory:
                raise ProjectError(f"the token {token} (tokens row {token_row['id']}) was learned on another inpainting "
                                   f"model than {model_ref}: a token means nothing to another model. Learn it again "
                                   f"with this one (ddb invert), or generate without tokens")
            if inpainter is not None and token not in inpainter.tokens:
                inpainter.load_token(project.project_path(token_row["path"]), token)
        prompt = prompt_for(inpaint.template, object_word(project, j), token)
        done_keys = {r["key"] for r in project.db.query(
            "select key from candidates where method = ? and source_label = ? and target_label = ?", [cfg.method, i, j])}
        mask_tag = f"{masker.name}-{params_hash(masker.params())}"
        todo = [(s, v) for s in sources for v in range(cfg.variants) if masks[s["id"]]["status"] == "ok"
                and candidate_key(cfg.method, s["id"], i, j, mask_tag, v) not in done_keys]
        n_ok = sum(masks[s["id"]]["status"] == "ok" for s in sources) * cfg.variants
        plan = {"i": i, "j": j, "masks": masks, "token": token, "token_row": token_row, "prompt": prompt,
                "mask_tag": mask_tag, "n_sources": len(sources), "n_ok": n_ok,
                "tracker": ProgressTracker(f"generate {i}->{j}", n_ok, on_progress, n_ok - len(todo))}
        # The same batches on every engine: a batch's pixels do not depend on where it ran.
        plan["batches"] = [[{"source": s, "variant": v, "key": candidate_key(cfg.method, s["id"], i, j, mask_tag, v),
                             "source_path": str(project.dataset_path(s["path"]).resolve()),
                             "mask_path": str(project.project_path(masks[s["id"]]["path"]).resolve()),
                             "prompt": prompt, "seed": cfg.candidate_seed(s["id"], j, v)}
                            for s, v in todo[k:k + inpaint.batch_size]]
                           for k in range(0, len(todo), inpaint.batch_size)]
        plans.append(plan)

    def store(plan: dict, batch: list[dict], outs: list[np.ndarray], seconds: float) -> None:
        i, j, masks, token_row = plan["i"], plan["j"], plan["masks"], plan["token_row"]
        stored = {r["key"] for r in project.db.query(
            f"select key from candidates where key in ({','.join('?' * len(batch))})", [it["key"] for it in batch])}
        rows = []
        for it, out in zip(batch, outs):
            if it["key"] in stored:  # a retried batch already delivered
                continue
            s, key = it["source"], it["key"]
            path = project.root / "candidates" / f"{i}-{j}" / f"{key.replace(':', '_').replace('->', '-')}.png"
            _write_png(path, out)
            write_thumbnail(project, _rel(project, path), out)
            m = masks[s["id"]]
            rows.append({
                "key": key, "method": cfg.method, "source_id": s["id"], "source_label": i, "target_label": j,
                "mask_id": m["id"], "path": _rel(project, path), "seed": it["seed"], "prompt": plan["prompt"],
                "created_at": now(),
                "provenance": json.dumps({
                    "method": cfg.method, "variant": it["variant"],
                    "masker": m["backend"], "mask_params": json.loads(m["params"]), "mask_score": m["score"],
                    "token": plan["token"], "token_sha256": token_row["sha256"] if token_row else None,
                    "model": model_ref, "model_sha256": model_sha, "erm_model_id": erm_id,
                    "inpaint": asdict(inpaint), "seconds": round(seconds, 3)}),
            })
        with project.write():
            project.db["candidates"].insert_all(rows)
        plan["tracker"].update(plan["tracker"].done + len(rows), f"{seconds:.2f}s per image")

    # 2. Run every batch of every direction: here, or on one Ray actor pool for the whole job.
    work = [(plan, batch) for plan in plans for batch in plan["batches"]]
    if engine.kind == "local":
        for plan, batch in work:
            check_cancel(cancel, f"between generation batches of {plan['i']}->{plan['j']}")
            t0 = time.monotonic()
            outs = inpaint_batch(inpainter, batch, inpaint)
            store(plan, batch, outs, (time.monotonic() - t0) / len(batch))
    elif work:
        from .engines import inpaint_on_ray

        tokens = {p["token"]: project.project_path(p["token_row"]["path"]).resolve() for p in plans if p["token_row"]}
        model = str(Path(model_ref).resolve()) if Path(model_ref).is_dir() else model_ref
        from ..project.settings import compute_device, compute_dtype

        for k, outs, seconds, worker_sha in inpaint_on_ray(engine, model, compute_device(project, inpaint.device),
                                                           compute_dtype(project, inpaint.dtype), tokens,
                                                           [[_plain(it) for it in b] for _p, b in work], inpaint, cancel):
            if worker_sha != model_sha:
                raise ProjectError(f"the Ray workers loaded another model ({worker_sha[:12]}…) than {model_ref} "
                                   f"({model_sha[:12]}…): give every node the same model folder")
            store(work[k][0], work[k][1], outs, seconds)
    if work:
        _review_arrays_ready(project)
    for plan in plans:
        i, j = plan["i"], plan["j"]
        summary[f"{i}->{j}"] = {"sources": plan["n_sources"], "no_detection": plan["n_sources"] - plan["n_ok"],
                                "candidates": project.db.execute(
                                    "select count(*) from candidates where method = ? and source_label = ? and target_label = ? "
                                    "and key like ?", [cfg.method, i, j, f"%:{plan['mask_tag']}:%"]).fetchone()[0]}
    return {d: summary[d] for d in sorted(summary, key=lambda d: tuple(map(int, d.split("->"))))}


def _plain(item: dict) -> dict:
    """What a worker needs of a work item (paths, prompt, seed), without the database rows."""
    return {k: item[k] for k in ("key", "source_path", "mask_path", "prompt", "seed")}


# ---------------------------------------------------------------------------------------------
# scores


def stale_count(project: Project) -> int:
    """Candidates whose ψ/ρ were computed by another model than the active ERM model."""
    return project.db.execute("select count(*) from candidates where psi is not null and "
                              "(score_model_id is null or score_model_id != ?)", [project.active_erm_id or -1]).fetchone()[0]


def check_scoring(engine: EngineConfig, ig_dtype: str, device: str) -> None:
    """Refuse, before anything runs, a precision or a device this run of scoring cannot use: float16 without CUDA
    here (local engine), or a device that Ray workers cannot use."""
    if engine.kind == "local":
        ig_half(ig_dtype, device)
        return
    from .engines import worker_device

    if ig_dtype not in IG_DTYPES:
        raise ConfigError(f"--ig-dtype {ig_dtype!r}: choose one of {', '.join(IG_DTYPES)}")
    worker_device(engine, device)


def score(project: Project, *, n_steps: int = 50, internal_batch_size: Optional[int] = None, batch_size: int = 8,
          rescore: bool = False, on_progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
          engine: Optional[EngineConfig] = None, device: Optional[str] = None, ig_dtype: str = "float32") -> int:
    """Compute ψ, ρ and the IG map of every unscored candidate with the active ERM model; with
    ``rescore``, also of every candidate scored by another model (stale). Each score records the
    model that computed it. ``internal_batch_size``: IG rows per pass (default: ``scoring.ig_rows``).
    ``engine`` (default local) says where the classifier runs; this process writes every file and row.
    ``device`` (default: the project's setting): where the classifier runs. ``ig_dtype``: ``float32`` (the
    default, on every device) or ``float16``, the classifier's forward under float16 autocast, on CUDA only and
    only when asked (``scoring`` says what stays float32; docs/benchmarks.md, "ig-precision", its effect on ρ)."""
    from ..project.device import resolve_device
    from .igmaps import save_ig
    from ..classifiers.models import load_classifier
    from ..project.settings import compute_device

    engine = engine or EngineConfig()
    erm = project.active_erm()
    stale = "or c.score_model_id is null or c.score_model_id != :erm" if rescore else ""
    todo = list(project.db.query(
        "select c.id, c.source_label, c.target_label, c.path, s.path as source_path, m.path as mask_path "
        "from candidates c join samples s on s.id = c.source_id join masks m on m.id = c.mask_id "
        f"where c.psi is null {stale} order by c.id", {"erm": erm["id"]}))
    total = project.db.execute("select count(*) from candidates").fetchone()[0]
    tracker = ProgressTracker("score", total, on_progress, total - len(todo))
    ig_dir = project.root / "ig"
    ig_dir.mkdir(exist_ok=True)
    batches = [[{"id": r["id"], "source_label": r["source_label"], "target_label": r["target_label"],
                 "source_path": str(project.dataset_path(r["source_path"]).resolve()),
                 "path": str(project.project_path(r["path"]).resolve()),
                 "mask_path": str(project.project_path(r["mask_path"]).resolve())} for r in todo[k:k + batch_size]]
               for k in range(0, len(todo), batch_size)]

    device = compute_device(project, device)
    check_scoring(engine, ig_dtype, device)

    def store(batch: list[dict], scores: list) -> None:
        updates = []
        for r, sc in zip(batch, scores):
            path = save_ig(ig_dir / f"{r['id']}.npz", sc.ig_map, erm["image_size"])
            updates.append((sc.psi, sc.rho, sc.ig_delta, _rel(project, path), json.dumps(sc.probs_source),
                            json.dumps(sc.probs_generated), now(), erm["id"], getattr(sc, "change", None), r["id"]))
        with project.write():
            project.db.conn.executemany(
                "update candidates set psi = ?, rho = ?, ig_delta = ?, ig_path = ?, probs_source = ?, "
                "probs_generated = ?, scored_at = ?, score_model_id = ?, mask_change = ? where id = ?", updates)
        tracker.update(tracker.done + len(batch))

    if engine.kind == "local" and batches:
        dev = resolve_device(device)
        half = ig_half(ig_dtype, dev)
        model, _, _ = load_classifier(project.project_path(erm["path"]), erm["arch"], erm["num_classes"],
                                      device=dev, what="scoring")
        for batch in batches:
            check_cancel(cancel, "between scoring batches")
            store(batch, score_batch(model, batch, erm["image_size"], n_steps, internal_batch_size, half))
    elif batches:
        from .engines import score_on_ray

        for k, scores in score_on_ray(engine, project.project_path(erm["path"]), erm["arch"], erm["num_classes"],
                                      batches, erm["image_size"], n_steps, internal_batch_size, cancel,
                                      device=device, ig_dtype=ig_dtype):
            store(batches[k], scores)
    if batches:
        _review_arrays_ready(project)
    return len(todo)


# ---------------------------------------------------------------------------------------------
# one candidate again, with a mask drawn by the user
