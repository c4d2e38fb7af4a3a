"""The baselines DDB is compared with, on the same data and training code; each result states the
group labels it used, as the paper's Table 1 does.

- **JTT** (Just Train Twice): an early-stopped ERM (``jtt_epochs`` = T, with the final model's
  seed) finds the error set of the training split; a new model trains with the error set upweighted
  by ``lambda_up``. No group labels (val groups only for model selection, and for choosing T and
  λ_up on val as the JTT paper does: ``jtt_search``). An empty error set is reported as such (the run
  is then plain ERM).
- **DFR** (Deep Feature Reweighting, DFR^Tr_Val): an ERM model's last layer refitted on its
  features of val, as the DFR paper does it — L1-regularised logistic regression on group-balanced
  subsets (every group subsampled to the smallest), C chosen on a held-out half of val, the final
  weights averaged over several random balanced subsets of all of val. Uses **val** group labels.
- **Oracle**: group-balanced sampling of the train split — uses **train** group labels; a
  reference, not a method.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Sequence

import numpy as np

from ..project.errors import ConfigError, ProjectError
from ..classifiers.models import features
from ..project.progress import check_cancel
from ..project.store import Project
from ..classifiers.training import TrainConfig, TrainPlan, TrainResult, train_classifier
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
        if not (self.lambda_up >= 1 and math.isfinite(self.lambda_up) and self.lambda_up == int(self.lambda_up)):
            raise ConfigError(f"lambda_up must be a whole number >= 1 (each error-set sample appears that many times "
                              f"an epoch), got {self.lambda_up}")


def jtt_error_set(project: Project, cfg: JTTConfig, on_progress=None, cancel=None) -> tuple[list[int], int]:
    """(indices into the train split of the error set, id of the identification model); the
    identification model is trained with ``cfg.train``'s seed (each JTT seed finds its own errors)."""
    from ..classifiers.models import load_classifier, predict
    from ..project.settings import compute_device
    from ..classifiers.training import split_dataset, stored_model

    # ERM's recipe stopped at epoch T: its learning-rate schedule is ERM's whole one, not one annealed over T epochs
    ident_cfg = replace(cfg.train, epochs=cfg.jtt_epochs, schedule_epochs=max(cfg.train.epochs, cfg.jtt_epochs),
                        select_by="last", seed=cfg.train.seed)
    m = stored_model(project, "jtt-id", ident_cfg)  # seeded: the same recipe gives the same model, so reuse it
    if m is None:
        res = train_classifier(project, ident_cfg, role="jtt-id", name=f"JTT identification ({cfg.jtt_epochs} epochs)",
                               make_active=False, on_progress=on_progress, cancel=cancel)
        m = project.model(res.model_id)
    model, _a, _n = load_classifier(project.project_path(m["path"]), m["arch"], m["num_classes"],
                                    device=compute_device(project, cfg.train.device), what="jtt identification")
    ds, rows = split_dataset(project, "train", m["image_size"])
    preds = predict(model, ds).argmax(1).numpy()
    errors = [k for k, r in enumerate(rows) if preds[k] != r["label"]]
    return errors, m["id"]


def run_jtt(project: Project, cfg: JTTConfig = JTTConfig(), on_progress=None, cancel=None,
            extra: Optional[TrainPlan] = None, role: str = "jtt") -> MultiSeedResult:
    """JTT, one model per seed, each upweighting the error set of its own seed's identification model;
    with ``extra`` (e.g. SCGS images), those are added to the upweighted training set as ordinary samples."""
    from .retraining import stored_result

    n_train = project.sample_count("train")
    results, per_seed = [], {}
    for seed in cfg.seeds:
        scfg = replace(cfg, train=replace(cfg.train, seed=seed), seeds=(seed,))
        stored = _stored_jtt(project, role, scfg) if extra is None else None
        if stored is not None:  # seeded: training again would give this model
            results.append(stored_result(project, stored["id"]))
            per_seed[str(seed)] = stored["config"]["plan"]["jtt"]
            continue
        errors, ident_id = jtt_error_set(project, scfg, on_progress, cancel)
        details = {"error_set": len(errors), "identification_model": ident_id, "lambda_up": cfg.lambda_up,
                   "jtt_epochs": cfg.jtt_epochs}
        if not errors:
            details["note"] = ("the error set is empty: the identification model classifies every training image "
                               "correctly, so JTT reduces to ERM")
            log.warning("JTT: %s", details["note"])
        # the JTT paper's upsampling: each error-set sample λ_up times an epoch (n + (λ_up − 1)·|E| samples)
        weights = [1] * n_train
        for k in errors:
            weights[k] = int(cfg.lambda_up)
        base = extra or TrainPlan()
        plan = replace(base, sample_weights=weights, upsample=True, describe={**base.describe, "jtt": details})
        results.append(train_classifier(project, scfg.train, role=role,
                                        name=f"{role.upper()} λ={cfg.lambda_up:g} T={cfg.jtt_epochs}"
                                             f"{f' +{len(base.extra_paths)} generated' if base.extra_paths else ''} seed {seed}",
                                        make_active=False, on_progress=on_progress, cancel=cancel, plan=plan))
        per_seed[str(seed)] = details
    first = per_seed[str(cfg.seeds[0])]
    return MultiSeedResult(role, [r.model_id for r in results], results,
                           "val" if _uses_val(cfg.train) else "none", {**first, "per_seed": per_seed})


def _stored_jtt(project: Project, role: str, cfg: JTTConfig) -> Optional[dict]:
    """A finished JTT model (no added images) of this role, recipe (with its seed), T and λ_up, or None."""
    from dataclasses import asdict

    wanted = {**asdict(cfg.train), "role": role}
    for m in project.models(role):
        conf = m["config"]
        plan = conf.get("plan") or {}
        jtt = plan.get("jtt") or {}
        if (jtt.get("jtt_epochs") == cfg.jtt_epochs and jtt.get("lambda_up") == cfg.lambda_up
                and plan.get("upsampled")  # a model of the earlier weighted draws is not this JTT
                and not plan.get("n_generated") and "test" in m["metrics"]
                and all(conf.get(k) == v for k, v in wanted.items() if k in conf)):
            return m
    return None


def jtt_search(project: Project, cfg: JTTConfig, epochs_grid: Sequence[int], lambda_grid: Sequence[float],
               done: Optional[dict[str, int]] = None, on_done=None, on_progress=None, cancel=None,
               extra: Optional[TrainPlan] = None, role: str = "jtt") -> tuple[tuple[int, float], list[dict]]:
    """Choose JTT's T and λ_up on val, as the JTT paper does: one run per (T, λ_up) with the first
    seed; the best by the runs' model-selection metric (val WGA, then val accuracy) wins.

    Returns ((T, λ_up), table). ``done`` maps "T,λ" → model id of finished runs (not trained again);
    ``on_done(key, model_id)`` is called after each new run.
    """
    from .retraining import selection_key

    if not epochs_grid or not lambda_grid:
        raise ConfigError("jtt_search needs at least one T and one λ_up")
    done = dict(done or {})
    table = []
    for T in epochs_grid:
        for lam in lambda_grid:
            key = f"{int(T)},{lam:g}"
            if key not in done:
                check_cancel(cancel, f"before the JTT T={T} λ={lam:g} run")
                res = run_jtt(project, replace(cfg, jtt_epochs=int(T), lambda_up=float(lam), seeds=cfg.seeds[:1]),
                              on_progress, cancel, extra, role)
                done[key] = res.model_ids[0]
                if on_done:
                    on_done(key, done[key])
            m = project.model(done[key])
            val = m["metrics"].get("val") or {}
            table.append({"T": int(T), "lambda_up": float(lam), "model_id": done[key],
                          "error_set": (m["config"].get("plan") or {}).get("jtt", {}).get("error_set"),
                          "val_wga": val.get("worst_group_acc"), "val_acc": val.get("mean_acc"),
                          "key": selection_key(m["metrics"], cfg.train.select_by)})
    best = max(table, key=lambda r: r["key"])  # ties: the first listed
    for r in table:
        r["chosen"] = r is best
        del r["key"]
    return (best["T"], best["lambda_up"]), table


def run_oracle(project: Project, cfg: TrainConfig = TrainConfig(), seeds: Sequence[int] = (0,), on_progress=None,
               cancel=None) -> MultiSeedResult:
    """Group-balanced sampling with train group labels (an upper reference, not a method)."""
    results = [train_classifier(project, replace(cfg, sampler="group_balanced", seed=s), role="oracle",
                                name=f"oracle (group-balanced, train groups) seed {s}", make_active=False,
                                on_progress=on_progress, cancel=cancel) for s in seeds]
    return MultiSeedResult("oracle", [r.model_id for r in results], results, "train+val")


def run_jtt_tuned(project: Project, cfg: JTTConfig, epochs_grid: Sequence[int], lambda_grid: Sequence[float],
                  on_progress=None, cancel=None, extra: Optional[TrainPlan] = None, role: str = "jtt") -> MultiSeedResult:
    """``jtt_search`` on the first seed, then the other seeds with the chosen (T, λ_up); the first seed's
    model is the chosen search run."""
    from .retraining import stored_result

    (T, lam), table = jtt_search(project, cfg, epochs_grid, lambda_grid, on_progress=on_progress, cancel=cancel,
                                 extra=extra, role=role)
    chosen = replace(cfg, jtt_epochs=T, lambda_up=lam)
    first = next(r["model_id"] for r in table if r["chosen"])
    rest = run_jtt(project, replace(chosen, seeds=cfg.seeds[1:]), on_progress, cancel, extra, role) if cfg.seeds[1:] else None
    results = [stored_result(project, first)] + (rest.results if rest else [])
    return MultiSeedResult(role, [r.model_id for r in results], results, "val" if _uses_val(cfg.train) else "none",
                           {"jtt_epochs": T, "lambda_up": lam, "search": table,
                            "per_seed": (rest.details["per_seed"] if rest else {})})


DFR_CS = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # the DFR paper's grid of inverse L1 strengths


def run_dfr(project: Project, seeds: Sequence[int] = (0,), Cs: Sequence[float] = DFR_CS, n_fits: int = 20,
            erm_ids: Optional[Mapping[int, int]] = None, on_progress=None, cancel=None,
            device: Optional[str] = None) -> MultiSeedResult:
    """DFR^Tr_Val, as its paper does it, on the ERM model of each seed (``erm_ids``: seed → model id;
    default the active ERM model for every seed).

    The ERM's features of val are standardised; C is chosen by the mean WGA on a random half of val
    of ``n_fits`` fits, each on a group-balanced subset of the other half; the final last layer is the
    mean of ``n_fits`` fits on group-balanced subsets of all of val (each group subsampled to the
    smallest). Val is DFR's training data, so only its test figures count.
    """
    import torch

    from ..project.device import place
    from ..classifiers.models import build_classifier, save_checkpoint
    from ..project.settings import compute_device
    from ..classifiers.training import evaluate_model, split_dataset

    device = compute_device(project, device)

    if not Cs or n_fits < 1:
        raise ConfigError("DFR needs at least one C and n_fits >= 1")
    results = []
    for seed in seeds:
        check_cancel(cancel, "during DFR")
        t0 = time.monotonic()
        state, erm = _erm_state(project, (erm_ids or {}).get(seed))
        model = build_classifier(erm["arch"], erm["num_classes"])
        model.load_state_dict(state)
        model = place(model, device, what="dfr features").eval()
        ds, rows = split_dataset(project, "val", erm["image_size"])
        if not rows or any(r["attr"] is None for r in rows):
            raise ProjectError("DFR needs val samples with group labels (the spurious attribute); this project has none")
        feats = features(model, ds)
        y = np.array([r["label"] for r in rows])
        g = np.array([r["label"] * 1000 + r["attr"] for r in rows])
        if len(np.unique(y)) < 2:
            raise ProjectError("DFR needs val samples of at least two classes")
        rng = np.random.default_rng(seed)
        tuning = []
        for C in Cs:
            wgas = []
            for _ in range(n_fits):
                half = rng.permutation(len(y)) < len(y) // 2
                a, b = np.nonzero(half)[0], np.nonzero(~half)[0]
                pick = a[_balanced(g[a], rng)]
                if len(np.unique(y[pick])) < 2:
                    continue
                coef, icpt = _fit_l1(feats[pick], y[pick], C, seed)
                pred = _predict(feats[b], coef, icpt)
                wgas.append(min(float(np.mean(pred[g[b] == k] == y[b][g[b] == k])) for k in np.unique(g[b])))
            tuning.append({"C": C, "half_val_wga": float(np.mean(wgas)) if wgas else -1.0, "fits": len(wgas)})
        best = max(tuning, key=lambda t: t["half_val_wga"])  # ties: the first (largest C) listed
        fits = [_fit_l1(feats[idx], y[idx], best["C"], seed) for idx in (_balanced(g, rng) for _ in range(n_fits))]
        coef, icpt = np.mean([f[0] for f in fits], axis=0), np.mean([f[1] for f in fits], axis=0)
        head = build_classifier(erm["arch"], erm["num_classes"])
        head.load_state_dict(state)
        with torch.no_grad():
            w = torch.tensor(coef, dtype=torch.float32)
            b = torch.tensor(icpt, dtype=torch.float32)
            if erm["num_classes"] == 2 and w.shape[0] == 1:  # binary: logits (0, w·x + b)
                w, b = torch.cat([torch.zeros_like(w), w]), torch.cat([torch.zeros_like(b), b])
            head.fc.weight.copy_(w)
            head.fc.bias.copy_(b)
        config = {"C": best["C"], "seed": seed, "erm_model_id": erm["id"], "n_fits": n_fits, "Cs": list(Cs),
                  "penalty": "l1", "balanced_subsets": True}
        run_id = project.start_run("train-dfr", config)
        ckpt = project.root / "models" / f"dfr-{len(project.models()) + 1:03d}-run{run_id}.pt"
        save_checkpoint(head, ckpt, arch=erm["arch"], num_classes=erm["num_classes"], image_size=erm["image_size"])
        reports = evaluate_model(project, place(head, device, what="dfr evaluation").eval(), erm["image_size"])
        metrics = {s: r.to_dict() for s, r in reports.items()}
        metrics.update(C=best["C"], half_val_wga=best["half_val_wga"], tuning=tuning, uses_val_group_labels=True,
                       note="val is DFR's training data: report its test figures")
        mid = project.add_model(name=f"DFR (val groups, L1, C={best['C']:g}) on model {erm['id']} seed {seed}",
                                role="dfr", path=ckpt, arch=erm["arch"], num_classes=erm["num_classes"],
                                image_size=erm["image_size"], metrics=metrics, config=config, run_id=run_id)
        seconds = time.monotonic() - t0
        project.finish_run(run_id, "done", seconds=seconds, result={"model_id": mid})
        results.append(TrainResult(mid, run_id, reports, [], 0, seconds))
    return MultiSeedResult("dfr", [r.model_id for r in results], results, "val",
                           {"C": [project.model(r.model_id)["metrics"]["C"] for r in results]})


def _balanced(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a group-balanced subset: every group subsampled (without replacement) to the smallest."""
    groups, counts = np.unique(g, return_counts=True)
    n = int(counts.min())
    return np.sort(np.concatenate([rng.choice(np.nonzero(g == k)[0], n, replace=False) for k in groups]))


def _fit_l1(x, y, C, seed) -> tuple[np.ndarray, np.ndarray]:
    """L1 logistic regression on standardised features; (coef, intercept) in the raw feature space."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(l1_ratio=1.0, C=C, solver="liblinear", max_iter=1000, random_state=seed)
    clf.fit((x - mean) / std, y)
    coef = clf.coef_ / std  # fold the standardisation into the linear layer so the checkpoint is a plain ResNet
    return coef, clf.intercept_ - (coef * mean).sum(1)


def _predict(x, coef, icpt) -> np.ndarray:
    scores = x @ coef.T + icpt
    return (scores[:, 0] > 0).astype(int) if coef.shape[0] == 1 else scores.argmax(1)
