"""The baselines DDB is compared with, on the same data and training code; each result states the
group labels it used, as the paper's Table 1 does.

- **JTT** (Just Train Twice): an early-stopped ERM (``jtt_epochs`` = T) finds the error set of the
  training split; a new model trains with the error set upweighted by ``lambda_up``. No group
  labels (val groups only for model selection). An empty error set is reported as such (the run is
  then plain ERM).
- **DFR** (Deep Feature Reweighting): the ERM's last layer refitted (logistic regression) on
  group-balanced val features — uses **val** group labels.
- **Oracle**: group-balanced sampling of the train split — uses **train** group labels; a
  reference, not a method.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np

from ..errors import ConfigError, ProjectError
from ..models import features
from ..progress import check_cancel
from ..store import Project
from ..training import TrainConfig, TrainPlan, TrainResult, train_classifier
from .retraining import MultiSeedResult, _erm_state, _uses_val

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JTTConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # the final model's recipe (from scratch)
    jtt_epochs: int = 1  # T: epochs of the early-stopped identification model
    lambda_up: float = 20.0  # upweight of the error set
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if self.jtt_epochs < 1:
            raise ConfigError(f"jtt_epochs must be >= 1, got {self.jtt_epochs}")
        if not (self.lambda_up >= 1 and math.isfinite(self.lambda_up)):
            raise ConfigError(f"lambda_up must be >= 1, got {self.lambda_up}")


def jtt_error_set(project: Project, cfg: JTTConfig, on_progress=None, cancel=None) -> tuple[list[int], int]:
    """(indices into the train split of the error set, id of the identification model)."""
    from ..models import load_classifier, predict
    from ..training import split_dataset, stored_model

    ident_cfg = replace(cfg.train, epochs=cfg.jtt_epochs, select_by="last", seed=cfg.train.seed)
    m = stored_model(project, "jtt-id", ident_cfg)  # seeded: the same recipe gives the same model, so reuse it
    if m is None:
        res = train_classifier(project, ident_cfg, role="jtt-id", name=f"JTT identification ({cfg.jtt_epochs} epochs)",
                               make_active=False, on_progress=on_progress, cancel=cancel)
        m = project.model(res.model_id)
    model, _a, _n = load_classifier(project.project_path(m["path"]), m["arch"], m["num_classes"])
    ds, rows = split_dataset(project, "train", m["image_size"])
    preds = predict(model, ds).argmax(1).numpy()
    errors = [k for k, r in enumerate(rows) if preds[k] != r["label"]]
    return errors, m["id"]


def run_jtt(project: Project, cfg: JTTConfig = JTTConfig(), on_progress=None, cancel=None,
            extra: Optional[TrainPlan] = None, role: str = "jtt") -> MultiSeedResult:
    """JTT; with ``extra`` (e.g. SCGS images), those are added to the upweighted training set."""
    errors, ident_id = jtt_error_set(project, cfg, on_progress, cancel)
    n_train = project.sample_count("train")
    details = {"error_set": len(errors), "identification_model": ident_id, "lambda_up": cfg.lambda_up,
               "jtt_epochs": cfg.jtt_epochs}
    if not errors:
        details["note"] = ("the error set is empty: the identification model classifies every training image "
                           "correctly, so JTT reduces to ERM")
        log.warning("JTT: %s", details["note"])
    weights = [1.0] * n_train
    for k in errors:
        weights[k] = cfg.lambda_up
    results = []
    for seed in cfg.seeds:
        base = extra or TrainPlan()
        plan = replace(base, sample_weights=weights, describe={**base.describe, "jtt": details})
        results.append(train_classifier(project, replace(cfg.train, seed=seed), role=role,
                                        name=f"{role.upper()} λ={cfg.lambda_up:g} T={cfg.jtt_epochs}"
                                             f"{f' +{len(base.extra_paths)} generated' if base.extra_paths else ''} seed {seed}",
                                        make_active=False, on_progress=on_progress, cancel=cancel, plan=plan))
    return MultiSeedResult(role, [r.model_id for r in results], results,
                           "val" if _uses_val(cfg.train) else "none", details)


def run_oracle(project: Project, cfg: TrainConfig = TrainConfig(), seeds: Sequence[int] = (0,), on_progress=None,
               cancel=None) -> MultiSeedResult:
    """Group-balanced sampling with train group labels (an upper reference, not a method)."""
    results = [train_classifier(project, replace(cfg, sampler="group_balanced", seed=s), role="oracle",
                                name=f"oracle (group-balanced, train groups) seed {s}", make_active=False,
                                on_progress=on_progress, cancel=cancel) for s in seeds]
    return MultiSeedResult("oracle", [r.model_id for r in results], results, "train+val")


def run_dfr(project: Project, seeds: Sequence[int] = (0,), Cs: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
            on_progress=None, cancel=None) -> MultiSeedResult:
    """DFR: refit the ERM's last layer on group-balanced val features (val group labels).

    C (inverse L2 strength) is chosen by WGA on one half of val after fitting on the other half;
    the final layer is fitted on all of val, with each group weighted to the same total.
    """
    import torch

    from ..models import build_classifier, save_checkpoint
    from ..training import evaluate_model, split_dataset

    state, erm = _erm_state(project)
    model = build_classifier(erm["arch"], erm["num_classes"])
    model.load_state_dict(state)
    model.eval()
    ds, rows = split_dataset(project, "val", erm["image_size"])
    if not rows or any(r["attr"] is None for r in rows):
        raise ProjectError("DFR needs val samples with group labels (the spurious attribute); this project has none")
    feats = features(model, ds)
    y = np.array([r["label"] for r in rows])
    g = np.array([r["label"] * 1000 + r["attr"] for r in rows])
    results = []
    for seed in seeds:
        check_cancel(cancel, "during DFR")
        t0 = time.monotonic()
        rng = np.random.default_rng(seed)
        half = rng.permutation(len(y)) < len(y) // 2
        best = (-1.0, Cs[0])
        for C in Cs:
            clf = _fit_balanced(feats[half], y[half], g[half], C, seed)
            pred = clf.predict(feats[~half])
            accs = [np.mean(pred[g[~half] == k] == y[~half][g[~half] == k]) for k in np.unique(g[~half])]
            best = max(best, (float(min(accs)), C))
        clf = _fit_balanced(feats, y, g, best[1], seed)
        head = build_classifier(erm["arch"], erm["num_classes"])
        head.load_state_dict(state)
        with torch.no_grad():
            w = torch.tensor(clf.coef_, dtype=torch.float32)
            b = torch.tensor(clf.intercept_, dtype=torch.float32)
            if erm["num_classes"] == 2 and w.shape[0] == 1:  # binary: logits (0, w·x + b)
                w, b = torch.cat([torch.zeros_like(w), w]), torch.cat([torch.zeros_like(b), b])
            head.fc.weight.copy_(w)
            head.fc.bias.copy_(b)
        run_id = project.start_run("train-dfr", {"seed": seed, "C": best[1], "erm_model_id": erm["id"]})
        ckpt = project.root / "models" / f"dfr-{len(project.models()) + 1:03d}-run{run_id}.pt"
        save_checkpoint(head, ckpt, arch=erm["arch"], num_classes=erm["num_classes"], image_size=erm["image_size"])
        reports = evaluate_model(project, head, erm["image_size"])
        metrics = {s: r.to_dict() for s, r in reports.items()}
        metrics.update(C=best[1], half_val_wga=best[0], uses_val_group_labels=True,
                       note="val is DFR's training data: report its test figures")
        mid = project.add_model(name=f"DFR (val groups, C={best[1]:g}) seed {seed}", role="dfr", path=ckpt,
                                arch=erm["arch"], num_classes=erm["num_classes"], image_size=erm["image_size"],
                                metrics=metrics, config={"C": best[1], "seed": seed, "erm_model_id": erm["id"]},
                                run_id=run_id)
        seconds = time.monotonic() - t0
        project.finish_run(run_id, "done", seconds=seconds, result={"model_id": mid})
        results.append(TrainResult(mid, run_id, reports, [], 0, seconds))
    return MultiSeedResult("dfr", [r.model_id for r in results], results, "val")


def _fit_balanced(x, y, g, C, seed):
    from sklearn.linear_model import LogisticRegression

    groups, counts = np.unique(g, return_counts=True)
    w = np.array([1.0 / counts[np.searchsorted(groups, k)] for k in g])
    w *= len(w) / w.sum()
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    clf.fit((x - mean) / std, y, sample_weight=w)
    # fold the standardisation into the linear layer so the checkpoint is a plain ResNet
    clf.coef_ = clf.coef_ / std
    clf.intercept_ = clf.intercept_ - (clf.coef_ * mean).sum(1)
    return clf
