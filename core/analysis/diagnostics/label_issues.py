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
A sample is listed when any detector flags it. The headline, the suspected label errors (`agreed`), is chosen
from combined evidence rather than from flags alone:
- evidence: each detector's score turned into its percentile rank within the part (cleanlab: low label quality;
  AUM: low AUM; neighbours: the vote's margin against the given label), averaged over the detectors that could
  judge the sample (rank averaging: no detector's scale dominates, and one extreme score alone cannot lift a
  sample above those several detectors doubt);
- count: an estimate of how many labels are wrong. With training dynamics, AUM's own: the images at or below
  the threshold the threshold samples set (Pleiss et al., 2020; 0 in finetune runs), a count that stays small
  where the model is weak or the classes look alike, because it asks whether training could fit the label, not
  whether held-out models agree with it; without them, cleanlab's `num_label_issues` (calibrated confident joint). The share it gives on
  the cross-validation part is applied to the test split too (the splits are drawn alike);
- the headline is that many samples of each part with the strongest evidence among those at least
  `agreeing_detectors` flag. One detector alone is often the model's own mistake on a hard image.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from core.analysis.diagnostics.thresholds import Thresholds

COLUMNS = ["sample_id", "path", "split", "label", "suggested_label", "quality", "suggested_confidence", "rank",
           "part_size", "flagged", "affects_test_metric", "cleanlab", "aum", "aum_flag", "neighbour_share",
           "neighbour_label", "neighbours_flag", "detectors", "detectors_available", "evidence", "agreed"]
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
    return pd.DataFrame({"neighbour_share": own, "neighbour_index": other, "neighbour_margin": other_share - own,
                         "neighbours_flag": (other_share >= th.neighbour_vote_share) & (other_share > own)})


def combined_evidence(ranked: pd.DataFrame) -> np.ndarray:
    """Per row, the mean percentile rank (0..1, 1 = most suspect within its part) of every detector's score that
    could judge it: low label quality, low AUM, a neighbour vote against the given label (see the module
    docstring). Ties share their mean rank; a detector that cannot judge a row (NaN) is left out of its mean."""
    scores = pd.DataFrame({"cleanlab": -ranked["quality"], "AUM": -ranked["aum"],
                           "neighbours": ranked["neighbour_margin"]})
    percentiles = pd.DataFrame(index=ranked.index, columns=scores.columns, dtype="float64")
    for _, part in ranked.groupby("split"):
        for name in scores:
            column = scores.loc[part.index, name].to_numpy(dtype="float64")
            judged = ~np.isnan(column)
            if judged.any():
                percentiles.loc[part.index[judged], name] = rankdata(column[judged]) / judged.sum()
    return percentiles.mean(axis=1, skipna=True).fillna(0.0).to_numpy()


def estimated_errors(oof_labels: np.ndarray, oof_probs: np.ndarray, aum_flags: pd.Series | None) -> dict:
    """How many of the cross-validation part's labels are wrong, and by what method (see the module docstring):
    AUM's flags when the run kept its dynamics, else cleanlab's calibrated confident-joint estimate."""
    if aum_flags is not None and len(aum_flags):
        count = int(aum_flags.eq(True).sum())
        method = "AUM (threshold samples)"
    else:
        from cleanlab.count import num_label_issues  # lazy: the training machine has no cleanlab
        probs = oof_probs / oof_probs.sum(axis=1, keepdims=True)
        count = int(num_label_issues(oof_labels, probs, estimation_method="off_diagonal_calibrated"))
        method = "cleanlab (confident joint)"
    n = len(oof_labels)
    return {"count": count, "share": count / max(n, 1), "n": n, "method": method}


def headline(ranked: pd.DataFrame, estimate: dict, th: Thresholds) -> np.ndarray:
    """Per row, whether it is a suspected label error: within each part, the round(share x part size) rows with
    the strongest evidence among those at least `agreeing_detectors` detectors flag (fewer where fewer qualify)."""
    agreed = np.zeros(len(ranked), dtype=bool)
    for _, part in ranked.groupby("split"):
        quota = estimate["count"] if part["split"].iat[0] == "cv" else round(estimate["share"] * len(part))
        eligible = part[part["detectors"] >= min(th.agreeing_detectors, part["detectors_available"].max())]
        chosen = eligible.sort_values(["evidence", "quality", "sample_id"], ascending=[False, True, True])
        agreed[ranked.index.get_indexer(chosen.index[:quota])] = True
    return agreed


def label_issues(oof: pd.DataFrame, oof_probs: np.ndarray, test: pd.DataFrame, test_probs: np.ndarray,
                 samples: pd.DataFrame, classes: list[str], th: Thresholds, dynamics: pd.DataFrame | None = None,
                 vote: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Listed samples of both parts, suspected label errors first, then by combined evidence (see the module
    docstring), and the estimate of the number of label errors that sized the headline (estimated_errors).

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
        ranked = ranked.assign(neighbour_share=np.nan, neighbour_index=-1, neighbour_margin=np.nan,
                               neighbours_flag=np.nan)
    flags = ranked[["cleanlab", "aum_flag", "neighbours_flag"]]
    ranked["detectors_available"] = flags.notna().sum(axis=1)
    ranked["detectors"] = flags.eq(True).sum(axis=1)   # a detector that could not judge (NaN) does not flag
    estimate = estimated_errors(oof["label"].to_numpy(), oof_probs,
                                None if dynamics is None else ranked.loc[ranked["split"] == "cv", "aum_flag"])
    ranked["aum_flag"] = ranked["aum_flag"].eq(True)
    ranked["neighbours_flag"] = ranked["neighbours_flag"].eq(True)
    ranked["evidence"] = combined_evidence(ranked)
    ranked["agreed"] = headline(ranked, estimate, th)
    listed = ranked[ranked["detectors"] > 0].copy()
    names = np.asarray(classes)
    listed["path"] = samples.set_index("sample_id").loc[listed["sample_id"], "path"].to_numpy()
    listed["label"] = names[listed["label_index"].to_numpy()]
    listed["suggested_label"] = names[listed["suggested_index"].to_numpy()]
    listed["neighbour_label"] = np.where(listed["neighbour_index"] >= 0,
                                         names[listed["neighbour_index"].clip(lower=0).to_numpy()], None)
    listed["affects_test_metric"] = listed["split"] == "test"
    order = listed.sort_values(["agreed", "evidence", "quality", "sample_id"], ascending=[False, False, True, True])
    return order[COLUMNS].reset_index(drop=True), estimate


def summarize(issues: pd.DataFrame, n_cv: int, n_test: int, detectors: list[str], estimate: dict) -> dict:
    """diagnostics.json's label_issues: counts overall, per part and per detector, the agreed suspects, the
    estimate that sized them, and the worst listed sample. `detectors`: those that ran (AUM needs kept dynamics)."""
    test = issues[issues["affects_test_metric"]]
    agreed = issues[issues["agreed"]]
    n = n_cv + n_test
    return {"count": len(issues), "n": n, "share": len(issues) / max(n, 1),
            "flagged": int(issues["flagged"].sum()), "contradicted_only": int((issues["cleanlab"]
                                                                               & ~issues["flagged"]).sum()),
            "detectors": detectors, "estimated_errors": estimate, "agreed": len(agreed), "agreed_share": len(agreed) / max(n, 1),
            "single": len(issues) - len(agreed),
            "by_detector": {"cleanlab": int(issues["cleanlab"].sum()), "AUM": int(issues["aum_flag"].sum()),
                            "neighbours": int(issues["neighbours_flag"].sum())},
            "cv": {"count": len(issues) - len(test), "agreed": int(agreed["split"].eq("cv").sum()), "n": n_cv},
            "test": {"count": len(test), "agreed": int(test["agreed"].sum()), "n": n_test},
            "worst": issues.iloc[0].to_dict() if len(issues) else None,
            "worst_test": test.iloc[0].to_dict() if len(test) else None}
