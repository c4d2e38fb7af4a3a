import numpy as np
import pytest

from ddb_core.classifiers.evaluation import GroupReport, group_report, report_markdown

CLASSES, ATTRS = ["landbird", "waterbird"], ["land", "water"]


def hand_report(y, a, p, train_counts):
    """An independent computation with plain loops."""
    acc = {}
    for g in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        idx = [i for i in range(len(y)) if (y[i], a[i]) == g]
        if idx:
            acc[g] = sum(1 for i in idx if y[i] == p[i]) / len(idx)
    worst = min(acc, key=acc.get)
    plain = sum(1 for i in range(len(y)) if y[i] == p[i]) / len(y)
    total = sum(train_counts[g] for g in acc)
    weighted = sum(acc[g] * train_counts[g] / total for g in acc)
    return acc, worst, plain, weighted


def test_group_report_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300).tolist()
    a = rng.integers(0, 2, 300).tolist()
    p = [yi if rng.uniform() < (0.9 if yi == ai else 0.4) else 1 - yi for yi, ai in zip(y, a)]
    train_counts = {(0, 0): 1749, (0, 1): 92, (1, 0): 28, (1, 1): 509}
    rep = group_report(y, a, p, CLASSES, ATTRS, train_counts)
    acc, worst, plain, weighted = hand_report(y, a, p, train_counts)
    by = {(g.label, g.attr): g for g in rep.groups}
    for g, v in acc.items():
        assert by[g].acc == pytest.approx(v)
        assert by[g].n == sum(1 for i in range(300) if (y[i], a[i]) == g)
    assert rep.worst_group == f"{CLASSES[worst[0]]}/{ATTRS[worst[1]]}"
    assert rep.worst_group_acc == pytest.approx(acc[worst])
    assert rep.mean_acc == pytest.approx(plain)
    assert rep.train_weighted_acc == pytest.approx(weighted)
    assert GroupReport.from_dict(rep.to_dict()) == rep


def test_empty_group_is_reported_with_zero_count_and_left_out_of_the_minimum():
    y, a = [0, 0, 1, 1], [0, 1, 1, 1]  # no waterbird/land sample
    p = [0, 1, 1, 1]
    rep = group_report(y, a, p, CLASSES, ATTRS)
    empty = [g for g in rep.groups if g.n == 0]
    assert [g.name for g in empty] == ["waterbird/land"] and empty[0].acc is None
    assert rep.worst_group == "landbird/water" and rep.worst_group_acc == 0.0
    assert any("waterbird/land" in w for w in rep.warnings)
    assert "| waterbird/land | 0 | 0 | — |" in report_markdown(rep)


def test_collapsed_predictions_are_flagged():
    rep = group_report([0, 1, 0, 1], [0, 1, 1, 0], [1, 1, 1, 1], CLASSES, ATTRS)
    assert rep.collapsed and any("collapsed" in w for w in rep.warnings)
    assert not group_report([0, 1], [0, 1], [0, 1], CLASSES, ATTRS).collapsed


def test_without_group_labels_only_class_accuracy():
    rep = group_report([0, 1, 1], None, [0, 1, 0], CLASSES, [])
    assert rep.groups == [] and rep.worst_group_acc is None
    assert rep.class_acc == {"landbird": 1.0, "waterbird": 0.5}
