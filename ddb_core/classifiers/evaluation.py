"""Group evaluation: per-group accuracy with counts, worst-group accuracy, both averages.

Consumes labels, spurious attributes and predictions of one split (numpy arrays) and produces a
``GroupReport``. Conventions (see METHOD-NOTES):

- A group is a (class, spurious attribute) pair. Every group is reported with its count; groups
  with no sample in the split are reported with n = 0 and left out of the minimum.
- "Average accuracy" is reported two ways, labelled: ``mean_acc`` is the plain mean over the
  split's samples (WILDS ``acc_avg``); ``train_weighted_acc`` weights each group's accuracy by
  that group's share of the *training* set (JTT/DFR convention, usually quoted for Waterbirds).
- ``collapsed`` is set when every prediction is the same class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class GroupStat:
    label: int
    attr: Optional[int]
    name: str
    n: int
    correct: int

    @property
    def acc(self) -> Optional[float]:
        return self.correct / self.n if self.n else None


@dataclass(frozen=True)
class GroupReport:
    split: str
    n: int
    mean_acc: float  # plain mean over samples (WILDS acc_avg)
    train_weighted_acc: Optional[float]  # group accuracies weighted by train group shares
    worst_group_acc: Optional[float]  # min over non-empty groups; None without group labels
    worst_group: Optional[str]
    groups: list[GroupStat]
    class_acc: dict[str, float]
    empty_groups: list[str]
    predicted_counts: dict[str, int]
    collapsed: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groups"] = [{**asdict(g), "acc": g.acc} for g in self.groups]
        return d

    @staticmethod
    def from_dict(d: dict) -> "GroupReport":
        d = dict(d)
        d["groups"] = [GroupStat(g["label"], g["attr"], g["name"], g["n"], g["correct"]) for g in d["groups"]]
        return GroupReport(**d)


def group_report(labels: Sequence[int], attrs: Optional[Sequence[Optional[int]]], preds: Sequence[int],
                 class_names: Sequence[str], attr_names: Sequence[str] = (),
                 train_group_counts: Optional[dict[tuple[int, int], int]] = None, split: str = "test") -> GroupReport:
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    if y.shape != p.shape:
        raise ValueError(f"labels and preds differ in length: {y.shape[0]} vs {p.shape[0]}")
    correct = y == p
    n = int(y.shape[0])
    has_groups = attrs is not None and len(attr_names) > 0 and all(a is not None for a in attrs)
    groups: list[GroupStat] = []
    if has_groups:
        a = np.asarray(attrs, dtype=np.int64)
        for ci, cname in enumerate(class_names):
            for ai, aname in enumerate(attr_names):
                sel = (y == ci) & (a == ai)
                groups.append(GroupStat(ci, ai, f"{cname}/{aname}", int(sel.sum()), int(correct[sel].sum())))
    class_acc = {}
    for ci, cname in enumerate(class_names):
        sel = y == ci
        if sel.any():
            class_acc[cname] = float(correct[sel].mean())
    nonempty = [g for g in groups if g.n > 0]
    worst = min(nonempty, key=lambda g: g.acc) if nonempty else None
    weighted = None
    if nonempty and train_group_counts:
        w = np.array([train_group_counts.get((g.label, g.attr), 0) for g in nonempty], dtype=np.float64)
        if w.sum() > 0:
            weighted = float((w * np.array([g.acc for g in nonempty])).sum() / w.sum())
    pred_counts = {cname: int((p == ci).sum()) for ci, cname in enumerate(class_names)}
    collapsed = n > 0 and len(class_names) > 1 and max(pred_counts.values()) == n
    warnings = []
    if collapsed:
        only = max(pred_counts, key=pred_counts.get)
        warnings.append(f"predictions collapsed to one class ({only!r}) on {split}: check the learning rate and class balance")
    empty = [g.name for g in groups if g.n == 0]
    if empty:
        warnings.append(f"groups with no {split} sample, left out of the worst group: {', '.join(empty)}")
    return GroupReport(
        split=split, n=n, mean_acc=float(correct.mean()) if n else 0.0, train_weighted_acc=weighted,
        worst_group_acc=worst.acc if worst else None, worst_group=worst.name if worst else None,
        groups=groups, class_acc=class_acc, empty_groups=empty, predicted_counts=pred_counts,
        collapsed=collapsed, warnings=warnings,
    )


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def report_markdown(report: GroupReport, title: Optional[str] = None) -> str:
    """A Markdown table of one report: per-group accuracy with counts, then the summary lines."""
    lines = [f"### {title or report.split}", ""]
    if report.groups:
        lines += ["| group | n | correct | accuracy % |", "| --- | ---: | ---: | ---: |"]
        for g in report.groups:
            lines.append(f"| {g.name} | {g.n} | {g.correct} | {_pct(g.acc)} |")
        lines.append("")
    lines.append(f"- worst-group accuracy: **{_pct(report.worst_group_acc)}%** ({report.worst_group or 'no group labels'})")
    lines.append(f"- average accuracy, plain mean over {report.n} samples: {_pct(report.mean_acc)}%")
    if report.train_weighted_acc is not None:
        lines.append(f"- average accuracy, weighted by train group shares: {_pct(report.train_weighted_acc)}%")
    for w in report.warnings:
        lines.append(f"- warning: {w}")
    return "\n".join(lines) + "\n"
