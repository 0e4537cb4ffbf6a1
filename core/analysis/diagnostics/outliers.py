"""Images far from everything of their class in backbone space."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.diagnostics.neighbours import knn
from core.analysis.diagnostics.thresholds import Thresholds


def class_distance(unit: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean cosine distance to the k nearest neighbours with the same label (NaN for a class of one)."""
    score = np.full(len(unit), np.nan)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        _, similarity = knn(unit[members], k)
        score[members] = (1.0 - similarity).mean(axis=1)
    return score


def robust_z(score: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(score - class median) / (1.4826 * class MAD): how unusual a score is for its own class."""
    z = np.full(len(score), np.nan)
    for label in np.unique(labels):
        members = np.flatnonzero((labels == label) & ~np.isnan(score))
        if len(members) == 0:
            continue
        median = np.median(score[members])
        mad = 1.4826 * np.median(np.abs(score[members] - median))
        z[members] = (score[members] - median) / max(mad, 1e-12)
    return z


def outliers(samples: pd.DataFrame, unit: np.ndarray, th: Thresholds) -> pd.DataFrame:
    """Every sample, most isolated (highest robust z) first."""
    labels = samples["label"].to_numpy()
    score = class_distance(unit, labels, th.outlier_neighbours)
    z = robust_z(score, labels)
    frame = pd.DataFrame({
        "sample_id": samples["sample_id"].to_numpy(dtype="int64"), "path": samples["path"].to_numpy(),
        "label": labels, "split": samples["split"].to_numpy(), "distance": score, "z": z,
        "is_outlier": np.nan_to_num(z, nan=-np.inf) > th.outlier_z,
    })
    return frame.sort_values(["z", "sample_id"], ascending=[False, True], na_position="last").reset_index(drop=True)
