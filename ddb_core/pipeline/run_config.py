"""The run config of ``ddb run`` and ``api.run_pipeline``: one JSON object with a section per stage
(``selection``, ``inversion``, ``masker``, ``generation``, ``inpaint``, ``scoring``, ``prune``, ``pairs``), each
checked (its names, the type of every value, the directions against the project's classes) before any stage
runs, so that a typo costs nothing.
"""

from __future__ import annotations

from typing import Optional

from ..project.errors import ConfigError
from ..project.store import Project
from .generation import directions

RUN_SECTIONS = ("selection", "inversion", "masker", "generation", "inpaint", "scoring", "prune", "pairs")


def _run_pairs(project: Project, value) -> Optional[list[tuple[int, int]]]:
    """The run config's ``pairs``: a list of [i, j] or "i:j" directions (null: the default directions), checked
    against the project's classes before any stage runs."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ConfigError(f"run config section 'pairs' must be a list of directions like [0, 1] or \"0:1\", got {value!r}")
    out = []
    for k, item in enumerate(value):
        if isinstance(item, str) and item.count(":") == 1 and all(x.strip().isdigit() for x in item.split(":")):
            item = [int(x) for x in item.split(":")]
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                  for x in item)):
            raise ConfigError(f"run config section 'pairs', item {k}: expected [i, j] or \"i:j\" with class numbers, "
                              f"got {item!r}")
        out.append((item[0], item[1]))
    if len(set(out)) != len(out):
        raise ConfigError(f"run config section 'pairs' names a direction twice: {value!r}")
    directions(project, out)
    return out


def _check_types(cls, values: dict, where: str) -> None:
    """Each value of ``values`` of the type of ``cls``'s field default (a number for a number, finite; text for
    text; true/false for a flag); a field whose default is None takes a number, text or null."""
    import math
    from dataclasses import MISSING, fields

    for f in fields(cls):
        if f.name not in values:
            continue
        v, d = values[f.name], (f.default if f.default is not MISSING else None)
        if isinstance(d, bool):
            ok, want = isinstance(v, bool), "true or false"
        elif isinstance(d, (int, float)):
            ok, want = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "a finite number"
        elif isinstance(d, str):
            ok, want = isinstance(v, str), "text"
        else:
            ok = v is None or (isinstance(v, (int, str)) and not isinstance(v, bool)) or \
                (isinstance(v, float) and math.isfinite(v))
            want = "a number, text or null"
        if not ok:
            raise ConfigError(f"{where}: {f.name} must be {want}, got {v!r}")


def read_run_config(project: Project, config: dict):
    """The stages' configs from a run config: (selection, inversion, generation, inpaint, pairs, masker options),
    or a ``ConfigError`` that names the section and the value."""
    from .generation import GenerationConfig
    from ..method.inpainting import InpaintConfig
    from ..method.inversion import InversionConfig
    from ..method.selection import SelectionConfig

    if not isinstance(config, dict):
        raise ConfigError(f"the run config must be a JSON object with sections {', '.join(RUN_SECTIONS)}, "
                          f"got a JSON {type(config).__name__}")
    unknown = set(config) - set(RUN_SECTIONS)
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(sorted(unknown))} in the run config; known: {', '.join(RUN_SECTIONS)}")
    for section in ("selection", "inversion", "generation", "inpaint", "masker", "scoring", "prune"):
        if config.get(section) is not None and not isinstance(config[section], dict):
            raise ConfigError(f"run config section {section!r} must be an object of name: value, "
                              f"got {type(config[section]).__name__} {config[section]!r}")

    def build(cls, section):
        values = config.get(section) or {}
        _check_types(cls, values, f"run config section {section!r}")
        try:
            return cls(**values)
        except TypeError as e:
            raise ConfigError(f"run config section {section!r}: {e}") from e

    sel, inv, gen, inp = (build(SelectionConfig, "selection"), build(InversionConfig, "inversion"),
                          build(GenerationConfig, "generation"), build(InpaintConfig, "inpaint"))
    pairs = _run_pairs(project, config.get("pairs"))
    masker_cfg = dict(config.get("masker", {}))
    return sel, inv, gen, inp, pairs, masker_cfg
