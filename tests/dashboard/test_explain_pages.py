"""The pages that show class activation maps, image properties and failing slices (AppTest), and the view
functions behind them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from dashboard_fixtures import COMPLETE, dashboard_env, open_page, runs_dir  # noqa: F401
from diagnostics_fixtures import Spec, make_run
from explain_fixtures import trained_runs  # noqa: F401
from streamlit.testing.v1 import AppTest

from core.analysis.diagnostics import run_diagnostics
from core.store import run_store
from core.views import images as explain_views


def texts(app: AppTest) -> str:
    return "\n".join([m.value for m in app.markdown] + [c.value for c in app.caption]
                     + [e.body for kind in (app.info, app.warning, app.success) for e in kind])


@pytest.fixture
def trained_env(trained_runs, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(trained_runs["head"].parent))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("page", ["Misclassified", "Classes"])
def test_galleries_show_each_images_map_beside_it(trained_env, trained_runs, page) -> None:
    run = trained_runs["head"].name
    with_maps = open_page_slow(page, run=run, cam="true")
    assert not with_maps.exception, with_maps.exception[0].stack_trace
    assert len(with_maps.image) >= 2 and len(with_maps.image) % 2 == 0   # image, map, image, map, ...
    maps = list((trained_env / "gradcam").rglob("*.png"))
    assert len(maps) == len(with_maps.image) // 2
    without = open_page_slow(page, run=run, cam="off")
    assert not without.exception and len(without.image) == len(with_maps.image) // 2


def test_a_gallery_whose_maps_cannot_be_made_shows_its_images_once_and_says_why(trained_env, trained_runs,
                                                                                monkeypatch) -> None:
    from core.analysis import explain
    calls = []
    monkeypatch.setattr(explain.Explainer, "overlays", lambda self, requests, log=None: calls.append(len(requests)))
    app = open_page_slow("Misclassified", run=trained_runs["head"].name, cam="predicted")
    assert not app.exception and app.image   # the images, drawn before the maps were tried
    assert len(calls) == 1   # tried once: a map that never appears does not draw the page again and again
    assert not list((trained_env / "gradcam").rglob("*.png"))


def test_a_run_without_checkpoints_shows_images_and_says_why_there_are_no_maps(dashboard_env) -> None:
    app = open_page_slow("Misclassified", run=COMPLETE)
    assert not app.exception and app.image
    assert "need the fold checkpoints" in texts(app)


def test_data_page_shows_a_property_per_class_and_outcome_with_the_shortcut_check(dashboard_env) -> None:
    app = open_page_slow("Data", run=COMPLETE, tab="properties", property="colourfulness", by="outcome")
    assert not app.exception, app.exception[0].stack_trace
    assert "Shortcut check" in texts(app)
    shortcut = app.dataframe[0].value
    assert set(shortcut["property"]) >= {"brightness", "colourfulness"}


@pytest.fixture
def slice_env(tmp_path, monkeypatch) -> Path:
    run = make_run(tmp_path / "runs", Spec(noisy_kind=30, class_scale=3.0, group_scale=1.0))
    run_diagnostics(run, log=lambda line: None)
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))
    return run


def test_slices_page_ranks_describes_maps_and_shows_a_slice(slice_env) -> None:
    app = open_page_slow("Slices", run=slice_env.name, slice="slice1")
    assert not app.exception, app.exception[0].stack_trace
    table = app.dataframe[0].value
    assert list(table["slice"]) == ["slice1"] and table["error"].iloc[0] > table["run_error"].iloc[0]
    assert "**slice1.** 30 similar images" in texts(app)
    assert "Images of slice1" in [h.value for h in app.subheader]


def test_slices_page_says_when_there_is_none(dashboard_env) -> None:
    block = run_store.read_json(dashboard_env / COMPLETE / "diagnostics.json")["slices"]
    app = open_page_slow("Slices", run=COMPLETE)
    assert not app.exception
    assert ("No failing slice" in texts(app)) == (not block["found"])


# ---------------------------------------------------------------- views

def test_map_requests_take_the_predicted_or_true_class_of_each_row() -> None:
    rows = pd.DataFrame({"sample_id": [4, 7], "model": ["fold0", "ensemble"], "label": [0, 1], "pred": [2, 0]})
    predicted = explain_views.map_requests(rows, "predicted")
    assert [(r.sample_id, r.model, r.class_index) for r in predicted.values()] == [(4, "fold0", 2),
                                                                                   (7, "ensemble", 0)]
    assert [r.class_index for r in explain_views.map_requests(rows, "true").values()] == [0, 1]
    assert explain_views.map_requests(rows, "off") == {}


def test_slice_rows_put_the_examples_first_then_mistakes() -> None:
    rows = pd.DataFrame({"sample_id": [1, 2, 3, 4, 5], "correct": [True, False, True, False, True],
                         "confidence": [0.9, 0.8, 0.7, 0.6, 0.5]})
    members = pd.DataFrame({"slice": ["slice1"] * 4 + ["slice2"], "sample_id": [1, 2, 3, 4, 5]})
    assert explain_views.slice_rows(rows, members, "slice1", [4, 1])["sample_id"].tolist() == [4, 1, 2, 3]
    points = explain_views.slice_points(pd.DataFrame({"sample_id": [1, 5], "x": [0, 1], "y": [0, 1]}), members,
                                        "slice2")
    assert points["in_slice"].tolist() == [False, True]


def open_page_slow(page: str, **params: str):
    """Pages that compute class activation maps on first view: torch on a busy CPU."""
    return open_page(page, timeout=180, **params)


def test_slices_page_finds_images_like_the_slice(slice_env) -> None:
    app = open_page_slow("Slices", run=slice_env.name, slice="slice1")
    app.session_state["like"] = True   # the "Images like this slice" expander, opened
    app.run()
    assert not app.exception, app.exception[0].stack_trace
    assert any(box.label == "Embedding space" for box in app.selectbox)
