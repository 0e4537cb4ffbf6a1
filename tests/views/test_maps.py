"""The embedding map: its coordinates (UMAP, else PCA), a point budget for drawing, selections that take every point
in their region."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.store import run_store
from core.views import maps as map_views


def grid(n_side: int) -> pd.DataFrame:
    """n_side x n_side points on the integer grid 0..n_side-1, sample ids in row order."""
    x, y = np.meshgrid(np.arange(n_side), np.arange(n_side))
    return pd.DataFrame({"sample_id": np.arange(n_side * n_side), "x": x.ravel().astype(float),
                         "y": y.ravel().astype(float)})


def test_small_maps_are_drawn_whole_and_big_ones_to_the_budget() -> None:
    points = grid(10)
    assert map_views.drawn_points(points, budget=100) is points
    drawn = map_views.drawn_points(points, budget=30)
    assert len(drawn) == 30 and drawn["sample_id"].is_monotonic_increasing
    assert drawn.equals(map_views.drawn_points(points, budget=30)), "the same sample on every rerun"


def test_a_lasso_selects_every_point_inside_it_including_those_not_drawn() -> None:
    points = grid(100)
    drawn = map_views.drawn_points(points, budget=500)
    # A triangle with corners (10, 10), (50, 10), (10, 50): points with x, y >= 10 and x + y <= 60, strictly
    # inside (the edges are ambiguous to any polygon test, so the triangle is nudged off the grid).
    lasso = {"x": [9.5, 50.7, 9.5], "y": [9.5, 9.5, 50.7]}
    selected = set(map_views.points_in_region(points, {"points": [], "box": [], "lasso": [lasso]}))
    expected = set(points.loc[(points["x"] >= 10) & (points["y"] >= 10) & (points["x"] + points["y"] <= 60),
                              "sample_id"])
    assert selected == expected
    not_drawn = expected - set(drawn["sample_id"])
    assert not_drawn and not_drawn <= selected


def test_boxes_and_lassos_add_up_and_a_box_may_be_drawn_in_any_direction() -> None:
    points = grid(20)
    box = {"x": [4.5, 2.5], "y": [1.5, 0.5]}          # dragged right to left, bottom to top: x 3..4, y 1
    lasso = {"x": [14.5, 15.5, 15.5, 14.5], "y": [14.5, 14.5, 15.5, 15.5]}    # the point (15, 15)
    selected = map_views.points_in_region(points, {"points": [], "box": [box], "lasso": [lasso]})
    assert sorted(selected) == [1 * 20 + 3, 1 * 20 + 4, 15 * 20 + 15]


def test_a_click_without_a_region_selects_the_clicked_points() -> None:
    clicked = {"points": [{"customdata": [7.0, 0.9]}, {"customdata": 12}], "box": [], "lasso": []}
    assert map_views.points_in_region(grid(5), clicked) == [7, 12]
    assert map_views.points_in_region(grid(5), {"points": [], "box": [], "lasso": []}) == []


def test_a_map_is_the_diagnostics_umap_else_a_pca_of_the_embedding_else_nothing(tmp_path) -> None:
    rng = np.random.default_rng(0)
    run_store.write_array(run_store.embedding_path(tmp_path, "backbone"), rng.normal(size=(30, 8)))
    umap = pd.DataFrame({"sample_id": [0, 1], "space": ["fold0", "fold0"], "x": [0.5, 1.5], "y": [2.0, 3.0]})
    coords, projection = map_views.map_coords(tmp_path, "fold0", umap)
    assert projection == "UMAP" and coords["x"].tolist() == [0.5, 1.5]
    for maps in (umap, None):   # umap.parquet without this space, or none yet: a PCA stand-in
        coords, projection = map_views.map_coords(tmp_path, "backbone", maps)
        assert projection == "PCA" and list(coords.columns) == ["sample_id", "x", "y"] and len(coords) == 30
    assert map_views.map_coords(tmp_path, "fold1", umap) == (None, "PCA")
