"""One embedding space prepared once: PCA-reduced unit vectors and their exact cosine kNN graph (cached by content)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from core.analysis.diagnostics.thresholds import Thresholds
from core.store.cache_store import touch
from core.store.run_store import write_array

CHUNK_ROWS = 4096   # float16 -> float32 conversion in chunks: a 50k x 2048 space never exists in float32 whole


@dataclass
class Space:
    name: str
    unit: np.ndarray        # float32 [n, pca_dims], PCA-reduced then L2-normalised
    index: np.ndarray       # int64 [n, k], nearest neighbours by cosine, self excluded, nearest first
    similarity: np.ndarray  # float32 [n, k], cosine similarity in the reduced space


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def reduce(embedding: np.ndarray, dims: int, fit_rows: int, seed: int) -> np.ndarray:
    """PCA fitted on a seeded subsample (the leading directions are stable long before 50k rows)."""
    n, d = embedding.shape
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(n, size=min(n, fit_rows), replace=False))
    pca = PCA(n_components=min(dims, len(fit), d), svd_solver="auto", random_state=seed)
    pca.fit(embedding[fit].astype(np.float32))
    out = np.empty((n, pca.n_components_), dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        out[start:start + CHUNK_ROWS] = pca.transform(embedding[start:start + CHUNK_ROWS].astype(np.float32))
    return _normalise(out)


def knn(unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row by cosine (self excluded), nearest first: deterministic, never N x N.

    faiss's exact inner-product search (on unit vectors, cosine) with its own blocked top-k: 1.6-2.7x faster than
    scikit-learn's brute force on a 50,000 x 50 space here, the same neighbours but for float32 near-ties
    (bench/bench_diagnostics.py --compare-knn)."""
    import faiss  # lazy: on the training path only `--dedup-groups near` needs it

    n = len(unit)
    k = min(k, n - 1)
    vectors = np.ascontiguousarray(unit, dtype=np.float32)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    similarity, index = flat.search(vectors, k + 1)
    # drop each row itself; where identical vectors tie with it and push it out of the k + 1, drop the last
    keep = index != np.arange(n)[:, None]
    keep[keep.all(axis=1), -1] = False
    return index[keep].reshape(n, k).astype(np.int64), similarity[keep].reshape(n, k).astype(np.float32)


def _cache_stem(cache_dir: str | Path, embedding: np.ndarray, th: Thresholds) -> Path:
    import faiss
    import sklearn
    digest = hashlib.sha256()
    for start in range(0, len(embedding), CHUNK_ROWS):   # a memory-mapped embedding stays on disk
        digest.update(np.ascontiguousarray(embedding[start:start + CHUNK_ROWS]).tobytes())
    digest.update(f"{embedding.shape}|{embedding.dtype}|{th.pca_dims}|{th.pca_fit_rows}|{th.seed}|{th.neighbours}|"
                  f"scikit-learn {sklearn.__version__}|faiss {faiss.__version__}".encode())
    return Path(cache_dir) / "spaces" / digest.hexdigest()


def prepare(name: str, embedding: np.ndarray, th: Thresholds, cache_dir: str | Path | None = None) -> Space:
    """With `cache_dir`, kept there keyed by the embedding's bytes and the settings: a rerun on unchanged
    embeddings (`diagnose` again, a warm run) reads the graph instead of computing it."""
    stem = _cache_stem(cache_dir, embedding, th) if cache_dir else None
    files = [Path(f"{stem}_{part}.npy") for part in ("unit", "index", "similarity")] if stem else []
    if files and all(f.exists() for f in files):
        for f in files:
            touch(f)   # its last use, for `cache prune`
        return Space(name, *(np.load(f) for f in files))
    unit = reduce(embedding, th.pca_dims, th.pca_fit_rows, th.seed)
    index, similarity = knn(unit, th.neighbours)
    for f, array in zip(files, (unit, index, similarity)):
        write_array(f, array)
    return Space(name, unit, index, similarity)


def centred_cosine(embedding: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows a[i] and b[i] after subtracting the mean embedding, in full dimension.

    Every row's centred norm comes from one sequential pass; the pairs are then taken in blocks of their `a` rows,
    read contiguously, so only the `b` rows are gathered (half the random reads of gathering both)."""
    n = len(embedding)
    mean = embedding.mean(axis=0, dtype=np.float64).astype(np.float32)
    norms = np.empty(n, dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        norms[start:start + CHUNK_ROWS] = np.linalg.norm(
            embedding[start:start + CHUNK_ROWS].astype(np.float32) - mean, axis=1)
    norms = np.maximum(norms, 1e-12)
    out = np.empty(len(a), dtype=np.float32)
    order = np.argsort(a, kind="stable")
    bounds = np.searchsorted(a[order], np.arange(0, n + CHUNK_ROWS, CHUNK_ROWS))
    for block_start, lo, hi in zip(range(0, n, CHUNK_ROWS), bounds[:-1], bounds[1:]):
        if lo == hi:
            continue
        block = embedding[block_start:block_start + CHUNK_ROWS].astype(np.float32) - mean
        for part in np.array_split(order[lo:hi], -(-(hi - lo) // CHUNK_ROWS)):
            xb = embedding[b[part]].astype(np.float32) - mean
            dots = np.einsum("ij,ij->i", block[a[part] - block_start], xb)
            out[part] = dots / (norms[a[part]] * norms[b[part]])
    return out
