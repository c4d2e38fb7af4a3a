"""The project's pipeline settings: which inpainting model and which masker (with its options) the
generation stages use, and the device and dtype every model runs on. The components built from them, and a
checked change of them, are the pipeline's (``pipeline.components``).

Settings live in the project meta ``pipeline``; a change is read and written in one transaction,
so a setting saved meanwhile by another process is kept.
"""

from __future__ import annotations

from typing import Optional

from .store import Project

PIPELINE_DEFAULTS = {"inpaint_model": "stabilityai/stable-diffusion-2-inpainting", "masker": None, "masker_options": {},
                     "engine": {"kind": "local"},
                     "device": "auto",  # auto (CUDA when present) | cpu | cuda[:N]: every stage that runs a model
                     "dtype": "auto"}  # auto (float16 on CUDA, float32 on CPU) | float32 | float16 | bfloat16


def pipeline_settings(project: Project) -> dict:
    """The project's choices of inpainting model and masker (with defaults filled in)."""
    s = {**PIPELINE_DEFAULTS, **(project.get_meta("pipeline") or {})}
    if s["masker"] is None:  # ground-truth masks when the dataset ships them, else text-prompted masks
        has_masks = project.db.execute("select count(*) from samples where mask_path is null").fetchone()[0] == 0
        s["masker"] = "provided" if has_masks and project.sample_count() else "langsam"
    return s


def compute_device(project: Project, device: Optional[str] = None) -> str:
    """The device a stage runs its models on: ``device`` when given (not ``auto``), else the project's
    setting, whose default ``auto`` is CUDA when present. So ``auto`` anywhere defers to the project."""
    return device if device not in (None, "auto") else pipeline_settings(project)["device"]


def compute_dtype(project: Project, dtype: Optional[str] = None) -> str:
    """The inpainting dtype: ``dtype`` when given, else the project's setting (auto)."""
    return dtype or pipeline_settings(project)["dtype"]
