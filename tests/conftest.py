"""Shared fixtures: a tiny demo dataset (32 px, a few dozen images) and projects made from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ddb_core.api import create_project
from ddb_core.demo.data import DemoDataConfig, generate_demo_dataset
from ddb_core.project.device import flush_denormals

flush_denormals()  # as the command line and the app do, before torch starts its compute threads

TINY = DemoDataConfig(seed=3, image_size=32, n_train=48, n_val=16, n_test=16, workers=1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A read-only tiny demo dataset in the Waterbirds layout (do not modify; copy it first)."""
    out = tmp_path_factory.mktemp("tiny-demo")
    generate_demo_dataset(out, TINY)
    return out


@pytest.fixture
def dataset_copy(tiny_dataset, tmp_path) -> Path:
    """A private, modifiable copy of the tiny dataset."""
    dst = tmp_path / "dataset"
    shutil.copytree(tiny_dataset, dst)
    return dst


@pytest.fixture
def tiny_project(tiny_dataset, tmp_path):
    project, _ = create_project(tmp_path / "proj", "waterbirds", tiny_dataset)
    return project


def db_dump(project) -> str:
    """The whole database as SQL text, to check that a failed operation changed nothing."""
    return "\n".join(project.db.conn.iterdump())


@pytest.fixture(scope="session")
def scored_project_template(tiny_dataset, tmp_path_factory):
    """A tiny project with a 1-epoch ERM model (per-sample scores stored) and a selection. Copy before use."""
    from ddb_core.api import train_erm
    from ddb_core.method.selection import SelectionConfig, select
    from ddb_core.classifiers.training import TrainConfig

    root = tmp_path_factory.mktemp("scored") / "proj"
    project, _ = create_project(root, "waterbirds", tiny_dataset)
    train_erm(project, TrainConfig(image_size=32, epochs=1, batch_size=16, seed=0))
    select(project, SelectionConfig(k=4, ti_size=4))
    project.close()
    return root


@pytest.fixture
def scored_project(scored_project_template, tmp_path):
    from ddb_core.project.store import Project

    dst = tmp_path / "proj"
    shutil.copytree(scored_project_template, dst)
    return Project.open(dst)


@pytest.fixture(scope="session")
def tiny_pipe_factory():
    """Builds a fresh tiny random-weight SD inpainting pipeline (64 px) on each call."""
    from ddb_core.demo.micro_sd import MicroSDConfig, build_pipeline

    return lambda: build_pipeline(MicroSDConfig())


@pytest.fixture(scope="session")
def candidates_project_template(scored_project_template, tiny_pipe_factory, tmp_path_factory):
    """The scored tiny project plus tokens, 8 generated candidates (tiny random SD) and their ψ/ρ. Copy before use."""
    from ddb_core.pipeline.generation import generate, invert_classes, score
    from ddb_core.method.inpainting import InpaintConfig, Inpainter
    from ddb_core.method.inversion import InversionConfig
    from ddb_core.method.masking import ProvidedMasker
    from ddb_core.project.store import Project

    root = tmp_path_factory.mktemp("candidates") / "proj"
    shutil.copytree(scored_project_template, root)
    project = Project.open(root)
    inp = Inpainter(tiny_pipe_factory())
    invert_classes(project, inp, [0, 1], InversionConfig(steps=2, batch_size=2), masker=ProvidedMasker(project.dataset_path))
    generate(project, inp, ProvidedMasker(project.dataset_path), inpaint=InpaintConfig(steps=2, guidance=2.0, batch_size=4))
    score(project, n_steps=8)
    project.close()
    return root


@pytest.fixture
def candidates_project(candidates_project_template, tmp_path):
    from ddb_core.project.store import Project

    dst = tmp_path / "cproj"
    shutil.copytree(candidates_project_template, dst)
    return Project.open(dst)
