"""The project's pipeline settings: which inpainting model and which masker (with its options) the
generation stages use, and the loaders that build them.

Settings live in the project meta ``pipeline``; a change is read and written in one transaction,
so a setting saved meanwhile by another process is kept.
"""

from __future__ import annotations

from typing import Optional

from .store import Project

PIPELINE_DEFAULTS = {"inpaint_model": "stabilityai/stable-diffusion-2-inpainting", "masker": None, "masker_options": {},
                     "engine": {"kind": "local"}}


def pipeline_settings(project: Project) -> dict:
    """The project's choices of inpainting model and masker (with defaults filled in)."""
    s = {**PIPELINE_DEFAULTS, **(project.get_meta("pipeline") or {})}
    if s["masker"] is None:  # ground-truth masks when the dataset ships them, else text-prompted masks
        has_masks = project.db.execute("select count(*) from samples where mask_path is null").fetchone()[0] == 0
        s["masker"] = "provided" if has_masks and project.sample_count() else "langsam"
    return s


def set_pipeline_settings(project: Project, **changes) -> dict:
    """Change the given settings (``inpaint_model``, ``masker``, ``masker_options``, ``engine``: the fields of an
    ``engines.EngineConfig``, validated); the others are kept,
    even when another process saved them a moment ago (read and written in one transaction)."""
    if changes.get("engine") is not None:
        from dataclasses import asdict

        from .engines import EngineConfig

        changes["engine"] = asdict(EngineConfig.from_dict(changes["engine"]))  # validated, every field
    with project.write():
        s = {**(project.get_meta("pipeline") or {}), **{k: v for k, v in changes.items() if v is not None}}
        project.set_meta("pipeline", s)
    return pipeline_settings(project)


def engine_config(project: Project):
    """Where the project's generation and scoring run (``engines.EngineConfig``; local unless set)."""
    from .engines import EngineConfig

    return EngineConfig.from_dict(pipeline_settings(project)["engine"])


def load_inpainter(project: Project, model: Optional[str] = None, device: str = "auto", dtype: str = "auto"):
    from .method.inpainting import Inpainter

    return Inpainter.load(model or pipeline_settings(project)["inpaint_model"], device=device, dtype=dtype)


def load_masker(project: Project, name: Optional[str] = None, options: Optional[dict] = None):
    from .method.masking import build_masker

    s = pipeline_settings(project)
    name = name or s["masker"]
    opts = options if options is not None else (s["masker_options"] if name == s["masker"] else {})
    return build_masker(name, project=project, **opts)
