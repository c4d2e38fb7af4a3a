"""The house: the method's steps, the workbench, the demo and the benchmarks apart; no import cycle
anywhere in ``ddb_core``; a short ``build_app`` and small screen modules."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ddb_core"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the ddb_core modules it imports, at the top or inside a function (both count)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    deps.add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


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


def test_wings_depend_one_way():
    """Only the command line and the benchmarks themselves import the benchmarks (the facade knows
    nothing of them); the method's steps import neither the demo, the benchmarks, the facade nor
    the command line."""
    graph = import_graph()
    for module, deps in graph.items():
        if module != "ddb_core.cli" and not module.startswith("ddb_core.bench"):
            assert not any(d.startswith("ddb_core.bench") for d in deps), (module, sorted(deps))
        if module.startswith("ddb_core.method"):
            bad = [d for d in deps if d.startswith(("ddb_core.demo", "ddb_core.bench")) or d in ("ddb_core.api", "ddb_core.cli")]
            assert not bad, (module, bad)
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
