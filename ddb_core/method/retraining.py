"""Retraining (Algorithm 1, the last step; Eq. 6–8): D_train ∪ D'_i ∪ D'_i' with

    L = L_train + Σ_c γ_c · L_gen,c

one γ per generated target class c, each term the mean cross-entropy over its subset of the batch
(``method.objective``; an empty subset adds 0, never NaN).

Consumes a project whose candidates have decisions (``ddb_core.curation.decisions``) and a ``RetrainConfig``;
produces one model per seed (checkpoint, ``models`` row with val/test reports, ``runs`` row with
per-epoch metrics), each trained by ``training.train_classifier`` with a ``TrainPlan``: the train
split plus the accepted generated images, labelled with their target class. "Accepted" = the
automatic decision at the project's current thresholds, overridden by manual decisions. Starts
from the ERM checkpoint (default) or from scratch; γ can be chosen by val WGA (``gamma_search``),
as the paper tunes it. The baselines beside it are in ``method.baselines``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np

from ..project.errors import ConfigError, ProjectError
from ..project.progress import CancelToken, ProgressFn, check_cancel
from ..project.store import Project
from ..classifiers.training import TrainConfig, TrainPlan, TrainResult, train_classifier

log = logging.getLogger(__name__)

INITS = ("erm", "scratch")


def _retrain_recipe() -> TrainConfig:
    # From the ERM checkpoint with Adam, one epoch at lr 2e-4, val checked 4 times. On the demo
    # (`ddb bench recipe`) every seed's best check fell in the first epoch; lr 1e-4, 2e-4 and 5e-4 are
    # within the val noise of each other. A single check per epoch left model selection too few points.
    return TrainConfig(epochs=1, lr=2e-4, evals_per_epoch=4)


@dataclass(frozen=True)
class RetrainConfig:
    """How DDB (or SCGS) retrains. ``gammas``: one weight per generated target class (default 1)."""

    train: TrainConfig = field(default_factory=_retrain_recipe)
    gammas: Optional[tuple[float, ...]] = None  # None = 1.0 for every class
    # The paper tunes γ by val WGA (from {1, …, 10}, one γ per class: Table 10); a non-empty grid does
    # that: one run per value with the first seed, the best by the model-selection metric wins and the
    # other seeds train with it. Overrides ``gammas``. With ``per_class``, every combination of grid
    # values over the classes (γ_0, γ_1, …) is a run; without, one value for every class.
    gamma_grid: tuple[float, ...] = ()
    per_class: bool = False
    gen_ratio: float = 0.0  # > 0: that share of every batch is generated samples
    init: str = "erm"  # erm (an ERM checkpoint: ``init_model_id``, default the active one) | scratch
    init_model_id: Optional[int] = None
    reinit_head: bool = False
    method: str = "ddb"  # which candidates: ddb | scgs | all
    seeds: tuple[int, ...] = (0,)
    # True: the generated images are ordinary training samples (one mean over the whole batch, no γ), as
    # the SCGS paper adds its images to the training set; None: True for SCGS, False (Eq. 6–8) otherwise.
    ordinary: Optional[bool] = None

    @property
    def is_ordinary(self) -> bool:
        return self.method == "scgs" if self.ordinary is None else self.ordinary

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        if self.method not in ("ddb", "scgs", "all"):
            raise ConfigError(f"method must be ddb, scgs or all, got {self.method!r}")
        if not 0.0 <= self.gen_ratio < 1.0:
            raise ConfigError(f"gen_ratio must be in [0, 1), got {self.gen_ratio}")
        for g in (*(self.gammas or ()), *self.gamma_grid):
            if not (g >= 0 and math.isfinite(g)):
                raise ConfigError(f"every gamma must be a finite number >= 0, got {g}")
        if len(set(self.gamma_grid)) != len(self.gamma_grid):
            raise ConfigError(f"gamma_grid: repeated values in {list(self.gamma_grid)}")
        if self.is_ordinary and (self.gamma_grid or self.gen_ratio):
            raise ConfigError(f"{self.method} retraining adds its images as ordinary training samples: γ (and a γ grid) "
                              f"and a generated share per batch do not apply; pass ordinary=False for Eq. 6-8")
        if self.per_class and len(self.gamma_grid) ** 4 > 10_000:
            raise ConfigError(f"gamma_grid: {len(self.gamma_grid)} values per class make too many combinations")

    def grid(self, n_classes: int) -> list[tuple[float, ...]]:
        """The γ vectors a search tries, in order (the first is preferred on ties)."""
        import itertools

        if self.per_class:
            if len(self.gamma_grid) ** n_classes > 256:
                raise ConfigError(f"a per-class γ grid of {len(self.gamma_grid)} values over {n_classes} classes is "
                                  f"{len(self.gamma_grid) ** n_classes} runs; give fewer values or a shared γ")
            return list(itertools.product(self.gamma_grid, repeat=n_classes))
        return [(g,) * n_classes for g in self.gamma_grid]


@dataclass
class MultiSeedResult:
    method: str
    model_ids: list[int]
    results: list[TrainResult]
    group_labels: str  # which group labels the method used: "none", "val", "train", "train+val"
    details: dict = field(default_factory=dict)

    def summary(self, split: str = "test") -> dict:
        """mean ± std over seeds of WGA, plain mean accuracy and train-weighted accuracy."""
        out = {}
        for key in ("worst_group_acc", "mean_acc", "train_weighted_acc"):
            vals = [getattr(r.reports[split], key) for r in self.results if split in r.reports]
            vals = [v for v in vals if v is not None]
            out[key] = {"mean": float(np.mean(vals)) if vals else None,
                        "std": float(np.std(vals)) if len(vals) > 1 else 0.0, "values": vals}
        return out


def accepted_candidates(project: Project, method: str = "ddb") -> list[dict]:
    """The candidates that go into retraining: kept at the current thresholds or manually accepted."""
    # upward: retraining trains on what the review accepted (kept at the thresholds, or accepted by hand)
    from ..curation.decisions import decisions

    where, args = ("1=1", []) if method == "all" else ("c.method = ?", [method])
    kept = {d.candidate_id for d in decisions(project, where, args) if d.kept}
    if not kept:
        return []
    rows = project.db.query(f"select id, source_id, source_label, target_label, path from candidates c where {where} "
                            f"order by id", args)
    return [r for r in rows if r["id"] in kept]


def _erm_state(project: Project, model_id: Optional[int] = None) -> tuple[dict, dict]:
    """(state_dict, models row) of an ERM checkpoint: ``model_id``, or the project's active ERM model."""
    import torch

    erm = project.active_erm() if model_id is None else project.model(model_id)
    path = project.project_path(erm["path"])
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt["state_dict"] if "state_dict" in ckpt else ckpt, erm


def generated_plan(project: Project, cfg: RetrainConfig, candidates: Optional[list[dict]] = None) -> TrainPlan:
    """The TrainPlan of a DDB retraining: accepted images, their target labels, γ per class."""
    n = len(project.class_names)
    gammas = list(cfg.gammas) if cfg.gammas is not None else [1.0] * n
    if len(gammas) != n:
        raise ConfigError(f"gammas: give one per class ({n}), got {len(gammas)}")
    cands = accepted_candidates(project, cfg.method) if candidates is None else candidates
    attrs = {r["id"]: r["attr"] for r in project.db.query("select id, attr from samples where split = 'train'")}
    plan = TrainPlan(
        extra_paths=[project.project_path(c["path"]) for c in cands],
        extra_labels=[int(c["target_label"]) for c in cands],
        extra_attrs=[attrs.get(c["source_id"]) for c in cands],  # the background is the source's
        extra_terms=[-1 if cfg.is_ordinary else int(c["target_label"]) for c in cands], gammas=gammas,
        gen_ratio=cfg.gen_ratio, reinit_head=cfg.reinit_head,
        describe={"method": cfg.method, "candidate_ids_hash": _ids_hash([c["id"] for c in cands]),
                  "per_direction": _per_direction(cands), "init": cfg.init,
                  "objective": "ordinary samples" if cfg.is_ordinary else "Eq. 6-8"})
    if cfg.init == "erm":
        state, erm = _erm_state(project, cfg.init_model_id)
        plan.init_state = state
        plan.describe["init_model_id"] = erm["id"]
    return plan


def _ids_hash(ids: Sequence[int]) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def _per_direction(cands: Sequence[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in cands:
        key = f"{c['source_label']}->{c['target_label']}"
        out[key] = out.get(key, 0) + 1
    return out


def retraining_inputs(project: Project, method: str = "ddb") -> dict[str, int]:
    """How many accepted samples of each direction a retraining would use (for the app's button)."""
    return _per_direction(accepted_candidates(project, method))


def _retrain_base(project: Project, cfg: RetrainConfig) -> TrainConfig:
    if cfg.init == "erm" and cfg.init_model_id is None and project.active_erm_id is None:
        raise ProjectError("retraining starts from the ERM model, and the project has none: train or load one "
                           "(ddb erm train), or use init 'scratch'")
    if cfg.init == "erm":  # the ERM checkpoint fixes the architecture and the input size
        erm = project.active_erm() if cfg.init_model_id is None else project.model(cfg.init_model_id)
        return replace(cfg.train, arch=erm["arch"], image_size=erm["image_size"])
    return cfg.train


def selection_key(metrics: dict, select_by: str) -> tuple[float, float]:
    """How a γ candidate is ranked: val WGA (then val accuracy), or val accuracy (then WGA) — the
    model-selection metric of the runs. Without val group labels, val accuracy."""
    val = metrics.get("val") or {}
    wga = val.get("worst_group_acc")
    acc = val.get("mean_acc") if val.get("mean_acc") is not None else -1.0
    if select_by in ("auto", "val_wga") and wga is not None:
        return (wga, acc)
    return (acc, wga if wga is not None else -1.0)


def _gkey(gammas: Sequence[float]) -> str:
    """The key of a γ vector in a search's ``done`` map: "3" when every class shares it, else "1,3"."""
    return f"{gammas[0]:g}" if len(set(gammas)) == 1 else ",".join(f"{g:g}" for g in gammas)


def gamma_label(row: dict) -> str:
    """How a γ-search row names its γ: "γ = 3" (every class) or "γ = (1, 3)" (per class)."""
    gs = row.get("gammas") or [row["gamma"]]
    return f"γ = {gs[0]:g}" if len(set(gs)) == 1 else "γ = (" + ", ".join(f"{g:g}" for g in gs) + ")"


def gamma_search(project: Project, cfg: RetrainConfig, candidates: Optional[list[dict]] = None,
                 done: Optional[dict[str, int]] = None, on_done=None, on_progress: Optional[ProgressFn] = None,
                 cancel: Optional[CancelToken] = None, name: Optional[str] = None) -> tuple[tuple[float, ...], list[dict]]:
    """Train one model per γ vector of ``cfg.grid`` (first seed) and return (the best γ vector, the table).

    ``done`` maps a γ key (``_gkey``) → model id of runs already finished (they are not trained again);
    ``on_done(key, model_id)`` is called after each new run, so a caller can remember it.
    """
    if not cfg.gamma_grid:
        raise ConfigError("gamma_search needs a non-empty gamma_grid")
    cands = accepted_candidates(project, cfg.method) if candidates is None else candidates
    base = _retrain_base(project, cfg)
    n = len(project.class_names)
    done = dict(done or {})
    seed = cfg.seeds[0]
    label = name or f"{cfg.method} retrain ({len(cands)} generated)"
    table = []
    for gammas in cfg.grid(n):
        key = _gkey(gammas)
        if key not in done:
            check_cancel(cancel, f"before the γ = {key} run")
            plan = generated_plan(project, replace(cfg, gammas=gammas, gamma_grid=()), cands)
            res = train_classifier(project, replace(base, seed=seed), role=cfg.method if cfg.method != "all" else "ddb",
                                   name=f"{label} γ={key} seed {seed}", make_active=False, on_progress=on_progress,
                                   cancel=cancel, plan=plan)
            done[key] = res.model_id
            if on_done:
                on_done(key, res.model_id)
        metrics = project.model(done[key])["metrics"]
        val = metrics.get("val") or {}
        table.append({"gammas": list(gammas), "gamma": gammas[0] if len(set(gammas)) == 1 else None,
                      "model_id": done[key], "val_wga": val.get("worst_group_acc"), "val_acc": val.get("mean_acc"),
                      "key": selection_key(metrics, base.select_by)})
    best = max(table, key=lambda r: r["key"])  # ties: the first listed
    for r in table:
        r["chosen"] = r is best
        del r["key"]
    return tuple(best["gammas"]), table


def small_subset_warnings(project: Project, cands: Sequence[dict], batch_size: int) -> list[str]:
    """Warnings for generated target classes with fewer accepted samples than one per batch.

    Each generated term of Eq. 8 is a mean over its subset of the batch, so a lone sample of class c
    in a batch weighs γ_c times as much as all the real samples of that batch together: a handful
    of images (often the ones whose class swap failed) can then steer the whole retraining.
    """
    n_total = project.sample_count("train") + len(cands)
    per_batch = n_total / max(1, batch_size)  # batches per epoch
    out = []
    for c, name in enumerate(project.class_names):
        n = sum(int(x["target_label"]) == c for x in cands)
        if 0 < n < per_batch:
            out.append(f"only {n} accepted sample{'s' if n != 1 else ''} of target class {name!r}, fewer than one per "
                       f"batch of {batch_size} (about {per_batch:.0f} batches per epoch): in a batch that holds one, "
                       f"it weighs γ_{c} times as much as the batch's real samples together (Eq. 8 takes a mean over "
                       f"each subset), so these few images can dominate retraining. Review them, or set a small γ "
                       f"for class {name!r}.")
    return out


def retrain(project: Project, cfg: RetrainConfig = RetrainConfig(), on_progress: Optional[ProgressFn] = None,
            cancel: Optional[CancelToken] = None, name: Optional[str] = None) -> MultiSeedResult:
    """DDB retraining, one model per seed; each is stored with its reports (resumable per epoch).

    With ``cfg.gamma_grid``, γ is chosen first (``gamma_search``) and its first-seed model is reused.
    """
    cands = accepted_candidates(project, cfg.method)
    base = _retrain_base(project, cfg)
    label = name or f"{cfg.method} retrain ({len(cands)} generated)"
    details: dict = {"warnings": [] if cfg.is_ordinary else small_subset_warnings(project, cands, base.batch_size)}
    for w in details["warnings"]:
        log.warning("retraining: %s", w)
    reuse: dict[int, int] = {}
    if cfg.gamma_grid:
        gammas, table = gamma_search(project, cfg, cands, on_progress=on_progress, cancel=cancel, name=name)
        cfg = replace(cfg, gammas=gammas, gamma_grid=())
        details["gamma_search"] = table
        reuse[cfg.seeds[0]] = next(r["model_id"] for r in table if r["chosen"])
    details["gammas"] = list(cfg.gammas) if cfg.gammas is not None else [1.0] * len(project.class_names)
    results = []
    for seed in cfg.seeds:
        check_cancel(cancel, f"before retraining seed {seed}")
        if seed in reuse:
            results.append(stored_result(project, reuse[seed]))
            continue
        plan = generated_plan(project, cfg, cands)
        results.append(train_classifier(project, replace(base, seed=seed), role=cfg.method if cfg.method != "all" else "ddb",
                                        name=f"{label} seed {seed}", make_active=False, on_progress=on_progress,
                                        cancel=cancel, plan=plan))
    return MultiSeedResult(cfg.method, [r.model_id for r in results], results, "val" if _uses_val(cfg.train) else "none",
                           {"n_generated": len(cands), "per_direction": _per_direction(cands), **details})


def stored_result(project: Project, model_id: int) -> TrainResult:
    """A stored model as a TrainResult (its reports from the database)."""
    from ..classifiers.evaluation import GroupReport

    m = project.model(model_id)
    reports = {k: GroupReport.from_dict(v) for k, v in m["metrics"].items() if k in ("train", "val", "test")
               and isinstance(v, dict)}
    return TrainResult(model_id, m.get("run_id"), reports, m["metrics"].get("history", []),
                       m["metrics"].get("best_epoch", 0), 0.0)


def _uses_val(tc: TrainConfig) -> bool:
    return tc.select_by in ("auto", "val_wga")
