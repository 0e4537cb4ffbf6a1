"""Suspected label errors, on the cross-validation part and on the test split.

Each sample is judged by models that never trained on it: out-of-fold probabilities for cv samples, the test
ensemble's for test samples. Within each part every sample is ranked by cleanlab's label quality (the
probability of the given label); a sample is listed when cleanlab's `find_label_issues` flags it or when the
model gives another class at least `label_contradicted_confidence`. cleanlab's per-class thresholds sit near
0.99 on clean, easy data, which leaves labels contradicted at 85% unflagged; the ranking puts them first anyway.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from core.analysis.diagnostics.thresholds import Thresholds

COLUMNS = ["sample_id", "path", "split", "label", "suggested_label", "quality", "suggested_confidence", "rank",
           "part_size", "flagged", "affects_test_metric"]


def _ranked_part(rows: pd.DataFrame, probs: np.ndarray, split: str) -> pd.DataFrame:
    """Every sample of one part with its label quality, rank (1 = lowest quality) and cleanlab's flag."""
    from cleanlab.filter import find_label_issues  # lazy: the training machine has no cleanlab
    from cleanlab.rank import get_label_quality_scores

    labels = rows["label"].to_numpy()
    probs = probs / probs.sum(axis=1, keepdims=True)   # float32 rounding: cleanlab wants rows summing to 1
    with warnings.catch_warnings():
        # a small test split has few examples per class: cleanlab says it may flag less, the ranking still lists
        warnings.filterwarnings("ignore", message="May not flag all label issues", category=UserWarning)
        flagged = find_label_issues(labels, probs, n_jobs=1)
    quality = get_label_quality_scores(labels, probs)
    suggested = probs.argmax(axis=1)
    order = np.lexsort((rows["sample_id"].to_numpy(), quality))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(1, len(rows) + 1)
    return pd.DataFrame({"sample_id": rows["sample_id"].to_numpy(dtype="int64"), "split": split,
                         "label_index": labels, "suggested_index": suggested, "quality": quality.astype("float64"),
                         "suggested_confidence": probs[np.arange(len(rows)), suggested].astype("float64"),
                         "rank": rank, "part_size": len(rows), "flagged": flagged.astype(bool)})


def label_issues(oof: pd.DataFrame, oof_probs: np.ndarray, test: pd.DataFrame, test_probs: np.ndarray,
                 samples: pd.DataFrame, classes: list[str], th: Thresholds) -> pd.DataFrame:
    """Listed samples of both parts, lowest label quality first (see the module docstring).

    oof / test: prediction rows (sample_id, label) of the out-of-fold models and of the test ensemble, with
    their probabilities; `test` may be empty (no test split)."""
    parts = [_ranked_part(oof, oof_probs, "cv")]
    if len(test):
        parts.append(_ranked_part(test, test_probs, "test"))
    ranked = pd.concat(parts, ignore_index=True)
    contradicted = ((ranked["suggested_index"] != ranked["label_index"])
                    & (ranked["suggested_confidence"] >= th.label_contradicted_confidence))
    listed = ranked[ranked["flagged"] | contradicted].copy()
    names = np.asarray(classes)
    listed["path"] = samples.set_index("sample_id").loc[listed["sample_id"], "path"].to_numpy()
    listed["label"] = names[listed["label_index"].to_numpy()]
    listed["suggested_label"] = names[listed["suggested_index"].to_numpy()]
    listed["affects_test_metric"] = listed["split"] == "test"
    return listed.sort_values(["quality", "sample_id"])[COLUMNS].reset_index(drop=True)


def summarize(issues: pd.DataFrame, n_cv: int, n_test: int) -> dict:
    """diagnostics.json's label_issues: counts overall, per part, and the worst listed sample."""
    test = issues[issues["affects_test_metric"]]
    n = n_cv + n_test
    return {"count": len(issues), "n": n, "share": len(issues) / max(n, 1),
            "flagged": int(issues["flagged"].sum()), "contradicted_only": int((~issues["flagged"]).sum()),
            "cv": {"count": len(issues) - len(test), "n": n_cv}, "test": {"count": len(test), "n": n_test},
            "worst": issues.iloc[0].to_dict() if len(issues) else None,
            "worst_test": test.iloc[0].to_dict() if len(test) else None}
