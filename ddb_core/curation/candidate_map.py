"""A map of the candidates: the ERM model's penultimate-layer features of every candidate, and of
the source images they were made from, projected to two dimensions — so that clusters of failed
generations show as clusters and can be selected (and rejected) in one gesture.

Consumes a project with candidates and an active ERM model; produces ``map_points`` rows
(kind, item id, ERM model, method, x, y). The projection is fitted on a seeded sample of at most
``fit_size`` images (features of all of them would not fit in memory at a million candidates),
then every image is projected in batches; each batch is stored at once, so a cancelled or killed
job resumes where it stopped (the fitted PCA basis is kept in ``maps/``). ``pca`` needs nothing
more; ``umap`` is used when the ``umap-learn`` package is installed (it is fitted again on resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..project.errors import ConfigError, ProjectError
from ..project.progress import CancelToken, ProgressFn, ProgressTracker, check_cancel
from ..project.store import Project

METHODS = ("pca", "umap")


@dataclass(frozen=True)
class MapConfig:
    method: str = "pca"  # pca | umap (when umap-learn is installed)
    fit_size: int = 20_000  # images the projection is fitted on (a seeded sample)
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"map method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.fit_size < 3 or self.batch_size < 1:
            raise ConfigError(f"fit_size must be >= 3 and batch_size >= 1, got {self.fit_size}, {self.batch_size}")


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def _items(project: Project) -> list[tuple[str, int, object]]:
    """(kind, id, image path) of every candidate and of every source image of a candidate."""
    cands = [("candidate", r[0], project.project_path(r[1]))
             for r in project.db.execute("select id, path from candidates order by id")]
    sources = [("source", r[0], project.dataset_path(r[1])) for r in project.db.execute(
        "select id, path from samples where id in (select distinct source_id from candidates) order by id")]
    return cands + sources


def compute_map(project: Project, cfg: MapConfig = MapConfig(), on_progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelToken] = None, device: Optional[str] = None) -> dict:
    """Project every candidate and source of the active ERM model's features to 2-D; skips what is done.
    ``device``: where the ERM model runs (default: the project's device setting). A ``runs`` row ("map")
    records it."""
    from dataclasses import asdict

    with project.recorded_run("map", {**asdict(cfg), "device": device}):
        return _compute_map(project, cfg, on_progress, cancel, device)


def _compute_map(project: Project, cfg: MapConfig, on_progress: Optional[ProgressFn], cancel: Optional[CancelToken],
                 device: Optional[str]) -> dict:
    from ..project.settings import compute_device
    from ..data.imaging import ClassifierDataset, ImageSet
    from ..classifiers.models import features, load_classifier

    if cfg.method == "umap" and not umap_available():
        raise ConfigError("map method 'umap' needs the umap-learn package (pip install umap-learn); 'pca' needs nothing")
    erm = project.active_erm()
    items = _items(project)
    if not items:
        raise ProjectError("the project has no candidates to map yet: generate some first")
    done = {(r[0], r[1]) for r in project.db.execute(
        "select kind, item_id from map_points where erm_model_id = ? and method = ?", [erm["id"], cfg.method])}
    if cfg.method == "umap" and len(done) < len(items):  # a UMAP fit is not kept: start again
        project.db.execute("delete from map_points where erm_model_id = ? and method = ?", [erm["id"], cfg.method])
        project.db.conn.commit()
        done = set()
    todo = [it for it in items if (it[0], it[1]) not in done]
    tracker = ProgressTracker(f"map ({cfg.method})", len(items), on_progress, len(items) - len(todo))
    if not todo:
        return {"points": len(items), "computed": 0}
    model, _, _ = load_classifier(project.project_path(erm["path"]), erm["arch"], erm["num_classes"],
                                  device=compute_device(project, device), what="candidate map")

    def feats(batch):
        ds = ClassifierDataset(ImageSet([p for _k, _i, p in batch], erm["image_size"], preload=False), [0] * len(batch))
        return features(model, ds, batch_size=cfg.batch_size)

    projector = _projector(project, erm["id"], cfg, items, feats, cancel)
    for start in range(0, len(todo), cfg.batch_size):
        check_cancel(cancel, "between map batches")
        batch = todo[start:start + cfg.batch_size]
        xy = projector(feats(batch))
        with project.write():
            project.db.conn.executemany(
                "insert or replace into map_points (kind, item_id, erm_model_id, method, x, y) values (?, ?, ?, ?, ?, ?)",
                [(k, i, erm["id"], cfg.method, float(x), float(y)) for (k, i, _p), (x, y) in zip(batch, xy)])
        tracker.update(tracker.done + len(batch))
    return {"points": len(items), "computed": len(todo)}


def _projector(project: Project, model_id: int, cfg: MapConfig, items, feats, cancel):
    """A function features → 2-D points, fitted on a seeded sample of ``items`` (PCA: kept on disk)."""
    basis_path = project.root / "maps" / f"pca-erm{model_id}.npz"
    if cfg.method == "pca" and basis_path.is_file():
        with np.load(basis_path) as b:
            mean, comps = b["mean"], b["components"]
        return lambda f: (f - mean) @ comps.T
    rng = np.random.default_rng(cfg.seed)
    pick = sorted(rng.choice(len(items), size=min(cfg.fit_size, len(items)), replace=False).tolist())
    sample = []
    for start in range(0, len(pick), cfg.batch_size):
        check_cancel(cancel, "while fitting the map")
        sample.append(feats([items[k] for k in pick[start:start + cfg.batch_size]]))
    x = np.concatenate(sample)
    if cfg.method == "umap":
        import umap

        reducer = umap.UMAP(n_components=2, random_state=cfg.seed).fit(x)
        return lambda f: reducer.transform(f)
    mean = x.mean(0)
    _u, _s, vt = np.linalg.svd(x - mean, full_matrices=False)  # principal axes of the sample
    comps = vt[:2]
    basis_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = basis_path.with_suffix(".tmp.npz")
    np.savez(tmp, mean=mean, components=comps)
    tmp.replace(basis_path)
    return lambda f: (f - mean) @ comps.T


def load_map(project: Project, method: Optional[str] = None) -> Optional[dict]:
    """The active model's map: {"method", "candidate_ids", "cx", "cy", "sx", "sy"} (arrays; candidates
    by id), or None when none is computed. Without ``method``, the one computed (PCA first)."""
    mid = project.active_erm_id
    if mid is None:
        return None
    methods = [method] if method else list(METHODS)
    for m in methods:
        rows = project.db.execute("select kind, item_id, x, y from map_points where erm_model_id = ? and method = ? "
                                  "order by kind, item_id", [mid, m]).fetchall()
        if rows:
            c = [r for r in rows if r[0] == "candidate"]
            s = [r for r in rows if r[0] == "source"]
            return {"method": m, "candidate_ids": np.array([r[1] for r in c], np.int64),
                    "cx": np.array([r[2] for r in c]), "cy": np.array([r[3] for r in c]),
                    "sx": np.array([r[2] for r in s]), "sy": np.array([r[3] for r in s])}
    return None
