"""A run with a class hierarchy and classes left out: Home shows the superclass headline, the errors kept inside
a superclass and the classes left out; Classes the superclass confusion; Data lists the classes left out."""
from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_fixtures import open_page, point_dashboard_at

from core.testing.synthetic import make_synthetic_run

HIER, FLAT = "20250111-120000-hierarchy", "20250111-120000-flat"
DROPPED = [{"label": f"thin_{i}", "images": 2 + i % 3, "units": 2 + i % 3} for i in range(8)]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("hierarchy") / "runs"
    make_synthetic_run(runs, HIER, 150, 6, 3, 16, seed=7, files_per_class=2, epochs=3, diagnostics=False,
                       n_superclasses=2, dropped_classes=DROPPED)
    make_synthetic_run(runs, FLAT, 90, 3, 3, 16, seed=8, files_per_class=2, epochs=3, diagnostics=False)
    return runs


@pytest.fixture()
def env(runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    point_dashboard_at(runs_dir, tmp_path / "cache", monkeypatch)
    return runs_dir


def test_home_shows_the_superclass_headline_and_the_classes_left_out(env: Path) -> None:
    app = open_page(run=HIER)
    assert not app.exception
    labels = [m.label for m in app.metric]
    assert "Superclass test balanced accuracy" in labels and "Test balanced accuracy" in labels
    assert any("Class errors that stay inside the true superclass, out-of-fold: " in c.value for c in app.caption)
    [warning] = app.warning
    text = warning.value.replace("\\", "")   # written through plain(): markup characters escaped
    assert text.startswith("8 classes (23 images) left out") and "thin_0 (2)" in text and text.endswith("and 3 more.")


def test_a_flat_run_shows_neither(env: Path) -> None:
    app = open_page(run=FLAT)
    assert not app.exception and not app.warning
    assert not any(m.label.startswith("Superclass") for m in app.metric)
    classes = open_page("Classes", run=FLAT)
    assert not classes.exception and "Superclasses" not in [h.value for h in classes.subheader]


def test_classes_shows_the_superclass_confusion_and_scores(env: Path) -> None:
    app = open_page("Classes", run=HIER)
    assert not app.exception and "Superclasses" in [h.value for h in app.subheader]
    assert any("Superclass confusion, pooled out-of-fold" in c.proto.spec for c in app.get("plotly_chart"))
    scores = [d.value for d in app.dataframe if d.value.index.name == "superclass"]
    assert scores and list(scores[0].index) == ["super_0", "super_1"]


def test_data_lists_every_class_left_out(env: Path) -> None:
    app = open_page("Data", run=HIER, tab="balance")
    assert not app.exception and "Left out of the run" in [h.value for h in app.subheader]
    [table] = [d.value for d in app.dataframe if list(d.value.columns) == ["class", "images", "units"]]
    assert list(table["class"]) == [d["label"] for d in DROPPED]
