"""2-D UMAP maps of every embedding space, from the kNN graphs already computed.

A map is kept in the content-addressed cache, keyed by its inputs, so a rerun on the same data (or
`diagnose` again) reuses it and does not even pay umap-learn's just-in-time compilation.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis.diagnostics.neighbours import Space
from core.analysis.diagnostics.thresholds import Thresholds
from core.store.cache_store import touch
from core.store.run_store import write_array


def _embed(unit: np.ndarray, index: np.ndarray, similarity: np.ndarray, n_epochs: int | None, init: str,
           th: Thresholds) -> np.ndarray:
    import umap  # lazy: the training machine has no umap-learn

    n = len(unit)
    # our exact graph with self prepended, as umap-learn's own kNN search returns it
    knn_index = np.hstack([np.arange(n)[:, None], index])
    knn_distance = np.hstack([np.zeros((n, 1), np.float32), np.maximum(1.0 - similarity, 0.0)])
    with warnings.catch_warnings():
        # seeded => single-threaded, and no search index for transform(): both intended
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(n_neighbors=knn_index.shape[1], metric="cosine", min_dist=th.umap_min_dist,
                            n_epochs=n_epochs, init=init, random_state=th.seed,
                            precomputed_knn=(knn_index, knn_distance, None))
        return reducer.fit_transform(unit).astype(np.float32)


def _cache_file(cache_dir: Path, space: Space, n_epochs: int | None, init: str, th: Thresholds) -> Path:
    from importlib.metadata import version
    digest = hashlib.sha256()
    for array in (space.unit, space.index, space.similarity):
        digest.update(np.ascontiguousarray(array).tobytes())
    settings = f"{array.shape}|{n_epochs}|{init}|{th.umap_min_dist}|{th.seed}|umap-learn {version('umap-learn')}"
    digest.update(settings.encode())
    return Path(cache_dir) / "umap" / f"{digest.hexdigest()}.npy"


def _read_entry(path: Path) -> np.ndarray:
    touch(path)   # its last use, for `cache prune`
    return np.load(path)


def umap_maps(spaces: list[Space], th: Thresholds, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Each space seeded on its own, so results do not depend on how many run in parallel."""
    n = len(spaces[0].unit)
    large = n >= th.umap_large_n
    n_epochs = th.umap_large_epochs if large else None
    init = th.umap_large_init if large else "spectral"
    files = [_cache_file(cache_dir, s, n_epochs, init, th) if cache_dir else None for s in spaces]
    maps = [_read_entry(f) if f is not None and f.exists() else None for f in files]
    todo = [i for i, xy in enumerate(maps) if xy is None]
    jobs = [(spaces[i].unit, spaces[i].index, spaces[i].similarity, n_epochs, init, th) for i in todo]
    workers = min(len(jobs), os.cpu_count() or 1) if large else 1
    if workers > 1:
        from joblib import Parallel, delayed  # seeded UMAP is single-threaded: one process per space
        computed = Parallel(n_jobs=workers)(delayed(_embed)(*job) for job in jobs)
    else:
        computed = [_embed(*job) for job in jobs]
    for i, xy in zip(todo, computed):
        maps[i] = xy
        if files[i] is not None:
            write_array(files[i], xy)
    return pd.concat([
        pd.DataFrame({"sample_id": np.arange(n, dtype="int64"), "space": s.name,
                      "x": xy[:, 0].astype("float64"), "y": xy[:, 1].astype("float64")})
        for s, xy in zip(spaces, maps)
    ], ignore_index=True)
