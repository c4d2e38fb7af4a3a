"""ERM training on the tiny project: storage, per-sample scores, resume, selection."""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from ddb_core.api import create_project, train_erm
from ddb_core.project.errors import Cancelled, ConfigError
from ddb_core.data.imaging import classifier_view, load_rgb, normalize
from ddb_core.classifiers.models import load_classifier, build_classifier
from ddb_core.project.store import file_sha256
from ddb_core.classifiers.training import TrainConfig, load_erm_checkpoint, train_classifier

TINY_CFG = TrainConfig(image_size=32, epochs=2, batch_size=16, seed=1)


def test_erm_training_stores_model_reports_and_per_sample_scores(tiny_project):
    res = train_erm(tiny_project, TINY_CFG)
    m = tiny_project.model(res.model_id)
    path = tiny_project.project_path(m["path"])
    assert m["role"] == "erm" and m["sha256"] == file_sha256(path)
    assert set(res.reports) == {"val", "test"} and len(res.history) == 2
    assert m["metrics"]["select_by"] == "val_wga"
    assert 1 <= m["metrics"]["best_epoch"] <= 2
    assert tiny_project.active_erm_id == res.model_id
    run = tiny_project.runs("train-erm")[-1]
    assert run["status"] == "done" and json.loads(run["config"])["epochs"] == 2

    # The stored per-sample loss is the cross-entropy of that sample alone, on the evaluation transform.
    model, _, _ = load_classifier(path)
    rows = tiny_project.samples()
    assert all(r["erm_model_id"] == res.model_id and r["erm_loss"] is not None for r in rows)
    for r in rows[:3]:
        x = normalize(torch.from_numpy(classifier_view(load_rgb(tiny_project.dataset_path(r["path"])), 32)).permute(2, 0, 1))[None]
        with torch.no_grad():
            logits = model(x)
        assert r["erm_loss"] == pytest.approx(F.cross_entropy(logits, torch.tensor([r["label"]])).item(), rel=1e-4, abs=1e-5)
        assert json.loads(r["erm_probs"]) == pytest.approx(logits.softmax(1)[0].tolist(), abs=1e-5)


def test_cancelled_training_resumes_to_the_same_model(tiny_dataset, tmp_path):
    cfg = replace(TINY_CFG, epochs=3)
    a, _ = create_project(tmp_path / "a", "waterbirds", tiny_dataset)
    straight = train_classifier(a, cfg, role="erm")

    b, _ = create_project(tmp_path / "b", "waterbirds", tiny_dataset)
    token_calls = []

    from ddb_core.project.progress import CancelToken

    token = CancelToken()

    def on_progress(p):
        token_calls.append(p.done)
        if p.stage == "train erm" and p.done == 4:  # inside epoch 2 (3 steps per epoch)
            token.cancel()

    with pytest.raises(Cancelled):
        train_classifier(b, cfg, role="erm", on_progress=on_progress, cancel=token)
    assert b.runs("train-erm")[-1]["status"] == "cancelled"
    resumed = train_classifier(b, cfg, role="erm")
    assert resumed.resumed_from_epoch == 1 and resumed.run_id == b.runs("train-erm")[-1]["id"]
    assert len(b.runs("train-erm")) == 1
    ma, _, _ = load_classifier(a.project_path(a.model(straight.model_id)["path"]))
    mb, _, _ = load_classifier(b.project_path(b.model(resumed.model_id)["path"]))
    for (k, va), vb in zip(ma.state_dict().items(), mb.state_dict().values()):
        assert torch.allclose(va.float(), vb.float(), atol=1e-5), k
    assert [h["train_loss"] for h in straight.history] == pytest.approx([h["train_loss"] for h in resumed.history], rel=1e-5)


def test_oracle_needs_train_group_labels(tmp_path):
    from PIL import Image
    import numpy as np

    root = tmp_path / "if"
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(root / split / cls / f"{i}.png")
    project, _ = create_project(tmp_path / "p", "imagefolder", root)
    with pytest.raises(ConfigError, match="group_balanced"):
        train_erm(project, TINY_CFG, oracle=True)
    res = train_erm(project, replace(TINY_CFG, epochs=1))
    assert project.model(res.model_id)["metrics"]["select_by"] == "val_acc"


def test_group_balanced_oracle_is_not_made_active(tiny_project):
    res = train_erm(tiny_project, replace(TINY_CFG, epochs=1), oracle=True)
    m = tiny_project.model(res.model_id)
    assert m["role"] == "oracle" and m["metrics"]["uses_train_group_labels"] is True
    assert tiny_project.active_erm_id is None


def test_loading_a_user_checkpoint_makes_it_the_erm_model(tiny_project, tmp_path):
    torch.manual_seed(0)
    model = build_classifier("resnet18", 2)
    torch.save(model.state_dict(), tmp_path / "mine.pth")
    mid = load_erm_checkpoint(tiny_project, str(tmp_path / "mine.pth"), arch="resnet18", image_size=32)
    assert tiny_project.active_erm_id == mid
    assert tiny_project.model(mid)["metrics"]["test"]["n"] == tiny_project.sample_count("test")
    assert all(r["erm_model_id"] == mid for r in tiny_project.samples())


def test_bad_config_values_name_the_field():
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match="arch must be one of"):
        TrainConfig(arch="vgg")


def test_epoch_selection_breaks_worst_group_ties_by_mean_accuracy():
    from ddb_core.classifiers.evaluation import group_report
    from ddb_core.classifiers.training import _score

    names, attrs = ["a", "b"], ["x", "y"]
    early = group_report([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 0, 1], names, attrs)  # WGA 0, mean 0.5
    later = group_report([0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1], names, attrs)  # WGA 0, mean 0.75
    assert early.worst_group_acc == later.worst_group_acc == 0.0
    assert _score(later, "val_wga") > _score(early, "val_wga")
    assert _score(later, "val_acc") > _score(early, "val_acc")


def test_several_val_checks_per_epoch_select_among_them(tiny_project):
    cfg = replace(TINY_CFG, epochs=2, evals_per_epoch=3, batch_size=8)
    res = train_classifier(tiny_project, cfg, role="oracle", make_active=False)
    hist = res.history
    points = [c["epoch"] for h in hist for c in h.get("checks", [])] + [h["epoch"] for h in hist]
    assert sorted(points) == pytest.approx([0.333, 0.667, 1, 1.333, 1.667, 2], abs=1e-3)
    every = [(c["epoch"], c["val_wga"], c["val_acc"]) for h in hist for c in h["checks"] + [h]]
    best = max(every, key=lambda t: (t[1], t[2]))  # first best in time order wins ties
    first_best = next(t for t in sorted(every) if (t[1], t[2]) == (best[1], best[2]))
    assert res.best_epoch == pytest.approx(first_best[0])
    # the stored model is the checked one: its val WGA is the one recorded at that check
    assert res.reports["val"].worst_group_acc == pytest.approx(first_best[1])


def test_evals_per_epoch_must_be_positive():
    with pytest.raises(ConfigError, match="evals_per_epoch"):
        TrainConfig(evals_per_epoch=0)


def test_a_model_stored_before_a_recipe_field_existed_is_still_found(tiny_project):
    from ddb_core.classifiers.training import stored_model

    res = train_classifier(tiny_project, TINY_CFG, role="oracle", make_active=False)
    row = tiny_project.model(res.model_id)
    old_config = {k: v for k, v in row["config"].items() if k != "evals_per_epoch"}
    tiny_project.db["models"].update(res.model_id, {"config": json.dumps(old_config)})
    assert stored_model(tiny_project, "oracle", TINY_CFG)["id"] == res.model_id
    assert stored_model(tiny_project, "oracle", replace(TINY_CFG, evals_per_epoch=2)) is None
    assert stored_model(tiny_project, "oracle", replace(TINY_CFG, seed=2)) is None
