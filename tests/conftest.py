"""Shared fixtures: a tiny demo dataset (32 px, a few dozen images) and projects made from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ddb_core.api import create_project
from ddb_core.demo_data import DemoDataConfig, generate_demo_dataset

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
