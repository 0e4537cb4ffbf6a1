"""The floor plan holds: core's layers import only downwards, nothing anywhere imports in a circle, and the front
files (dashboard, train_cli.py) import only what they may. docs/architecture.md describes the layers."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from importlinter.cli import lint_imports
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "dashboard"
FOUNDATION = {"__init__.py", "config.py", "errors.py", "evaluate.py", "numbers.py"}
LAYERS = ["store", "data", "training", "analysis", "run", "experiments", "views", "delivery", "testing"]
NEVER_IN_DASHBOARD = ("core.run", "core.experiments", "core.training", "core.testing")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return found


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module: each is an import circle."""
    names = sorted(graph)
    index = {name: i for i, name in enumerate(names)}
    edges = [(index[a], index[b]) for a in names for b in graph[a] if b in index and b != a]
    rows, cols = zip(*edges) if edges else ((), ())
    matrix = csr_matrix(([1] * len(edges), (rows, cols)), shape=(len(names), len(names)))
    _, component = connected_components(matrix, directed=True, connection="strong")
    groups: dict[int, set[str]] = {}
    for name, c in zip(names, component):
        groups.setdefault(c, set()).add(name)
    return [group for group in groups.values() if len(group) > 1]


def dashboard_modules() -> dict[str, Path]:
    """Streamlit puts dashboard/ on the path, so its modules import each other by their bare names."""
    files = list(DASHBOARD.glob("*.py")) + list(DASHBOARD.glob("app_pages/*.py"))
    return {path.stem: path for path in files}


def test_the_import_contracts_of_core_are_kept(monkeypatch, capsys):
    """.importlinter: the layer order, no circles (function-level imports included), no Streamlit in core, and a
    training path without the dashboard's libraries."""
    monkeypatch.chdir(REPO)
    code = lint_imports(config_filename=str(REPO / ".importlinter"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_the_root_of_core_holds_only_the_foundation_and_the_layer_packages():
    assert {p.name for p in (REPO / "core").glob("*.py")} == FOUNDATION
    packages = {p.name for p in (REPO / "core").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


@pytest.mark.parametrize("name", sorted(dashboard_modules()))
def test_the_dashboard_never_imports_what_trains(name):
    """Pages read runs; training, running folds and experiments belong to the command line."""
    wrong = [m for m in imported_modules(dashboard_modules()[name])
             if any(m == banned or m.startswith(banned + ".") for banned in NEVER_IN_DASHBOARD)]
    assert not wrong, f"dashboard/{name}.py imports {wrong}"


def test_the_dashboard_has_no_import_circles():
    modules = dashboard_modules()
    graph = {name: {m.removeprefix("dashboard.") for m in imported_modules(path)} for name, path in modules.items()}
    assert circles(graph) == []


def test_nothing_in_the_product_imports_the_test_data_generator():
    product = [*(REPO / "core").rglob("*.py"), *DASHBOARD.rglob("*.py"), REPO / "train_cli.py"]
    importers = [p.relative_to(REPO) for p in product
                 if "testing" not in p.parts and any(m.startswith("core.testing") for m in imported_modules(p))]
    assert importers == []


def test_a_circle_is_found_where_there_is_one():
    """The circle finder itself: a -> b -> c -> a is one circle; d, importing into it, is not part of it."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert circles({"a": {"b"}, "b": set()}) == []
