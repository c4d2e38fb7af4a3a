"""Classifier training: the ERM model (and the group-balanced "oracle" used for calibration).

Consumes a project with imported samples and a ``TrainConfig``; produces a checkpoint in
``<project>/models/``, a ``models`` row with val/test group reports, a ``runs`` row, and (for the
active ERM model) the per-sample loss, softmax and prediction of every sample, computed on the
deterministic evaluation transform.

Training is resumable: the state after every epoch is kept in ``<project>/runs/<id>/state.pt``; a
new call with the same config continues an unfinished run from its last finished epoch, and gives
the same result as an uninterrupted run (each epoch's randomness is seeded from (seed, epoch)).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..project.errors import ConfigError, ModelError, ProjectError
from .evaluation import GroupReport, group_report
# upward: the training loop minimises the method's objective (Eq. 6-8, with γ = 1 for ERM); the objective is arithmetic on tensors and imports nothing of the package
from ..method.objective import balanced_loss
from ..project.progress import CancelToken, ProgressFn, ProgressTracker, check_cancel
from ..project.store import Project

log = logging.getLogger(__name__)

SAMPLERS = ("natural", "group_balanced")
SELECT_BY = ("auto", "val_wga", "val_acc", "last")
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """The classifier recipe. Defaults are the demo's ERM recipe (64 px, from scratch)."""

    arch: str = "resnet18"  # resnet18 | resnet34 | resnet50
    pretrained: bool = False  # start from ImageNet weights (needs the weights file, see models.py)
    pretrained_weights: Optional[str] = None  # explicit path of the ImageNet weights file
    image_size: int = 64  # input side in pixels (224 for Waterbirds/CelebA with ImageNet weights)
    epochs: int = 6  # a default for a user's data; the demo's recipe is ``demo.pipeline.DEMO_ERM`` (chosen on val)
    batch_size: int = 64
    optimizer: str = "adam"  # adam | sgd (momentum below)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    sampler: str = "natural"  # natural | group_balanced (upsamples groups: uses TRAIN group labels)
    select_by: str = "auto"  # auto = val_wga when val has group labels, else val_acc; or last epoch
    # val checks (model-selection points) per epoch, evenly spaced; the last is at the epoch's end.
    # More than 1 suits short fine-tuning (a retraining of 1–2 epochs), where one check per epoch
    # leaves model selection one or two noisy points to choose from.
    evals_per_epoch: int = 1
    augment: bool = True  # random resized crop + horizontal flip on train images
    seed: int = 0
    device: str = "auto"  # auto (the project's device setting; its default auto = CUDA when present) | cpu | cuda[:N]
    # the cosine schedule's length in epochs (None: ``epochs``); longer than ``epochs`` stops a run part-way
    # through its schedule, as JTT's identification model is the ERM model stopped at epoch T
    schedule_epochs: Optional[int] = None

    def __post_init__(self) -> None:
        from .models import ARCHITECTURES

        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ConfigError(f"schedule_epochs must be >= epochs ({self.epochs}), got {self.schedule_epochs}")

        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"arch must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}")
        for name in ("epochs", "batch_size", "image_size", "evals_per_epoch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pretrained and ARCHITECTURES[self.arch].weights is None:
            raise ConfigError(f"{self.arch} has no ImageNet weights: train it from scratch (pretrained off)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.select_by not in SELECT_BY:
            raise ConfigError(f"select_by must be one of {', '.join(SELECT_BY)}, got {self.select_by!r}")

    @property
    def uses_train_group_labels(self) -> bool:
        return self.sampler == "group_balanced"


@dataclass
class TrainPlan:
    """What a training run adds to the plain ERM recipe (retraining, JTT). Empty = plain training.

    ``extra_paths`` are generated images (absolute paths) with their labels and the index of their
    loss term: ``extra_terms[k] = c`` puts sample k in the generated subset of target class c,
    weighted by ``gammas[c]`` (Eq. 6–8, one γ per generated target class). ``gen_ratio`` > 0 makes
    every batch hold that share of generated samples. ``sample_weights`` (one per train sample)
    makes the sampler draw train samples with those relative weights (JTT's upweighting).
    ``init_state`` starts from a checkpoint's weights; ``reinit_head`` re-initialises the last layer.
    """

    extra_paths: list = field(default_factory=list)
    extra_labels: list[int] = field(default_factory=list)
    extra_attrs: list = field(default_factory=list)
    extra_terms: list[int] = field(default_factory=list)
    gammas: list[float] = field(default_factory=list)
    gen_ratio: float = 0.0
    sample_weights: Optional[list[float]] = None
    # with ``sample_weights`` of whole numbers: an epoch holds each train sample that many times, shuffled
    # (JTT's upsampling: n + (λ_up − 1)·|E| samples an epoch) instead of n weighted draws
    upsample: bool = False
    init_state: Optional[dict] = None
    reinit_head: bool = False
    describe: dict = field(default_factory=dict)  # stored in the run config (what was added, hashes)

    def __post_init__(self) -> None:
        if self.upsample and (self.sample_weights is None or any(w != int(w) or w < 1 for w in self.sample_weights)):
            raise ConfigError("upsample needs sample_weights of whole numbers >= 1 (how many times each sample appears)")
        if self.upsample and self.gen_ratio > 0:
            raise ConfigError("upsample and a generated share per batch (gen_ratio) cannot be combined")
        n = len(self.extra_paths)
        if not (len(self.extra_labels) == len(self.extra_terms) == n) or (self.extra_attrs and len(self.extra_attrs) != n):
            raise ConfigError("extra_paths, extra_labels, extra_terms (and extra_attrs) must have the same length")
        if not 0.0 <= self.gen_ratio < 1.0:
            raise ConfigError(f"gen_ratio must be in [0, 1), got {self.gen_ratio}")
        for c in self.extra_terms:  # -1: an ordinary training sample (part of L_train's mean)
            if not -1 <= c < len(self.gammas):
                raise ConfigError(f"generated sample in term {c}, but only {len(self.gammas)} gammas are given")
        for g in self.gammas:
            if not (g >= 0 and math.isfinite(g)):
                raise ConfigError(f"every gamma must be a finite number >= 0, got {g}")


class MixedBatchSampler:
    """Batches with a fixed share of generated samples: ``round(ratio * B)`` generated, the rest real.

    An epoch has as many batches as the real samples fill; generated samples are drawn without
    replacement and reshuffled when exhausted. Seeded by ``generator``.
    """

    def __init__(self, n_real: int, n_gen: int, batch_size: int, ratio: float, generator, real_weights=None):
        self.n_real, self.n_gen, self.bs, self.gen = n_real, n_gen, batch_size, generator
        self.k_gen = min(batch_size - 1, max(1, round(ratio * batch_size))) if n_gen else 0
        self.k_real = batch_size - self.k_gen
        self.real_weights = real_weights

    def __len__(self) -> int:
        return math.ceil(self.n_real / self.k_real)

    def __iter__(self):
        import torch

        if self.real_weights is not None:
            real = torch.multinomial(self.real_weights, self.n_real, replacement=True, generator=self.gen)
        else:
            real = torch.randperm(self.n_real, generator=self.gen)
        gen_pool: list[int] = []
        for b in range(len(self)):
            batch = real[b * self.k_real:(b + 1) * self.k_real].tolist()
            for _ in range(self.k_gen):
                if not gen_pool:
                    gen_pool = (torch.randperm(self.n_gen, generator=self.gen) + self.n_real).tolist()
                batch.append(gen_pool.pop())
            yield batch


@dataclass
class TrainResult:
    model_id: int
    run_id: int
    reports: dict[str, GroupReport]
    history: list[dict]
    best_epoch: float  # an int, or e.g. 1.5 with several val checks per epoch
    seconds: float
    resumed_from_epoch: int = 0


# ---------------------------------------------------------------------------------------------
# Data.


def split_dataset(project: Project, split: str, image_size: int, train: bool = False):
    """(ClassifierDataset, sample rows) of one split, in id order."""
    from ..data.imaging import ClassifierDataset, ImageSet

    rows = project.samples(split, "id, path, label, attr")
    images = ImageSet([project.dataset_path(r["path"]) for r in rows], image_size)
    return ClassifierDataset(images, [r["label"] for r in rows], train=train), rows


def report_for(project: Project, rows: list[dict], preds, split: str) -> GroupReport:
    attrs = [r["attr"] for r in rows]
    return group_report([r["label"] for r in rows], attrs, np.asarray(preds), project.class_names,
                        project.attr_names, project.group_counts("train"), split=split)


def evaluate_model(project: Project, model, image_size: int, splits=("val", "test"), device=None) -> dict[str, GroupReport]:
    from .models import predict

    reports = {}
    for split in splits:
        ds, rows = split_dataset(project, split, image_size)
        if not rows:
            continue
        logits = predict(model, ds, device=device)
        reports[split] = report_for(project, rows, logits.argmax(1).numpy(), split)
    return reports


def sample_scores(project: Project, model, image_size: int, device=None,
                  on_progress: Optional[ProgressFn] = None) -> list[tuple[int, float, list[float], int]]:
    """(sample id, cross-entropy, softmax, prediction) of every sample under ``model`` (the classifier view
    of ``imaging.classifier_view``); nothing is stored. Outputs that are not finite (NaN or infinite
    weights, or an overflow) are a ``ModelError`` naming how many samples and the first one."""
    import torch
    import torch.nn.functional as F

    from ..data.imaging import ClassifierDataset, ImageSet
    from .models import predict

    rows = project.samples(columns="id, path, label")
    ds = ClassifierDataset(ImageSet([project.dataset_path(r["path"]) for r in rows], image_size), [r["label"] for r in rows])
    tracker = ProgressTracker("score samples", len(rows), on_progress)
    logits = predict(model, ds, device=device, on_batch=tracker.update)
    labels = torch.tensor([r["label"] for r in rows])
    losses = F.cross_entropy(logits, labels, reduction="none")  # per sample, not the batch mean
    probs = logits.softmax(1)
    bad = (~torch.isfinite(losses) | ~torch.isfinite(probs).all(1)).nonzero().flatten().tolist()
    if bad:
        raise ModelError(f"the model's outputs are not finite (NaN or infinity) for {len(bad)} of {len(rows)} samples, "
                         f"e.g. {rows[bad[0]]['path']}: its weights hold NaN or infinity, or overflow; nothing was stored")
    return [(r["id"], losses[i].item(), probs[i].tolist(), int(probs[i].argmax())) for i, r in enumerate(rows)]


def store_scores(project: Project, model_id: int, rows) -> None:
    """Store the rows of ``sample_scores`` and Ψ_i of the model (Eq. 3), in the caller's transaction."""
    # upward: Ψ_i (Eq. 3) is a statistic of the scores just stored, kept in step with them in the same transaction
    from ..method.selection import store_class_stats

    project.store_sample_scores(model_id, rows)
    store_class_stats(project, model_id)  # Ψ_i (Eq. 3) of this model, from the softmax just stored


def score_samples(project: Project, model, model_id: int, image_size: int, device=None,
                  on_progress: Optional[ProgressFn] = None) -> None:
    """Compute and store every sample's loss, softmax and prediction under ``model``, and its Ψ_i."""
    rows = sample_scores(project, model, image_size, device=device, on_progress=on_progress)
    with project.write():
        store_scores(project, model_id, rows)


# ---------------------------------------------------------------------------------------------
# Training.


def _epoch_number(x: float):
    """1.0 → 1, 1.5 → 1.5 (an epoch number as stored in a resume state)."""
    return int(x) if float(x).is_integer() else x


def _score(report: GroupReport, select_by: str) -> tuple[float, float]:
    """Epoch selection key: the chosen metric, ties broken by the other (val WGA ties are common early)."""
    wga = report.worst_group_acc if report.worst_group_acc is not None else -1.0
    return (wga, report.mean_acc) if select_by == "val_wga" else (report.mean_acc, wga)


def stored_model(project: Project, role: str, cfg: TrainConfig) -> Optional[dict]:
    """A finished model of this role trained on the project's own data with exactly this recipe, or None.

    Training is seeded, so such a model is what training again would give. Fields added to the recipe
    since the model was stored are ignored; a model trained with a plan (generated samples, weights) is
    never matched (its config records the plan).
    """
    config = {**asdict(cfg), "role": role}
    for m in project.models(role):
        if "plan" in m["config"]:
            continue
        stored = {k: v for k, v in m["config"].items() if k in config}
        defaults = asdict(TrainConfig())  # a field added later, at its default, matches a model stored before it
        wanted = {k: v for k, v in config.items() if k in stored or k not in defaults or v != defaults[k]}
        if stored == wanted and "test" in m["metrics"]:
            return m
    return None


def train_classifier(project: Project, cfg: TrainConfig = TrainConfig(), *, role: str = "erm",
                     name: Optional[str] = None, make_active: Optional[bool] = None,
                     on_progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
                     plan: Optional[TrainPlan] = None) -> TrainResult:
    """Train a classifier on the project's train split (plus ``plan``'s additions); select the epoch on val; store it."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    plan = plan or TrainPlan()

    from ..project.device import place, resolve_device
    from .models import build_classifier, save_checkpoint

    # 1. Check inputs.
    class_names = project.class_names
    n_train = project.sample_count("train")
    if n_train == 0:
        raise ProjectError(f"project {project.root} has no training samples")
    train_rows_attr = project.samples("train", "attr")
    if cfg.uses_train_group_labels and any(r["attr"] is None for r in train_rows_attr):
        raise ConfigError("sampler 'group_balanced' needs the spurious attribute of every training sample; this dataset has none")
    val_has_groups = project.sample_count("val") > 0 and bool(project.group_counts("val"))
    select_by = cfg.select_by if cfg.select_by != "auto" else ("val_wga" if val_has_groups else "val_acc")
    if select_by in ("val_wga", "val_acc") and project.sample_count("val") == 0:
        select_by = "last"
    from ..project.settings import compute_device

    device = resolve_device(compute_device(project, cfg.device))  # auto: the project's device setting
    torch.set_flush_denormal(True)  # denormal floats can make CPU kernels many times slower; they carry no signal here
    config = {**asdict(cfg), "role": role}
    if plan.extra_paths or plan.sample_weights is not None or plan.init_state is not None:
        config["plan"] = {"n_generated": len(plan.extra_paths), "gammas": plan.gammas, "gen_ratio": plan.gen_ratio,
                          "reinit_head": plan.reinit_head, "weighted": plan.sample_weights is not None,
                          **({"upsampled": True} if plan.upsample else {}), **plan.describe}
    make_active = (role == "erm") if make_active is None else make_active

    # 2. Resume an unfinished run with the same config, or start one.
    previous = project.resumable_run(f"train-{role}", config)
    run_id = previous["id"] if previous else project.start_run(f"train-{role}", config)
    if previous:
        project.claim_run(run_id)
    state_path = project.run_dir(run_id) / "state.pt"
    t0 = time.monotonic()
    try:
        # 3. Data.
        from ..data.imaging import ClassifierDataset, ImageSet

        train_rows = project.samples("train", "id, path, label, attr")
        paths = [project.dataset_path(r["path"]) for r in train_rows] + [Path(p) for p in plan.extra_paths]
        labels = [r["label"] for r in train_rows] + list(plan.extra_labels)
        terms_all = torch.tensor([-1] * len(train_rows) + list(plan.extra_terms), dtype=torch.long)
        train_ds = ClassifierDataset(ImageSet(paths, cfg.image_size), labels, train=cfg.augment)
        val_ds, val_rows = split_dataset(project, "val", cfg.image_size)
        if plan.sample_weights is not None and len(plan.sample_weights) != len(train_rows):
            raise ConfigError(f"sample_weights has {len(plan.sample_weights)} entries for {len(train_rows)} train samples")

        # 4. Model and optimiser (seeded), restored from the resume state if any.
        torch.manual_seed(cfg.seed)
        model = build_classifier(cfg.arch, len(class_names), cfg.pretrained, cfg.pretrained_weights)
        if plan.init_state is not None:
            model.load_state_dict(plan.init_state)
        if plan.reinit_head:
            model.fc.reset_parameters()
        model = place(model, device, what=f"training ({role})")
        if cfg.optimizer == "adam":  # the fused kernel (CPU and CUDA): one pass over all parameters per step
            fused = device.type in ("cpu", "cuda") and all(p.dtype == torch.float32 for p in model.parameters())
            opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.schedule_epochs or cfg.epochs)
        start_epoch, history, best = 0, [], {"score": (-math.inf, -math.inf), "epoch": -1, "state": None}
        if state_path.exists():
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_epoch, history = int(state["epoch"]), json.loads(state["history"])
            best = {"score": tuple(state["best_score"].tolist()), "epoch": _epoch_number(float(state["best_epoch"])),
                    "state": state["best_model"]}
        resumed_from = start_epoch

        weights = None
        if cfg.sampler == "group_balanced":
            keys = [(r["label"], r["attr"]) for r in train_rows]
            counts = {k: keys.count(k) for k in set(keys)}
            weights = torch.tensor([1.0 / counts[k] for k in keys], dtype=torch.double)
        if plan.sample_weights is not None:
            w = torch.tensor(plan.sample_weights, dtype=torch.double)
            weights = w if weights is None else weights * w
        n_gen = len(plan.extra_paths)
        mixed = n_gen > 0 and plan.gen_ratio > 0

        def make_loader(gen):
            if mixed:
                bs = MixedBatchSampler(n_train, n_gen, cfg.batch_size, plan.gen_ratio, gen, weights)
                return DataLoader(train_ds, batch_sampler=bs, num_workers=0)
            if plan.upsample:  # each real sample its weight's number of times, plus every generated sample once
                real = torch.repeat_interleave(torch.arange(n_train), torch.tensor(plan.sample_weights).long())
                order = torch.cat([real, torch.arange(n_train, n_train + n_gen)])
                order = order[torch.randperm(len(order), generator=gen)].tolist()
                return DataLoader(train_ds, batch_size=cfg.batch_size, sampler=order, num_workers=0,
                                  drop_last=len(order) % cfg.batch_size == 1)
            if weights is not None:  # weighted draws of real samples, plus every generated sample once
                real = torch.multinomial(weights, n_train, replacement=True, generator=gen)
                order = torch.cat([real, torch.arange(n_train, n_train + n_gen)])
                order = order[torch.randperm(len(order), generator=gen)].tolist()
                return DataLoader(train_ds, batch_size=cfg.batch_size, sampler=order, num_workers=0,
                                  drop_last=len(order) % cfg.batch_size == 1)
            # A last batch of one sample cannot train batch norm (it raises): drop only that one.
            return DataLoader(train_ds, batch_size=cfg.batch_size, sampler=RandomSampler(train_ds, generator=gen),
                              num_workers=0, drop_last=len(train_ds) % cfg.batch_size == 1)

        # 5. Epochs, with ``evals_per_epoch`` val checks each (the last at the epoch's end).
        steps_per_epoch = len(make_loader(torch.Generator().manual_seed(0)))
        n_checks = min(cfg.evals_per_epoch, steps_per_epoch)
        check_at = {round(steps_per_epoch * (k + 1) / n_checks): k + 1 for k in range(n_checks)}  # step -> check no.
        loss_every = max(1, steps_per_epoch // max(10, n_checks))  # the loss curve's points: 10 per epoch at least

        def val_check(at: float) -> dict:
            """Evaluate on val at epoch ``at`` and keep the model if it is the best so far."""
            if not val_rows:
                out, score = {}, (at, 0.0)
            else:
                from .models import predict

                rep = report_for(project, val_rows, predict(model, val_ds, device=device).argmax(1).numpy(), "val")
                out = {"val_acc": rep.mean_acc, "val_wga": rep.worst_group_acc}
                score = _score(rep, select_by) if select_by != "last" else (at, 0.0)
            model.train()
            if score > best["score"]:
                best.update(score=score, epoch=at, state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            return out

        tracker = ProgressTracker(f"train {role}", cfg.epochs * steps_per_epoch, on_progress, start_epoch * steps_per_epoch)
        for epoch in range(start_epoch, cfg.epochs):
            te = time.monotonic()
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # augmentation randomness of this epoch
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            loader = make_loader(gen)
            model.train()
            total_loss, total_correct, seen = 0.0, 0, 0
            checks, loss_points, window = [], [], [0.0, 0]
            for step, (x, y, _idx) in enumerate(loader):
                check_cancel(cancel, f"during epoch {epoch + 1} of {role} training")
                x, y = x.to(device), y.to(device)
                logits = model(x)
                loss = balanced_loss(logits, y, terms_all[_idx].to(device), plan.gammas)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += loss.item() * len(y)
                window[0], window[1] = window[0] + loss.item() * len(y), window[1] + len(y)
                if (step + 1) % loss_every == 0 or step + 1 == steps_per_epoch:  # the mean loss since the last point
                    loss_points.append({"epoch": round(epoch + (step + 1) / steps_per_epoch, 4),
                                        "loss": window[0] / window[1]})
                    window = [0.0, 0]
                total_correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                tracker.update(epoch * steps_per_epoch + step + 1, f"epoch {epoch + 1}/{cfg.epochs} loss {total_loss / seen:.3f}")
                k = check_at.get(step + 1)
                if k is not None and k < n_checks:  # a check inside the epoch
                    at = round(epoch + k / n_checks, 3)
                    checks.append({"epoch": at, **val_check(at)})
            sched.step()
            entry = {"epoch": epoch + 1, "train_loss": total_loss / seen, "train_acc": total_correct / seen,
                     **val_check(epoch + 1)}
            if checks:
                entry["checks"] = checks
            entry["loss_points"] = loss_points
            entry["seconds"] = round(time.monotonic() - te, 2)
            history.append(entry)
            log.info("epoch %s: %s", epoch + 1, entry)
            tmp = state_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "epoch": epoch + 1, "history": json.dumps(history), "best_score": torch.tensor(best["score"], dtype=torch.float64),
                        "best_epoch": torch.tensor(float(best["epoch"]), dtype=torch.float64), "best_model": best["state"]}, tmp)
            tmp.replace(state_path)
            project.set_run_progress(run_id, epoch + 1, cfg.epochs)

        # 6. The selected epoch, evaluated; then everything stored in one transaction, the active model last.
        model.load_state_dict(best["state"])
        model.eval()
        model_no = len(project.models()) + 1
        ckpt = project.root / "models" / f"{role}-{model_no:03d}-run{run_id}.pt"
        reports = evaluate_model(project, model, cfg.image_size, device=device)
        metrics = {split: r.to_dict() for split, r in reports.items()}
        metrics.update(best_epoch=best["epoch"], select_by=select_by, history=history,
                       uses_train_group_labels=cfg.uses_train_group_labels)
        for r in reports.values():
            for w in r.warnings:
                log.warning("%s model: %s", role, w)
        scores = sample_scores(project, model, cfg.image_size, device=device, on_progress=on_progress) if make_active else None
        save_checkpoint(model, ckpt, arch=cfg.arch, num_classes=len(class_names), image_size=cfg.image_size)
        seconds = time.monotonic() - t0
        try:
            with project.write():
                model_id = project.add_model(name=name or f"{role} {cfg.arch} seed {cfg.seed}", role=role, path=ckpt,
                                             arch=cfg.arch, num_classes=len(class_names), image_size=cfg.image_size,
                                             metrics=metrics, config=config, run_id=run_id)
                if make_active:
                    store_scores(project, model_id, scores)
                    project.set_meta("active_erm_model", model_id)
                project.finish_run(run_id, "done", seconds=seconds, result={"model_id": model_id, "best_epoch": best["epoch"]})
        except BaseException:
            ckpt.unlink(missing_ok=True)
            raise
        state_path.unlink(missing_ok=True)
        return TrainResult(model_id, run_id, reports, history, best["epoch"], seconds, resumed_from)
    except BaseException as e:
        project.end_run_with(run_id, e, time.monotonic() - t0)
        raise


def load_erm_checkpoint(project: Project, path: str, arch: Optional[str] = None, image_size: int = 64,
                        name: Optional[str] = None, on_progress: Optional[ProgressFn] = None,
                        device: Optional[str] = None) -> int:
    """Register a user checkpoint as the project's ERM model: copy, evaluate, score samples (on ``device``,
    default the project's setting)."""

    from .models import load_classifier, save_checkpoint

    from ..project.settings import compute_device

    model, arch, n = load_classifier(path, arch, len(project.class_names), device=compute_device(project, device),
                                     what="erm load")
    if image_size < 1:
        raise ConfigError(f"image_size must be >= 1, got {image_size}")
    run_id = project.start_run("load-erm", {"path": str(path), "arch": arch, "image_size": image_size})
    t0 = time.monotonic()
    dest = project.root / "models" / f"erm-loaded-run{run_id}.pt"
    try:
        # everything computed first; then stored in one transaction, the active model switched last
        reports = evaluate_model(project, model, image_size)
        metrics = {split: r.to_dict() for split, r in reports.items()}
        metrics["source"] = str(path)
        scores = sample_scores(project, model, image_size, on_progress=on_progress)
        save_checkpoint(model, dest, arch=arch, num_classes=n, image_size=image_size)
        with project.write():
            model_id = project.add_model(name=name or f"erm loaded from {Path(path).name}", role="erm", path=dest,
                                         arch=arch, num_classes=n, image_size=image_size, metrics=metrics,
                                         config={"loaded_from": str(path), "image_size": image_size}, run_id=run_id)
            store_scores(project, model_id, scores)
            project.set_meta("active_erm_model", model_id)
            project.finish_run(run_id, "done", seconds=time.monotonic() - t0, result={"model_id": model_id})
    except BaseException as e:
        dest.unlink(missing_ok=True)
        project.end_run_with(run_id, e, time.monotonic() - t0)
        raise
    return model_id


def model_reports(project: Project, model_id: Optional[int] = None, recompute: bool = False) -> dict[str, GroupReport]:
    """Val/test reports of a stored model (recomputed from its checkpoint when asked)."""
    from .models import load_classifier

    m = project.model(model_id) if model_id is not None else project.active_erm()
    if not recompute and all(s in m["metrics"] for s in ("val", "test")):
        return {s: GroupReport.from_dict(m["metrics"][s]) for s in ("val", "test")}
    from ..project.settings import compute_device

    model, _arch, _n = load_classifier(project.project_path(m["path"]), m["arch"], m["num_classes"],
                                       device=compute_device(project), what="evaluation")
    reports = evaluate_model(project, model, m["image_size"])
    project.update_model_metrics(m["id"], {**m["metrics"], **{s: r.to_dict() for s, r in reports.items()}})
    return reports
