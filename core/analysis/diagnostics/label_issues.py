"""Suspected label errors, on the cross-validation part and on the test split, from detectors that must agree.

Three independent kinds of evidence, each a detector:
- cleanlab: each sample judged by models that never trained on it (out-of-fold probabilities for cv samples, the
  test ensemble's for test samples). Within each part every sample is ranked by cleanlab's label quality (the
  probability of the given label); it flags a sample when cleanlab's `find_label_issues` does or when the model
  gives another class at least `label_contradicted_confidence` (cleanlab's per-class thresholds sit near 0.99 on
  clean, easy data, which leaves labels contradicted at 85% unflagged).
- AUM: the area under the margin during training, at or below the threshold set by threshold samples
  (dynamics.py); cv samples only (the test split is never trained on), and only runs that kept their dynamics.
- neighbours: a vote of the image's nearest neighbours in the pretrained backbone space, which does not depend
  on the trained model: flagged when at least `neighbour_vote_share` of them carry one other label, and more of
  them than carry its own.
A sample is listed when any detector flags it; it is a suspected label error (`agreed`) when at least
`agreeing_detectors` do. One detector alone is often the model's own mistake on a hard image.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from core.analysis.diagnostics.thresholds import Thresholds

COLUMNS = ["sample_id", "path", "split", "label", "suggested_label", "quality", "suggested_confidence", "rank",
           "part_size", "flagged", "affects_test_metric", "cleanlab", "aum", "aum_flag", "neighbour_share",
           "neighbour_label", "neighbours_flag", "detectors", "detectors_available", "agreed"]
DETECTORS = ("cleanlab", "AUM", "neighbours")


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


def neighbour_vote(neighbours: np.ndarray, labels: np.ndarray, num_classes: int, th: Thresholds) -> pd.DataFrame:
    """Per sample (row order of `neighbours`, [n, k] indices): the share of its neighbours with its own label,
    the label most of the others carry, and whether the vote flags it (see the module docstring)."""
    votes = np.zeros((len(labels), num_classes))
    np.add.at(votes, (np.repeat(np.arange(len(labels)), neighbours.shape[1]), labels[neighbours].ravel()), 1)
    votes /= neighbours.shape[1]
    rows = np.arange(len(labels))
    own = votes[rows, labels]
    votes[rows, labels] = -1
    other = votes.argmax(axis=1)
    other_share = votes[rows, other]
    return pd.DataFrame({"neighbour_share": own, "neighbour_index": other,
                         "neighbours_flag": (other_share >= th.neighbour_vote_share) & (other_share > own)})


def label_issues(oof: pd.DataFrame, oof_probs: np.ndarray, test: pd.DataFrame, test_probs: np.ndarray,
                 samples: pd.DataFrame, classes: list[str], th: Thresholds, dynamics: pd.DataFrame | None = None,
                 vote: pd.DataFrame | None = None) -> pd.DataFrame:
    """Listed samples of both parts, agreed suspects first, then by label quality (see the module docstring).

    oof / test: prediction rows (sample_id, label) of the out-of-fold models and of the test ensemble, with
    their probabilities; `test` may be empty (no test split). `dynamics`: dynamics.parquet's rows (sample_id,
    aum, aum_flag), None without kept dynamics; `vote`: neighbour_vote's rows in `samples` order, None to leave
    the vote out."""
    parts = [_ranked_part(oof, oof_probs, "cv")]
    if len(test):
        parts.append(_ranked_part(test, test_probs, "test"))
    ranked = pd.concat(parts, ignore_index=True)
    ranked["cleanlab"] = ranked["flagged"] | ((ranked["suggested_index"] != ranked["label_index"])
                                              & (ranked["suggested_confidence"] >= th.label_contradicted_confidence))
    aum = (dynamics if dynamics is not None else pd.DataFrame(columns=["sample_id", "aum", "aum_flag"]))
    ranked = ranked.merge(aum[["sample_id", "aum", "aum_flag"]].astype({"sample_id": "int64", "aum": "float64"}),
                          on="sample_id", how="left")
    if vote is not None:
        ranked = ranked.merge(vote.assign(sample_id=samples["sample_id"].to_numpy(dtype="int64")), on="sample_id",
                              how="left")
    else:
        ranked = ranked.assign(neighbour_share=np.nan, neighbour_index=-1, neighbours_flag=np.nan)
    flags = ranked[["cleanlab", "aum_flag", "neighbours_flag"]]
    ranked["detectors_available"] = flags.notna().sum(axis=1)
    ranked["detectors"] = flags.eq(True).sum(axis=1)   # a detector that could not judge (NaN) does not flag
    ranked["aum_flag"] = ranked["aum_flag"].eq(True)
    ranked["neighbours_flag"] = ranked["neighbours_flag"].eq(True)
    ranked["agreed"] = ranked["detectors"] >= th.agreeing_detectors
    listed = ranked[ranked["detectors"] > 0].copy()
    names = np.asarray(classes)
    listed["path"] = samples.set_index("sample_id").loc[listed["sample_id"], "path"].to_numpy()
    listed["label"] = names[listed["label_index"].to_numpy()]
    listed["suggested_label"] = names[listed["suggested_index"].to_numpy()]
    listed["neighbour_label"] = np.where(listed["neighbour_index"] >= 0,
                                         names[listed["neighbour_index"].clip(lower=0).to_numpy()], None)
    listed["affects_test_metric"] = listed["split"] == "test"
    order = listed.sort_values(["detectors", "quality", "sample_id"], ascending=[False, True, True])
    return order[COLUMNS].reset_index(drop=True)


def summarize(issues: pd.DataFrame, n_cv: int, n_test: int, detectors: list[str]) -> dict:
    """diagnostics.json's label_issues: counts overall, per part and per detector, the agreed suspects, and the
    worst listed sample. `detectors`: those that ran (AUM needs kept dynamics)."""
    test = issues[issues["affects_test_metric"]]
    agreed = issues[issues["agreed"]]
    n = n_cv + n_test
    return {"count": len(issues), "n": n, "share": len(issues) / max(n, 1),
            "flagged": int(issues["flagged"].sum()), "contradicted_only": int((issues["cleanlab"]
                                                                               & ~issues["flagged"]).sum()),
            "detectors": detectors, "agreed": len(agreed), "agreed_share": len(agreed) / max(n, 1),
            "single": len(issues) - len(agreed),
            "by_detector": {"cleanlab": int(issues["cleanlab"].sum()), "AUM": int(issues["aum_flag"].sum()),
                            "neighbours": int(issues["neighbours_flag"].sum())},
            "cv": {"count": len(issues) - len(test), "agreed": int(agreed["split"].eq("cv").sum()), "n": n_cv},
            "test": {"count": len(test), "agreed": int(test["agreed"].sum()), "n": n_test},
            "worst": issues.iloc[0].to_dict() if len(issues) else None,
            "worst_test": test.iloc[0].to_dict() if len(test) else None}
