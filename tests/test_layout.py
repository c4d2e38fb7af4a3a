"""The house in wings (docs/architecture.md): every room of ``ddb_core`` in a wing named for what it holds;
every import, at the top or inside a function, goes to the same wing or a lower one, unless a comment at
the import says why; no import cycle; no room over 600 lines and no alias room; a short ``build_app`` and
small screen modules; the names users import keep working."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ddb_core"

# The wings from the ground floor up: a room may import its own wing and the wings below it.
WINGS = ("project", "data", "classifiers", "method", "pipeline", "curation", "demo", "api", "ui", "bench", "cli")
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for d in ("ddb_core", "ui") for p in (ROOT / d).rglob("*.py")}


def imports_of(name: str, path: Path, source: str, modules) -> list[tuple[int, str]]:
    """(line, module) of every import of ``modules`` in ``source``, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.append((node.lineno, full if full in modules else target))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(line, t) for line, t in out if t in modules and t != name]


def import_graph() -> dict[str, set[str]]:
    """Module of ``ddb_core`` → the ddb_core modules it imports, at the top or inside a function (both count)."""
    modules = {k: v for k, v in _modules().items() if k.startswith("ddb_core")}
    return {name: {t for _, t in imports_of(name, path, path.read_text(), modules)} for name, path in modules.items()}


def wing_of(module: str) -> str:
    """``ddb_core.pipeline.generation`` → ``pipeline``; ``ui.*`` → ``ui``; the package's own door (``ddb_core``,
    ``__main__``) counts as the command line's."""
    parts = module.split(".")
    if parts[0] == "ui":
        return "ui"
    if len(parts) == 1 or parts[1] == "__main__":
        return "cli"
    return parts[1]


def upward_imports(name: str, path: Path, source: str, modules) -> list[str]:
    """Imports in ``source`` of a room in a higher wing without a ``# upward:`` comment on the import's line or
    the line above it that says why."""
    lines = source.split("\n")
    bad = []
    for line, target in imports_of(name, path, source, modules):
        if WINGS.index(wing_of(target)) > WINGS.index(wing_of(name)):
            said = "# upward:" in lines[line - 1] or (line > 1 and lines[line - 2].strip().startswith("# upward:"))
            if not said:
                bad.append(f"{name}:{line} imports {target} ({wing_of(name)} → {wing_of(target)})")
    return bad


def find_cycle(graph: dict[str, set[str]]):
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert len(graph) > 30
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check can fail


def test_every_room_is_in_a_wing():
    """The front room holds only the facade and the package's door; everything else is in a wing."""
    modules = _modules()
    assert all(wing_of(m) in WINGS for m in modules), sorted(m for m in modules if wing_of(m) not in WINGS)
    front = sorted(m for m in modules if m.count(".") == 1 and m.startswith("ddb_core.") and
                   not (PACKAGE / m.split(".")[1]).is_dir())
    assert front == ["ddb_core.__main__", "ddb_core.api"], front
    for wing in WINGS:
        if (PACKAGE / wing).is_dir():
            assert ast.get_docstring(ast.parse((PACKAGE / wing / "__init__.py").read_text())), f"{wing}/ says what it holds"
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert all(f"`{w}" in doc for w in WINGS), "docs/architecture.md has a line per wing"


def test_every_import_goes_to_its_own_wing_or_a_lower_one_unless_it_says_why():
    modules = _modules()
    bad = [b for name, path in modules.items() for b in upward_imports(name, path, path.read_text(), modules)]
    assert not bad, "\n".join(bad)
    # the check can fail: the method importing the pipeline, inside a function, with no comment
    probe = PACKAGE / "method" / "probe.py"
    source = "def f():\n    from ..pipeline.generation import generate\n"
    assert upward_imports("ddb_core.method.probe", probe, source, modules) == [
        "ddb_core.method.probe:2 imports ddb_core.pipeline.generation (method → pipeline)"]
    said = "def f():\n    # upward: because\n    from ..pipeline.generation import generate\n"
    assert upward_imports("ddb_core.method.probe", probe, said, modules) == []


def test_no_room_over_600_lines_and_no_alias_room():
    for name, path in _modules().items():
        text = path.read_text()
        assert text.count("\n") <= MAX_LINES, f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines"
        stars = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)]
        assert not stars, f"{name} re-exports another module (an alias room)"


def test_the_method_opens_each_step_with_its_equation():
    graph = import_graph()
    method = [m for m in graph if m.startswith("ddb_core.method.")]
    assert {m.rsplit(".", 1)[1] for m in method} >= {"selection", "inversion", "masking", "inpainting", "scoring", "pruning",
                                                     "retraining", "objective", "scgs", "baselines"}
    for m in method:  # each step opens with what it implements
        doc = ast.get_docstring(ast.parse((ROOT / (m.replace(".", "/") + ".py")).read_text())) or ""
        assert any(k in doc for k in ("Eq.", "Algorithm", "SCGS", "baselines")), m


def test_app_is_wired_in_a_short_build_app_and_small_screens():
    from ui import app

    lines = inspect.getsource(app.build_app).count("\n")
    assert lines < 100, lines
    for path in (ROOT / "ui").glob("*.py"):
        n = path.read_text().count("\n")
        assert n <= 350, f"{path.name}: {n} lines"
    for screen in ("project", "pipeline", "review", "retrain", "export"):
        module = __import__(f"ui.{screen}", fromlist=["build"])
        assert all(hasattr(module, f) for f in ("build", "wire", "refresh", "refresh_outputs")), screen


def test_the_benchmarks_find_the_repository_they_run_from():
    """The first-launch benchmark runs `app.py` from its ROOT: that must be the repository (it once pointed
    at ddb_core/ after the benchmarks moved, and waited 120 s for an app that never started)."""
    from ddb_core.bench import app_launch

    assert (app_launch.ROOT / "app.py").is_file() and (app_launch.ROOT / "ddb_core").is_dir()


PUBLIC_API = ("create_project", "build_demo_project", "open_project", "train_erm", "load_erm", "evaluate", "status",
              "select", "invert", "compute_masks", "refind", "generate", "score", "stale_scores", "prune", "run_pipeline",
              "retrain", "retraining_warnings", "retraining_inputs", "baseline", "make_report", "reports", "load_report",
              "review_index", "export_dataset", "reproducibility_bundle", "preview_tokens", "prepare_demo_candidates",
              "compute_map", "load_map", "scgs_select", "scgs_generate", "jtt_with_scgs", "regenerate_candidate",
              "pipeline_settings", "set_pipeline_settings", "load_inpainter", "load_masker", "engine_config",
              "compute_device", "PIPELINE_DEFAULTS", "DEFAULT_PROJECT")
PUBLIC_METHOD = {"selection": ("SelectionConfig", "select"), "inversion": ("InversionConfig", "learn_token"),
                 "masking": ("build_masker", "MaskResult"), "inpainting": ("Inpainter", "InpaintConfig"),
                 "scoring": (), "pruning": (), "objective": ("balanced_loss",), "retraining": ("RetrainConfig", "retrain"),
                 "scgs": ("SCGSConfig",), "baselines": ("JTTConfig", "run_jtt", "run_dfr", "run_oracle")}


def test_the_names_users_import_keep_working():
    """``ddb_core.api`` (the facade), ``ddb_core.method.*``, the errors at the package's door, the ``ddb``
    command and ``python -m ddb_core``."""
    import importlib

    import ddb_core
    from ddb_core import api

    missing = [n for n in PUBLIC_API if not hasattr(api, n)]
    assert not missing, missing
    for step, names in PUBLIC_METHOD.items():
        module = importlib.import_module(f"ddb_core.method.{step}")
        assert all(hasattr(module, n) for n in names), (step, [n for n in names if not hasattr(module, n)])
    assert all(hasattr(ddb_core, n) for n in ddb_core.__all__)
    entry = next(l for l in (ROOT / "pyproject.toml").read_text().splitlines() if l.startswith("ddb = "))
    module, _, fn = entry.split('"')[1].partition(":")
    assert callable(getattr(importlib.import_module(module), fn))
    for cmd in ([sys.executable, "-m", "ddb_core", "--help"], [str(Path(sys.executable).parent / "ddb"), "status", "--help"]):
        if not Path(cmd[0]).exists():
            pytest.skip(f"{cmd[0]} is not installed here")
        out = subprocess.run(cmd, cwd="/", capture_output=True, text=True)
        assert out.returncode == 0 and "usage: ddb" in out.stdout, out.stderr
