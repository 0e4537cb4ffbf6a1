"""Suspected label errors: cleanlab confident learning on out-of-fold probabilities."""
from __future__ import annotations

import numpy as np
import pandas as pd


def label_issues(oof: pd.DataFrame, probs: np.ndarray, samples: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Flagged samples, worst (lowest label quality) first."""
    from cleanlab.filter import find_label_issues   # lazy: the training machine has no cleanlab
    from cleanlab.rank import get_label_quality_scores

    labels = oof["label"].to_numpy()
    probs = probs / probs.sum(axis=1, keepdims=True)   # float32 rounding: cleanlab wants rows summing to 1
    flagged = find_label_issues(labels, probs, n_jobs=1)
    quality = get_label_quality_scores(labels, probs)
    ids = oof["sample_id"].to_numpy()[flagged]
    names = np.asarray(classes)
    frame = pd.DataFrame({
        "sample_id": ids.astype("int64"),
        "path": samples.set_index("sample_id").loc[ids, "path"].to_numpy(),
        "label": names[labels[flagged]],
        "suggested_label": names[probs[flagged].argmax(axis=1)],
        "quality": quality[flagged].astype("float64"),
    })
    return frame.sort_values(["quality", "sample_id"]).reset_index(drop=True)
