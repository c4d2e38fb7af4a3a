"""Selection: which images are edited (D_i), which teach textual inversion, and Ψ_i (Eq. 3).

Consumes the active ERM model's per-sample losses and softmax vectors (stored on ``samples`` by
``training.score_samples``, computed per sample on the deterministic evaluation transform — not
a batch-mean loss over augmented crops). Produces rows of ``selections`` and ``class_stats``:

- D_i (purpose ``source``): the K training images of class i with the lowest loss — almost all
  majority-group images, found without group labels. K is a count (>= 1) or a fraction (< 1).
- the textual-inversion set (purpose ``inversion``): by default the ``ti_size`` highest-loss
  training images of class i (no group labels, the paper's preference for minority images);
  ``ti_source="random"``: a seeded random sample of class i's training images (no group labels);
  ``ti_source="val_minority"``: the val images of class i's minority group (uses val group
  labels, paper §5.1).
- Ψ_i = mean of softmax(f(x))[i] over the class-i training images (Eq. 3).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ..project.errors import ConfigError, ProjectError
from ..project.store import Project


TI_SOURCES = ("high_loss", "random", "val_minority")


@dataclass(frozen=True)
class SelectionConfig:
    k: float = 0.5  # per class: a count (>= 1) or a fraction of the class's training images (< 1)
    k_per_class: tuple[int, ...] = ()  # a count for each class, in class order (instead of ``k``)
    k_total: int = 0  # a total over the classes, as even as the class sizes allow (instead of ``k``)
    ti_size: int = 30  # images per class for textual inversion (paper: 20-40; 0 = plain prompt)
    ti_source: str = "high_loss"  # high_loss | random (no group labels) | val_minority (val group labels)
    seed: int = 0  # ti_source "random" only

    def __post_init__(self) -> None:
        if not self.k > 0:
            raise ConfigError(f"k must be a positive count or fraction, got {self.k}")
        if self.k >= 1 and self.k != int(self.k):
            raise ConfigError(f"k >= 1 is a count and must be a whole number, got {self.k}")
        if self.k_per_class and self.k_total:
            raise ConfigError("give K per class or a total, not both")
        if any(int(k) != k or k < 0 for k in self.k_per_class):
            raise ConfigError(f"K per class must be whole numbers >= 0, got {list(self.k_per_class)}")
        if self.k_per_class and not any(self.k_per_class):
            raise ConfigError("K per class is 0 for every class: nothing would be generated")
        if self.k_total < 0 or int(self.k_total) != self.k_total:
            raise ConfigError(f"the total K must be a whole number >= 1, got {self.k_total}")
        if self.ti_size < 0:
            raise ConfigError(f"ti_size must be >= 0, got {self.ti_size}")
        if self.ti_source not in TI_SOURCES:
            raise ConfigError(f"ti_source must be one of {', '.join(TI_SOURCES)}, got {self.ti_source!r}")


@dataclass(frozen=True)
class SelectionSummary:
    erm_model_id: int
    sources: dict[int, int]  # class -> |D_i|
    inversion: dict[int, int]  # class -> TI set size
    Psi: dict[int, float]  # Eq. 3


def balanced_counts(total: int, sizes: list[int]) -> list[int]:
    """``total`` split over classes of ``sizes`` training images as evenly as they allow: each class gets an equal
    share, a class with fewer images gives all it has, and what it cannot give goes to the others in equal shares
    (the first classes take the remainder of an uneven split). At most ``sum(sizes)`` in all."""
    counts = [0] * len(sizes)
    left, open_ = min(int(total), sum(sizes)), [c for c, n in enumerate(sizes) if n > 0]
    while left > 0 and open_:
        share, extra = divmod(left, len(open_))
        for rank, c in enumerate(open_):
            take = min(sizes[c] - counts[c], share + (1 if rank < extra else 0))
            counts[c] += take
            left -= take
        open_ = [c for c in open_ if counts[c] < sizes[c]]
    return counts


def class_counts(cfg: SelectionConfig, sizes: list[int]) -> list[int]:
    """How many source images each class gives (``sizes``: its training images): ``k_per_class`` as given,
    ``k_total`` balanced (``balanced_counts``), else ``k`` for each class (a count, or a fraction of the class)."""
    if cfg.k_per_class:
        if len(cfg.k_per_class) != len(sizes):
            raise ConfigError(f"K per class: {len(cfg.k_per_class)} counts for {len(sizes)} classes; give one per class, "
                              f"in class order")
        return [min(int(k), n) for k, n in zip(cfg.k_per_class, sizes)]
    if cfg.k_total:
        return balanced_counts(cfg.k_total, sizes)
    return [min(int(cfg.k) if cfg.k >= 1 else max(1, round(cfg.k * n)), n) for n in sizes]


def _scored_train_rows(project: Project, model_id: int) -> list[dict]:
    rows = list(project.db.query(
        "select id, label, attr, erm_loss, erm_probs, erm_model_id from samples where split = 'train' order by id"))
    stale = [r["id"] for r in rows if r["erm_model_id"] != model_id or r["erm_loss"] is None]
    if stale:
        raise ProjectError(f"{len(stale)} training samples have no loss from ERM model {model_id} "
                           f"(first ids {stale[:5]}); re-run `ddb erm train` or `ddb erm load`")
    return rows


def minority_attr(project: Project, label: int) -> Optional[int]:
    """The spurious attribute value least common among class ``label``'s training images."""
    counts = {a: n for (y, a), n in project.group_counts("train").items() if y == label}
    return min(counts, key=counts.get) if counts else None


def inversion_rows(project: Project, label: int, cls: list[dict], cfg: SelectionConfig) -> list[dict]:
    """The textual-inversion set of class ``label`` (rows with ``id``); ``cls``: its train rows by ascending loss."""
    if cfg.ti_source == "high_loss":
        return list(reversed(cls))[:cfg.ti_size]
    if cfg.ti_source == "random":
        rng = np.random.default_rng([cfg.seed, label])
        return [cls[i] for i in rng.permutation(len(cls))[:cfg.ti_size]]
    attr = minority_attr(project, label)
    if attr is None:
        raise ConfigError("ti_source 'val_minority' needs group labels; this dataset has none")
    return list(project.db.query(
        "select id, erm_loss from samples where split = 'val' and label = ? and attr = ? order by id limit ?",
        [label, attr, cfg.ti_size]))


def class_rows_by_loss(project: Project, label: int) -> list[dict]:
    """Class ``label``'s training rows scored by the active ERM model, by ascending loss (ties by id)."""
    rows = _scored_train_rows(project, project.active_erm()["id"])
    return sorted((r for r in rows if r["label"] == label), key=lambda r: (r["erm_loss"], r["id"]))


def select(project: Project, cfg: SelectionConfig = SelectionConfig()) -> SelectionSummary:
    """Choose D_i and the inversion set per class, compute Ψ_i; replaces earlier selections."""
    erm = project.active_erm()
    rows = _scored_train_rows(project, erm["id"])
    n_classes = len(project.class_names)
    sources, inversion = {}, {}
    out_rows = []
    by_class = [sorted((r for r in rows if r["label"] == label), key=lambda r: (r["erm_loss"], r["id"]))
                for label in range(n_classes)]
    counts = class_counts(cfg, [len(c) for c in by_class])
    for label in range(n_classes):
        cls = by_class[label]
        if not cls:
            raise ProjectError(f"class {label} ({project.class_names[label]!r}) has no training image")
        chosen = cls[:counts[label]]
        out_rows += [{"erm_model_id": erm["id"], "purpose": "source", "label": label, "sample_id": r["id"],
                      "rank": i, "loss": r["erm_loss"]} for i, r in enumerate(chosen)]
        sources[label] = len(chosen)
        ti = inversion_rows(project, label, cls, cfg)
        out_rows += [{"erm_model_id": erm["id"], "purpose": "inversion", "label": label, "sample_id": r["id"],
                      "rank": i, "loss": r["erm_loss"]} for i, r in enumerate(ti)]
        inversion[label] = len(ti)
    stats = class_stats_rows(project, erm["id"])  # Eq. 3
    psi = {r["label"]: r["mean_softmax"] for r in stats}
    with project.write():
        project.db.execute("delete from selections where purpose in ('source', 'inversion')")
        project.db.execute("delete from class_stats where erm_model_id = ?", [erm["id"]])
        project.db["selections"].insert_all(out_rows)
        project.db["class_stats"].insert_all(stats)
        project.set_meta("selection_config", asdict(cfg))
    return SelectionSummary(erm["id"], sources, inversion, psi)


def selected(project: Project, purpose: str, label: int) -> list[dict]:
    """Selected samples of one class (with path and label), in rank order.

    A selection belongs to the ERM model that made it (D_i is its lowest-loss images, SCGS's its
    misclassified ones): after the active ERM model changed, using it would generate from another
    model's choice while the provenance names the new one, so that is an error naming the command."""
    rows = list(project.db.query(
        "select s.*, sel.rank, sel.loss as selection_loss, sel.erm_model_id as selection_model_id "
        "from selections sel join samples s on s.id = sel.sample_id "
        "where sel.purpose = ? and sel.label = ? order by sel.rank", [purpose, label]))
    active = project.active_erm_id
    stale = {r["selection_model_id"] for r in rows} - {active}
    if stale:
        again = "ddb scgs select" if purpose == "scgs" else "ddb select"
        raise ProjectError(f"the {purpose} selection of class {label} was made by ERM model "
                           f"{', '.join(map(str, sorted(stale, key=str)))}, but the active ERM model is {active}: "
                           f"run `{again}` again so that it is this model's choice")
    return rows


def class_softmax_means(project: Project, required: bool = True) -> dict[int, float]:
    """Ψ_i (Eq. 3) of the active ERM model, per class. With ``required``, a missing one is an error
    that names the command to run."""
    erm_id = project.active_erm_id
    rows = project.db.query("select label, mean_softmax from class_stats where erm_model_id = ?", [erm_id])
    out = {r["label"]: r["mean_softmax"] for r in rows}
    if required and len(out) < len(project.class_names):
        raise ProjectError(f"Ψ (Eq. 3) is not computed for the active ERM model (id {erm_id}): run `ddb select`")
    return out


def class_stats_rows(project: Project, model_id: int) -> list[dict]:
    """Ψ_i (Eq. 3) of every class from the stored per-sample softmax of ``model_id``: the mean over the
    class-i training images of softmax(f(x))[i]. A class without training images has none."""
    rows = _scored_train_rows(project, model_id)
    out = []
    for label in range(len(project.class_names)):
        cls = [r for r in rows if r["label"] == label]
        if cls:
            out.append({"erm_model_id": model_id, "label": label, "n": len(cls),
                        "mean_softmax": sum(json.loads(r["erm_probs"])[label] for r in cls) / len(cls)})
    return out


def store_class_stats(project: Project, model_id: int) -> dict[int, float]:
    """Compute and store Ψ_i of ``model_id`` (replacing earlier values of that model)."""
    stats = class_stats_rows(project, model_id)
    with project.write():
        project.db.execute("delete from class_stats where erm_model_id = ?", [model_id])
        project.db["class_stats"].insert_all(stats)
    return {r["label"]: r["mean_softmax"] for r in stats}
