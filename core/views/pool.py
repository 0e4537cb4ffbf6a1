"""A run's unlabelled pool (`train_cli.py pool`, pool/) shaped for the Embeddings page: its images on the map beside
the labelled ones, and the gallery of the last picks.

The map's UMAP keeps no model to place new points with, so a pool image is drawn where its `MAP_NEIGHBOURS`
nearest labelled images lie in the backbone space (cosine on the stored features): at their mean map position,
weighted by softmax(cosine / `MAP_TEMPERATURE`), so mostly by the nearest (a plain mean would put an image whose
neighbours lie in different map regions in the empty space between them). A pool image sits among the labelled
images it resembles; its exact place there is an approximation (the same rule on the PCA stand-in map)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.store import run_store

POOL_NAME = "unlabelled pool"
PICKED_NAME = "picked to label next"
POOL_COLOR = "#7f7f7f"        # grey: not a class colour
PICKED_COLOR = "#222222"
MAP_NEIGHBOURS = 5
MAP_TEMPERATURE = 0.02      # cosine: neighbours 0.05 less similar than the nearest weigh e^-2.5 = 8% as much
ADD_COMMAND = "python train_cli.py pool {run_id} --add UNLABELLED_FOLDER"
PICK_COMMAND = "python train_cli.py pool {run_id} --budget 20 --out to_label.csv"


def place_on_map(labelled: np.ndarray, pool: np.ndarray, coords: pd.DataFrame, k: int = MAP_NEIGHBOURS) -> np.ndarray:
    """[n_pool, 2] map positions: the mean map position (`coords`: sample_id, x, y) of each pool image's k nearest
    labelled images by cosine, weighted by softmax(cosine / MAP_TEMPERATURE)."""
    import faiss  # here: only a page with a pool needs it
    from core.analysis.similar import normalised
    xy = coords.set_index("sample_id").reindex(np.arange(len(labelled)))[["x", "y"]].to_numpy(np.float64)
    mapped = np.flatnonzero(~np.isnan(xy).any(axis=1))
    if len(pool) == 0 or len(mapped) == 0:
        return np.zeros((len(pool), 2))
    index = faiss.IndexFlatIP(labelled.shape[1])
    index.add(normalised(labelled[mapped]))
    similarity, nearest = index.search(normalised(pool), min(k, len(mapped)))
    similarity = similarity.astype(np.float64)
    weights = np.exp((similarity - similarity[:, :1]) / MAP_TEMPERATURE)   # nearest first: its weight is 1
    return np.einsum("nk,nkd->nd", weights, xy[mapped][nearest]) / weights.sum(axis=1, keepdims=True)


def pool_points(run_dir: Path, coords: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per pool image to draw on the backbone map: pool_id, x, y, picked (in the last picks), hover (its
    words); None when the run has no pool or no map."""
    pool = run_store.read_pool(Path(run_dir))
    labelled = run_store.read_embedding(Path(run_dir), "backbone")
    if pool is None or coords is None or labelled is None:
        return None
    xy = place_on_map(labelled.astype(np.float32), pool.features, coords)
    picks = run_store.read_picks(Path(run_dir))
    picked = pool.table["pool_id"].isin([] if picks is None else picks["pool_id"]).to_numpy()
    table = pool.table
    hover = [f"pool image {row.pool_id}: {Path(row.path).name}<br>predicted {row.prediction} ({row.confidence:.0%})"
             for row in table.itertuples()]
    return pd.DataFrame({"pool_id": table["pool_id"].to_numpy(), "x": xy[:, 0], "y": xy[:, 1], "picked": picked,
                         "hover": hover})


def pool_summary(info: dict | None) -> str | None:
    """One line on the pool: how many images, from how many files, what was set aside."""
    if info is None:
        return None
    return (f"Unlabelled pool: {info['n_images']} distinct images from {info['n_files']} files "
            f"({len(info['skipped'])} unreadable skipped; {info['identical_to_labelled']} identical to and "
            f"{info['near_labelled']} near-duplicates of labelled images, never picked). Drawn as hollow grey circles "
            f"on the backbone map, beside the labelled images they most resemble (an approximate place: the map "
            f"has no model for new points).")


def picks_gallery(picks: pd.DataFrame | None, pool_table: pd.DataFrame | None) -> pd.DataFrame | None:
    """The picks in rank order with the file to show (`file`: only a path the pool lists, so the page never opens
    a path from anywhere else; None when it is gone); None without picks."""
    if picks is None or pool_table is None:
        return None
    listed = set(pool_table["path"])
    files = [path if path in listed and Path(path).is_file() else None for path in picks["path"]]
    return picks.assign(file=pd.Series(files, index=picks.index, dtype=object))
