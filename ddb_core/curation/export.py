"""Exports of a curated project: the dataset as an ImageFolder tree with a CSV manifest, and a
reproducibility bundle (configs, seeds, thresholds, model and token hashes).

Consumes a project with decisions; produces files under ``<project>/exports/<name>/`` (and a zip
of the bundle), so the app can offer them for download without serving anything outside the
project.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import time
import zipfile
from pathlib import Path
from typing import Optional

from ..project.errors import ConfigError, ProjectError
from ..project.progress import ProgressTracker, check_cancel
from .decisions import decisions, thresholds, thresholds_json
from ..project.store import Project, now


# what no output may be written into or over, whatever the flags: the project's own stores
PROTECTED = ("project.db", "project.db-wal", "project.db-shm", "models", "tokens", "dataset", "masks", "candidates", "ig",
             "runs", "cache", "thumbs")


def check_output(project: Project, out: Path, what: str, force: bool = False, folder: bool = False,
                 flag: str = "--out") -> Path:
    """``out`` as an export may write it: never inside (or over) the project's database, models, tokens, dataset,
    masks, candidates or IG maps, nor the imported dataset's folder; an existing path only with ``force`` (a file,
    or for ``folder`` an earlier export: a folder with a manifest.csv). Returns it resolved."""
    real = Path(os.path.realpath(out))
    root = Path(os.path.realpath(project.root))
    protected = [root / name for name in PROTECTED] + [Path(os.path.realpath(project.dataset_root))]
    if real == root or root.is_relative_to(real):
        raise ProjectError(f"{what} {flag} {out}: that is the project folder itself (or holds it); choose a new path, "
                           f"e.g. in {root / 'exports'}")
    for place in protected:
        if real == place or real.is_relative_to(place) or place.is_relative_to(real):
            raise ProjectError(f"{what} {flag} {out}: that is inside the project's own {place.name} (or holds it); no "
                               f"command writes there. Choose a path outside it, e.g. in {root / 'exports'}")
    if os.path.lexists(real):
        if not force:
            raise ProjectError(f"{what} {flag} {out} already exists; choose another path, or pass --force to replace it")
        if folder and not (real.is_dir() and (real / "manifest.csv").is_file()):
            raise ProjectError(f"{what} {flag} {out}: --force replaces only an earlier export (a folder with a "
                               f"manifest.csv); this is not one, so nothing was written")
        if not folder and not real.is_file():
            raise ProjectError(f"{what} {flag} {out} exists and is not a file; nothing was written")
    return real


def _regular_inside(path: Path, root: Path, what: str) -> Path:
    """``path`` if it is a regular file (not a link, a pipe or a device) whose real place is inside ``root``; else
    an error naming it. Checked as the file is copied, so a file swapped for a link after import is caught."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise ProjectError(f"{what} {path} is {kind}; an export copies only regular files from inside "
                           f"{root}. Nothing was exported")
    if not Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root))):
        raise ProjectError(f"{what} {path} lies outside {root}; nothing was exported")
    return path


def export_dataset(project: Project, out: Optional[Path] = None, include_train: bool = True, method: str = "all",
                   on_progress=None, cancel=None, force: bool = False) -> dict:
    """``out/train/<class>/`` holds the train split (copied) and every accepted candidate, labelled
    with its target class; ``manifest.csv`` lists each generated file with its source, direction,
    ψ, ρ and decision (automatic / manual). Returns counts and paths. Written under a ``.partial``
    name and renamed at the end: a cancelled or failed export leaves no half-written folder."""
    names = project.class_names
    if not names:
        raise ProjectError(f"project {project.root} has no dataset to export")
    if method != "all" and not project.db.execute("select 1 from candidates where method = ? limit 1", [method]).fetchone():
        known = [r[0] for r in project.db.execute("select distinct method from candidates")]
        raise ConfigError(f"export dataset --method {method}: the project has no candidates of that method "
                          f"(it has {', '.join(known) or 'none'}; or all)")
    out = Path(out) if out else project.root / "exports" / f"dataset-{time.strftime('%Y%m%d-%H%M%S')}"
    out = check_output(project, out, "export dataset", force=force, folder=True)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        res = _export(project, out, tmp, names, include_train, method, on_progress, cancel)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return res


def _export(project: Project, out: Path, tmp: Path, names: list[str], include_train: bool, method: str,
            on_progress, cancel) -> dict:
    for c in names:
        (tmp / "train" / c).mkdir(parents=True)
    train_rows = project.samples("train", "id, path, label") if include_train else []
    where, args = ("1=1", []) if method == "all" else ("c.method = ?", [method])
    n_cands = project.db.execute(f"select count(*) from candidates c where {where}", args).fetchone()[0]
    tracker = ProgressTracker("export", len(train_rows) + n_cands, on_progress)
    n_real = 0
    for r in train_rows:
        if n_real % 200 == 0:
            check_cancel(cancel, "while copying the train images")
            tracker.update(n_real)
        src = _regular_inside(project.dataset_path(r["path"]), project.dataset_root, f"train image {r['path']!r}:")
        shutil.copyfile(src, tmp / "train" / names[r["label"]] / f"real-{r['id']}{_safe_suffix(src)}")
        n_real += 1
    ds = {d.candidate_id: d for d in decisions(project, where, args)}
    rows = project.db.query(f"select c.id, c.method, c.source_id, c.source_label, c.target_label, c.path, c.psi, c.rho, "
                            f"c.seed, c.prompt from candidates c where {where} order by c.id", args)
    manifest = []
    n_gen = 0
    for k, r in enumerate(rows):
        if k % 200 == 0:
            check_cancel(cancel, "while copying the accepted samples")
            tracker.update(n_real + k)
        d = ds[r["id"]]
        rel = ""
        if d.kept:
            src = _regular_inside(project.root / r["path"], project.root / "candidates", f"candidate {r['id']}:")
            dst = tmp / "train" / names[r["target_label"]] / f"generated-{r['id']}{_safe_suffix(src)}"
            shutil.copyfile(src, dst)
            rel = dst.relative_to(tmp).as_posix()
            n_gen += 1
        source = project.db.execute("select path from samples where id = ?", [r["source_id"]]).fetchone()[0]
        manifest.append({"file": rel, "candidate_id": r["id"], "method": r["method"], "source": source,
                         "direction": f"{names[r['source_label']]}->{names[r['target_label']]}",
                         "psi": r["psi"], "rho": r["rho"], "seed": r["seed"], "prompt": r["prompt"],
                         "decision": "kept" if d.kept else "pruned",
                         "decided_by": "manual" if d.manual else ("automatic" if d.auto is not None else "unscored")})
    with open(tmp / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "candidate_id", "method", "source", "direction", "psi", "rho", "seed",
                                          "prompt", "decision", "decided_by"])
        w.writeheader()
        w.writerows(manifest)
    tracker.update(n_real + len(manifest))
    if out.exists():  # --force, checked to be an earlier export: replaced whole, at the end
        shutil.rmtree(out)
    tmp.rename(out)
    return {"path": str(out), "real_images": n_real, "generated_images": n_gen, "candidates": len(manifest),
            "manifest": str(out / "manifest.csv")}


def _safe_suffix(path: Path) -> str:
    """An exported file's suffix: the source's when it is an image's, else ``.png`` (a file named
    ``x.html`` that PIL reads as an image must not be served back as a web page)."""
    from ..data.datasets import IMAGE_EXTS

    return path.suffix.lower() if path.suffix.lower() in IMAGE_EXTS else ".png"


def reproducibility_bundle(project: Project, out: Optional[Path] = None, force: bool = False) -> dict:
    """A zip with the project's configs, seeds, thresholds, model/token hashes, runs and reports. An existing file is
    replaced only with ``force``, and never one of the project's own stores (``check_output``)."""
    out = Path(out) if out else project.root / "exports" / f"bundle-{time.strftime('%Y%m%d-%H%M%S')}.zip"
    out = check_output(project, out, "export bundle", force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = project.meta()
    bundle = {
        "created_at": now(), "project": meta.get("name"), "classes": project.class_names, "attrs": project.attr_names,
        "dataset": {"format": meta.get("dataset_format"), "root": meta.get("dataset_root"),
                    "samples": {s: project.sample_count(s) for s in ("train", "val", "test")}},
        "meta": {k: v for k, v in meta.items() if k not in ("bench_demo",)},
        "thresholds": thresholds_json(thresholds(project)),
        "models": [{k: m[k] for k in ("id", "name", "role", "path", "arch", "sha256", "config", "created_at")}
                   for m in project.models()],
        "tokens": [dict(r, loss_curve=None) for r in project.db.query("select * from tokens order by id")],
        "masks": [dict(r) for r in project.db.query(
            "select backend, params_hash, params, count(*) as n from masks group by backend, params_hash")],
        "generation": [dict(r) for r in project.db.query(
            "select method, count(*) as n, min(seed) as min_seed, max(seed) as max_seed from candidates group by method")],
        "runs": [dict(r) for r in project.db.query("select id, stage, status, config, seconds, started_at from runs order by id")],
        "audit_entries": project.db.execute("select count(*) from audit").fetchone()[0],
    }
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bundle.json", json.dumps(bundle, indent=2, default=str))
        with_prov = project.db.query("select id, key, provenance from candidates order by id")
        z.writestr("candidates-provenance.jsonl", "\n".join(json.dumps(dict(r)) for r in with_prov))
        for rep in project.root.glob("reports/*/report.json"):
            z.write(rep, f"reports/{rep.parent.name}/report.json")
    os.replace(tmp, out)
    return {"path": str(out), "models": len(bundle["models"]), "tokens": len(bundle["tokens"]), "runs": len(bundle["runs"])}
