"""The project's pipeline settings: which inpainting model and which masker (with its options) the
generation stages use, the device and dtype every model runs on, and the loaders that build them.

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


def set_pipeline_settings(project: Project, **changes) -> dict:
    """Change the given settings (``inpaint_model``, ``masker``, ``masker_options``, ``engine``: the fields of an
    ``engines.EngineConfig``, validated); the others are kept,
    even when another process saved them a moment ago (read and written in one transaction)."""
    if changes.get("device") is not None:
        from .device import check_device_name

        check_device_name(changes["device"])
    if changes.get("dtype") is not None:
        from .device import check_dtype_name

        check_dtype_name(changes["dtype"])
    if changes.get("masker") is not None or changes.get("masker_options") is not None:
        from .method.masking import check_masker_options

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


def compute_device(project: Project, device: Optional[str] = None) -> str:
    """The device a stage runs its models on: ``device`` when given (not ``auto``), else the project's
    setting, whose default ``auto`` is CUDA when present. So ``auto`` anywhere defers to the project."""
    return device if device not in (None, "auto") else pipeline_settings(project)["device"]


def compute_dtype(project: Project, dtype: Optional[str] = None) -> str:
    """The inpainting dtype: ``dtype`` when given, else the project's setting (auto)."""
    return dtype or pipeline_settings(project)["dtype"]


def load_inpainter(project: Project, model: Optional[str] = None, device: Optional[str] = None,
                   dtype: Optional[str] = None):
    from .method.inpainting import Inpainter

    return Inpainter.load(model or pipeline_settings(project)["inpaint_model"], device=compute_device(project, device),
                          dtype=compute_dtype(project, dtype))


def load_masker(project: Project, name: Optional[str] = None, options: Optional[dict] = None,
                device: Optional[str] = None):
    from .method.masking import build_masker

    s = pipeline_settings(project)
    name = name or s["masker"]
    opts = options if options is not None else (s["masker_options"] if name == s["masker"] else {})
    return build_masker(name, project=project, device=compute_device(project, device), **opts)
