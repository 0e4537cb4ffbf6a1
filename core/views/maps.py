"""The embedding map: its coordinates (UMAP, else PCA), and at scale: the browser draws at most a point budget, a
selection takes every point inside the region the person drew (box or lasso), drawn or not."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from core.store import run_store
from core.views.tables import pca_2d

# Beyond this many points the map draws a fixed random sample: the browser's drawing and the page's payload
# grow with every point, while the picture (where classes lie, where they mix) is already clear.
MAP_POINT_BUDGET = 10_000


def map_coords(run_dir: Path, space: str, maps: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """The 2-D map of one embedding space (sample_id, x, y) and the projection's name: the UMAP coordinates the
    diagnostics wrote (`maps`, umap.parquet), else a quick PCA projection of the embedding standing in for them
    until they have run. None for the coordinates when the run has no embedding of that space either."""
    if maps is not None and (maps["space"] == space).any():
        return maps[maps["space"] == space], "UMAP"
    embedding = run_store.read_embedding(Path(run_dir), space)
    return (None if embedding is None else pca_2d(embedding)), "PCA"


def drawn_points(points: pd.DataFrame, budget: int = MAP_POINT_BUDGET, seed: int = 0) -> pd.DataFrame:
    """Every point up to `budget`, beyond it a random sample of `budget` points in their original order (the
    same sample on every rerun, so the picture does not jump)."""
    if len(points) <= budget:
        return points
    keep = np.sort(np.random.default_rng(seed).choice(len(points), size=budget, replace=False))
    return points.iloc[keep]


def points_in_region(points: pd.DataFrame, selection: Mapping[str, Any]) -> list[int]:
    """Sample ids of every point (x, y columns) inside a chart selection's boxes or lassos (Streamlit's
    selection state: box = [{"x": [x0, x1], "y": [y0, y1]}], lasso = [{"x": [...], "y": [...]}]). Without a
    region (a click), the clicked points' sample ids (their customdata)."""
    from matplotlib.path import Path as Polygon  # here: only a lasso needs matplotlib (a second to import)
    xy = points[["x", "y"]].to_numpy(dtype=float)
    inside = np.zeros(len(points), dtype=bool)
    for box in selection.get("box") or []:
        (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
        inside |= (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    for lasso in selection.get("lasso") or []:
        if len(lasso["x"]) >= 3:
            inside |= Polygon(np.column_stack([lasso["x"], lasso["y"]])).contains_points(xy)
    if selection.get("box") or selection.get("lasso"):
        return points.loc[inside, "sample_id"].astype(int).tolist()
    return [int(_first(p["customdata"])) for p in selection.get("points") or [] if "customdata" in p]


def _first(value: Any) -> Any:
    """customdata is a scalar or a list whose first entry is the sample id."""
    return value[0] if isinstance(value, (list, tuple)) else value
