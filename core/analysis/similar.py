"""Similar images: exact cosine nearest neighbours in one embedding space of a run, across all its samples.

The index of a space is a faiss `IndexFlatIP` over its L2-normalised rows: exact (brute-force) inner product,
which on unit vectors is cosine similarity. scikit-learn's brute-force NearestNeighbors gives the same answer
but takes ~0.35 s per query on 50k x 2048 (it recomputes the row norms every call); faiss answers in about
0.1 s on a 2-core machine (bench/bench_similar.py). The index is built once per embedding file and kept in the
content-addressed cache (`default_cache_dir()`/neighbours), never in the run directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from core.config import default_cache_dir
from core.store.cache_store import touch
from core.store.hashing import memoised_file_sha256
from core.store.run_store import atomic_path, embedding_path

CHUNK_ROWS = 4096   # float16 -> float32 in chunks, so a 50k x 2048 space is never held twice


@dataclass
class NeighbourIndex:
    space: str
    flat: faiss.IndexFlatIP     # L2-normalised float32 rows in sample_id order (memory-mapped from the cache)

    def __len__(self) -> int:
        return self.flat.ntotal

    def vectors(self, sample_ids: list[int]) -> np.ndarray:
        """The unit vectors of some samples, [len(sample_ids), dim]."""
        return np.stack([self.flat.reconstruct(int(i)) for i in sample_ids])


def normalised(embedding: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32 (a zero row stays zero)."""
    out = np.empty(embedding.shape, dtype=np.float32)
    for start in range(0, len(embedding), CHUNK_ROWS):
        block = np.asarray(embedding[start:start + CHUNK_ROWS], dtype=np.float32)
        out[start:start + CHUNK_ROWS] = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    return out


def index_path(run_dir: str | Path, space: str, cache_dir: str | Path | None = None) -> Path:
    """Where the index of `space` lives in the cache: keyed by the sha256 of the embedding file's bytes."""
    source = embedding_path(Path(run_dir), space)
    digest = memoised_file_sha256(source)
    return Path(cache_dir or default_cache_dir()) / "neighbours" / digest[:2] / f"{digest}_flatip.faiss"


def load_index(run_dir: str | Path, space: str, cache_dir: str | Path | None = None) -> NeighbourIndex:
    """The index of one space of a run, built into the cache the first time. Raises FileNotFoundError when the
    run has no such space."""
    target = index_path(run_dir, space, cache_dir)
    if not target.exists():
        unit = normalised(np.load(embedding_path(Path(run_dir), space), mmap_mode="r"))
        flat = faiss.IndexFlatIP(unit.shape[1])
        flat.add(unit)
        with atomic_path(target) as temporary:   # two sessions building it at once never read half a file
            faiss.write_index(flat, str(temporary))
    touch(target)   # its last use, for `cache prune`
    return NeighbourIndex(space, faiss.read_index(str(target), faiss.IO_FLAG_MMAP))


def nearest(index: NeighbourIndex, query: np.ndarray, k: int, exclude: set[int] = frozenset()) -> pd.DataFrame:
    """The k samples most similar to the `query` vector (any length; it is normalised), leaving out `exclude`:
    sample_id and cosine `distance` (1 - cosine similarity), nearest first, ties by sample_id."""
    vector = np.asarray(query, dtype=np.float32).reshape(1, -1)
    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    similarity, ids = index.flat.search(vector, min(len(index), k + len(exclude)))
    frame = pd.DataFrame({"sample_id": ids[0].astype(np.int64),
                          "distance": np.clip(1.0 - similarity[0].astype(np.float64), 0.0, 2.0)})
    frame = frame[~frame["sample_id"].isin(list(exclude))]
    return frame.sort_values(["distance", "sample_id"], kind="stable", ignore_index=True).head(k)


def like_image(index: NeighbourIndex, sample_id: int, k: int = 12) -> pd.DataFrame:
    """The k images most like one image of the run (itself left out)."""
    return nearest(index, index.vectors([sample_id])[0], k, exclude={int(sample_id)})


def like_selection(index: NeighbourIndex, sample_ids: list[int], k: int = 12) -> pd.DataFrame:
    """The k images most like a selection as a whole: nearest to the mean of its unit vectors, the selection
    itself left out."""
    ids = sorted({int(i) for i in sample_ids})
    if not ids:
        raise ValueError("an empty selection has no images like it")
    return nearest(index, index.vectors(ids).mean(axis=0), k, exclude=set(ids))


def describe(neighbours: pd.DataFrame, rows: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Neighbours with what a gallery shows: path, split, given label, and the prediction of the run for it.

    rows: `views.space_rows`-like predictions (sample_id, true_name, pred_name, confidence, correct, role), one
    row per sample; samples without a prediction (a run still training) keep their label and no prediction.
    """
    columns = ["sample_id", "true_name", "pred_name", "confidence", "correct", "role"]
    once = rows[columns].drop_duplicates("sample_id")
    frame = (neighbours.merge(samples[["sample_id", "path", "label", "split"]], on="sample_id", how="left")
             .merge(once, on="sample_id", how="left"))
    frame["true_name"] = frame["true_name"].fillna(frame["label"])
    return frame

