"""The dashboard's cached reads of a run: read once and shared by every session, bounded, and a page that
changes the table it was given changes only its own copy."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from core.store import run_store
from core.testing.synthetic import make_synthetic_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runs(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "dashboard"))
    module = importlib.import_module("runs")
    module._shared_table.clear()
    module._shared_rows.clear()
    module._shared_call.clear()
    return module


@pytest.fixture
def run(runs, tmp_path):
    make_synthetic_run(tmp_path / "runs", "20250101-000000-cache", 60, diagnostics=False)
    (entry,) = run_store.list_runs(tmp_path / "runs")
    return runs.run_of(entry)


def test_a_table_is_read_once_for_every_caller(runs, run, monkeypatch):
    reads = []
    real = run_store.read_table
    monkeypatch.setattr(run_store, "read_table", lambda path, name: reads.append(name) or real(path, name))
    first, second = run.table("samples"), run.table("samples")
    assert reads == ["samples"] and first.equals(second)
    run.rows("oof"), run.rows("oof")
    assert reads == ["samples", "predictions"]


def test_a_change_one_caller_makes_is_not_seen_by_the_next(runs, run):
    mine = run.table("samples")
    original = mine.loc[0, "label"]
    mine["note"] = "mine"
    mine.loc[0, "label"] = "changed"
    again = run.table("samples")
    assert "note" not in again.columns and again.loc[0, "label"] == original
    rows = run.rows("oof")
    rows.loc[rows.index[0], "correct"] = not rows["correct"].iloc[0]
    assert run.rows("oof")["correct"].iloc[0] != rows["correct"].iloc[0]


def test_a_derived_view_is_computed_once_for_every_session_and_a_frame_stays_the_callers(runs, run):
    calls = []

    def first_rows(run, n):
        calls.append(n)
        return run.table("samples").head(n)

    mine, theirs = runs.cached(first_rows, run, 3), runs.cached(first_rows, run, 3)
    assert calls == [3] and mine.equals(theirs) and mine is not theirs
    mine["note"] = "mine"
    mine.loc[mine.index[0], "label"] = "changed"
    again = runs.cached(first_rows, run, 3)
    assert "note" not in again.columns and again["label"].iloc[0] != "changed"
    runs.cached(first_rows, run, 4)
    assert calls == [3, 4]


def test_a_shared_figure_is_one_object_and_views_of_the_same_name_on_two_pages_are_apart(runs, run):
    # page scripts all run as __main__: two pages may define a view of the same name
    pages = {}
    for page in ("1_A.py", "2_B.py"):
        exec(compile(f"def view(run):\n    return {{'page': {page!r}}}\n", page, "exec"), pages.setdefault(page, {}))
    a, b = (runs.cached(pages[page]["view"], run) for page in ("1_A.py", "2_B.py"))
    assert a == {"page": "1_A.py"} and b == {"page": "2_B.py"}
    assert runs.cached(pages["1_A.py"]["view"], run) is a


def test_a_finished_figure_is_drawn_as_it_is(monkeypatch):
    """Every session draws a shared figure at once: `chart` must not write into it."""
    import plotly.graph_objects as go

    monkeypatch.syspath_prepend(str(REPO / "dashboard"))
    charts = importlib.import_module("charts")
    shared = charts.finished(go.Figure(go.Bar(x=[1], y=[2])))
    writes, real = [], go.Figure.update_layout
    monkeypatch.setattr(go.Figure, "update_layout", lambda self, **kwargs: writes.append(self) or real(self, **kwargs))
    monkeypatch.setattr(charts.st, "plotly_chart", lambda figure, **kwargs: figure)
    assert charts.chart(shared) is shared and writes == []
    fresh = go.Figure()
    assert charts.chart(fresh).layout.margin.l == 10 and writes == [fresh]


def test_every_cache_in_the_dashboard_is_bounded():
    """A cache without max_entries grows with every run, space and argument people look at, for as long as the
    server runs."""
    uses, bounded = set(), set()
    for path in sorted((REPO / "dashboard").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in ("cache_data", "cache_resource")
                    and isinstance(node.value, ast.Name) and node.value.id == "st"):
                uses.add(f"{path.name}:{node.lineno}:{node.col_offset}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and "max_entries" in {keyword.arg for keyword in node.keywords}):
                bounded.add(f"{path.name}:{node.func.lineno}:{node.func.col_offset}")
    assert len(uses) >= 6 and sorted(uses - bounded) == []
