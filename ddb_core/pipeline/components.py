"""The pipeline's components, built from the project's settings (``project.settings``): the inpainting model, the
masker and the engine; and a change of those settings, checked against the components before it is saved.
"""

from __future__ import annotations

from typing import Optional

from ..project.settings import compute_device, compute_dtype, pipeline_settings
from ..project.store import Project


def set_pipeline_settings(project: Project, **changes) -> dict:
    """Change the given settings (``inpaint_model``, ``masker``, ``masker_options``, ``engine``: the fields of an
    ``engines.EngineConfig``, validated); the others are kept,
    even when another process saved them a moment ago (read and written in one transaction)."""
    if changes.get("device") is not None:
        from ..project.device import check_device_name

        check_device_name(changes["device"])
    if changes.get("dtype") is not None:
        from ..project.device import check_dtype_name

        check_dtype_name(changes["dtype"])
    if changes.get("masker") is not None or changes.get("masker_options") is not None:
        from ..method.masking import check_masker_options

        name = changes.get("masker") or pipeline_settings(project)["masker"]
        check_masker_options(name, changes.get("masker_options") or {})
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


def load_inpainter(project: Project, model: Optional[str] = None, device: Optional[str] = None,
                   dtype: Optional[str] = None):
    from ..method.inpainting import Inpainter

    return Inpainter.load(model or pipeline_settings(project)["inpaint_model"], device=compute_device(project, device),
                          dtype=compute_dtype(project, dtype))


def load_masker(project: Project, name: Optional[str] = None, options: Optional[dict] = None,
                device: Optional[str] = None):
    from ..method.masking import build_masker

    s = pipeline_settings(project)
    name = name or s["masker"]
    opts = options if options is not None else (s["masker_options"] if name == s["masker"] else {})
    return build_masker(name, project=project, device=compute_device(project, device), **opts)
