"""Background jobs and the demo builder the app starts on first launch."""


from conftest import TINY
import numpy as np

from ddb_core.api import build_demo_project, load_masker, pipeline_settings
from ddb_core.data.imaging import load_rgb
from ddb_core.method.inpainting import MICRO_MODEL
from ddb_core.project.jobs import BackgroundJob
from ddb_core.project.progress import Progress
from ddb_core.project.store import Project
from ddb_core.classifiers.training import TrainConfig

ERM = TrainConfig(image_size=32, epochs=2, batch_size=16)


def test_demo_build_job_reports_progress_and_finishes(tmp_path):
    seen = []

    def work(on_progress, cancel):
        def spy(p: Progress):
            seen.append(p)
            on_progress(p)

        return build_demo_project(tmp_path / "demo", erm=ERM, demo=TINY, on_progress=spy, cancel=cancel)

    job = BackgroundJob("build", work)
    job.join(300)
    snap = job.snapshot()
    assert snap.state == "done", snap.error
    assert {p.stage for p in seen} >= {"demo-data", "train erm"}
    assert all(0 <= p.done <= p.total for p in seen)
    project = Project.open(tmp_path / "demo")
    assert project.active_erm_id is not None and project.get_meta("dataset_format") == "demo"
    assert project.get_meta("dataset_root") == "dataset"  # the demo lives inside the project folder
    # The demo repaints each bird's box with the shipped micro model, as the benchmark does.
    settings = pipeline_settings(project)
    assert settings["masker"] == "provided" and settings["masker_options"] == {"shape": "box"}
    assert settings["inpaint_model"] == MICRO_MODEL
    row = project.samples("train", "id, path, label, mask_path")[0]
    [mask] = load_masker(project).mask([load_rgb(project.dataset_path(row["path"]))], "bird", [row])
    ys, xs = np.nonzero(mask.mask)
    assert mask.mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()  # a filled rectangle, not the silhouette


def test_cancelled_job_resumes_on_the_next_build(tmp_path):
    def work(on_progress, cancel):
        def cancel_in_training(p):
            if p.stage == "train erm" and p.done == 2:
                cancel.cancel()
            on_progress(p)

        return build_demo_project(tmp_path / "demo", erm=ERM, demo=TINY, on_progress=cancel_in_training, cancel=cancel)

    job = BackgroundJob("build", work)
    job.join(300)
    assert job.snapshot().state == "cancelled"
    project = Project.open(tmp_path / "demo")
    assert project.sample_count() > 0 and project.active_erm_id is None
    assert project.runs("train-erm")[-1]["status"] == "cancelled"
    build_demo_project(tmp_path / "demo", erm=ERM, demo=TINY)
    assert project.active_erm_id is not None and len(project.runs("train-erm")) == 1


def test_failed_job_keeps_the_message():
    def boom(on_progress, cancel):
        from ddb_core.project.errors import DatasetError

        raise DatasetError("metadata.csv not found")

    job = BackgroundJob("x", boom)
    job.join(10)
    assert job.snapshot().state == "failed" and job.snapshot().error == "metadata.csv not found"


def test_the_demo_project_trains_the_demos_own_erm_recipe_by_default(tmp_path, monkeypatch):
    """The app's demo project and the benchmarks (`bench inpainter`, `bench demo`) train the same ERM recipe, so the
    app's tokens learn from the high-loss images the val gates measured."""
    import ddb_core.demo.pipeline as pipeline

    recipe = TrainConfig(arch="resnet18_w32", image_size=32, epochs=1, batch_size=16, lr=3e-4)
    monkeypatch.setattr(pipeline, "DEMO_ERM", recipe)
    project = build_demo_project(tmp_path / "demo", demo=TINY)
    cfg = project.active_erm()["config"]
    assert (cfg["arch"], cfg["image_size"], cfg["epochs"], cfg["lr"]) == ("resnet18_w32", 32, 1, 3e-4)
