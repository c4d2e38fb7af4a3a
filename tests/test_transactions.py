"""Commands change the project only when they succeed: a failed ERM load or training, or a failed masking,
leaves every table as it was (the run itself is on record, marked failed with the reason)."""

from __future__ import annotations

import pytest
import torch

from ddb_core import api
from ddb_core.project.errors import DDBError, ModelError


def dump_but_runs(project) -> list[str]:
    """The database as SQL, less the rows of the runs table (and its id counter)."""
    return [line for line in project.db.conn.iterdump()
            if not line.startswith('INSERT INTO "runs"') and "sqlite_sequence" not in line]


def _last_run(project) -> dict:
    return project.runs()[-1]


def test_an_erm_load_whose_outputs_overflow_changes_nothing_and_its_run_says_why(candidates_project, tmp_path):
    from ddb_core.classifiers.models import build_classifier

    p = candidates_project
    active, models = p.active_erm_id, sorted((p.root / "models").iterdir())
    model = build_classifier("resnet18", 2)
    with torch.no_grad():
        model.fc.weight[0].fill_(3e38)  # finite weights whose logits overflow to ±infinity
        model.fc.weight[1].fill_(-3e38)
    ckpt = tmp_path / "overflow.pt"
    torch.save(model.state_dict(), ckpt)
    before = dump_but_runs(p)
    with pytest.raises(ModelError, match=r"outputs are not finite .* for \d+ of \d+ samples, e.g. .*nothing was stored"):
        api.load_erm(p, str(ckpt), "resnet18", 32)
    assert dump_but_runs(p) == before
    assert p.active_erm_id == active
    run = _last_run(p)
    assert (run["stage"], run["status"]) == ("load-erm", "failed") and "not finite" in run["error"]
    assert sorted((p.root / "models").iterdir()) == models  # the copied checkpoint is gone again


def test_nan_weights_are_refused_before_anything_starts(candidates_project, tmp_path):
    from conftest import db_dump
    from ddb_core.classifiers.models import build_classifier

    p = candidates_project
    model = build_classifier("resnet18", 2)
    with torch.no_grad():
        model.layer1[0].conv1.weight[0, 0, 0, 0] = float("nan")
    ckpt = tmp_path / "nan.pt"
    torch.save(model.state_dict(), ckpt)
    before = db_dump(p)
    with pytest.raises(ModelError, match=r"NaN or infinite values in 1 tensor\(s\): layer1.0.conv1.weight"):
        api.load_erm(p, str(ckpt), "resnet18", 32)
    assert db_dump(p) == before  # not even a run


def test_a_training_that_fails_while_storing_leaves_no_model_and_no_scores(candidates_project, monkeypatch):
    import ddb_core.classifiers.training as training

    p = candidates_project
    active, models = p.active_erm_id, sorted((p.root / "models").iterdir())
    before = dump_but_runs(p)
    real = training.store_scores

    def store_then_fail(project, model_id, rows):
        real(project, model_id, rows)  # the model row and every score are written …
        raise DDBError("the disk filled up")  # … and then the transaction fails

    monkeypatch.setattr(training, "store_scores", store_then_fail)
    with pytest.raises(DDBError, match="disk filled up"):
        api.train_erm(p, training.TrainConfig(arch="resnet18", image_size=32, epochs=1, batch_size=8, seed=5))
    assert dump_but_runs(p) == before
    assert p.active_erm_id == active
    assert sorted((p.root / "models").iterdir()) == models
    run = _last_run(p)
    assert (run["stage"], run["status"]) == ("train-erm", "failed") and "disk filled up" in run["error"]


class FlakyMasker:
    """GrabCut that raises on its call number ``fail_at`` (counting calls)."""

    def __init__(self, fail_at=None):
        from ddb_core.method.masking import GrabCutMasker

        self.inner, self.fail_at, self.calls = GrabCutMasker(iterations=1), fail_at, 0
        self.name = self.inner.name

    def params(self):
        return self.inner.params()

    def mask(self, images, word, samples=None):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("the masker's process died")
        return self.inner.mask(images, word, samples=samples)


def test_a_masking_that_fails_changes_nothing_and_the_same_command_resumes(candidates_project):
    from ddb_core.pipeline.generation import compute_masks

    p = candidates_project
    rows = p.samples("train", "id, path, label")[:6]
    p.db.execute("delete from masks where backend = 'grabcut'")  # none of this masker's yet
    p.db.conn.commit()
    before = dump_but_runs(p)
    flaky = FlakyMasker(fail_at=3)
    with pytest.raises(RuntimeError, match="process died"):
        with p.recorded_run("mask", {}):
            compute_masks(p, flaky, rows, batch_size=1)
    assert dump_but_runs(p) == before  # two batches were done: they wait beside their files, not in the database
    assert _last_run(p)["status"] == "failed" and "process died" in _last_run(p)["error"]
    again = FlakyMasker()
    out = compute_masks(p, again, rows, batch_size=1)
    assert again.calls == 4  # the two finished batches were not computed again
    assert sorted(out) == sorted(r["id"] for r in rows)
    assert p.db.execute("select count(*) from masks where backend = 'grabcut'").fetchone()[0] == 6
