"""Synthetic cases for the diagnostics' false alarms and misses, shared by tests and bench/bench_false_alarms.py:
look-alike items with no duplicate among them, and a small run with (or without) a moderately failing kind."""
from __future__ import annotations

import numpy as np
import pandas as pd


def look_alikes(n: int, shared: float, seed: int = 0, dim: int = 256) -> np.ndarray:
    """Distinct items of three look-alike classes: each embedding is its class's look times `shared` plus the
    item's own detail, so nearest neighbours sit at cosine 0.7-0.9 (like greyscale product photos) without any
    two being the same item. Class of row i: i % 3."""
    rng = np.random.default_rng(seed)
    looks = rng.normal(size=(3, dim))
    return looks[np.arange(n) % 3] * shared + rng.normal(size=(n, dim))


def plant_copy(x: np.ndarray, original: int, copy: int, seed: int = 1) -> np.ndarray:
    """Row `copy` becomes `original` rescaled and noised: the same image resized and re-encoded."""
    x = x.copy()
    x[copy] = x[original] * 1.02 + np.random.default_rng(seed).normal(size=x.shape[1]) * 0.15
    return x


def small_run(seed: int, planted: int, n: int = 400, base: float = 0.12,
              bad: float = 0.45) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """(embedding, samples with fold, out-of-fold predictions) of an n-image run: 12 kinds of image plus
    `planted` images of one more kind (the last rows), wrong out of fold at `bad` against `base` elsewhere
    (a moderate slice), over 5 folds drawn at random."""
    rng = np.random.default_rng(seed)
    kinds = rng.normal(size=(12, 64)) * 2.0
    x = np.concatenate([kinds[rng.integers(0, 12, size=n - planted)],
                        np.tile(rng.normal(size=64) * 2.0, (planted, 1))]) + rng.normal(size=(n, 64))
    wrong = rng.random(n) < np.r_[np.full(n - planted, base), np.full(planted, bad)]
    label = rng.integers(0, 3, size=n)
    samples = pd.DataFrame({"sample_id": np.arange(n), "fold": rng.integers(0, 5, size=n)})
    oof = pd.DataFrame({"sample_id": np.arange(n), "label": label, "pred": np.where(wrong, (label + 1) % 3, label),
                        "confidence": 0.8})
    return x.astype(np.float32), samples, oof
