"""Confusion that stays readable at any class count: the most confused pairs, a matrix ordered so that classes
confused with each other sit together and limited to the classes most involved in errors, and the full matrix as CSV.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

# A run with more classes than this opens the Classes page on the pairs and the limited matrix.
MANY_CLASSES = 15
OTHER = "other"


def oof_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    """Every fold model's validation rows: each cross-validation image once, predicted by the model that did not
    train on it."""
    return predictions[(predictions["model"] != "ensemble") & (predictions["role"] == "val")]


def confused_pairs(predictions: pd.DataFrame, classes: Sequence[str], top: int = 20,
                   among: Sequence[str] = ()) -> pd.DataFrame:
    """The `top` most frequent (true, predicted) mistakes of the out-of-fold predictions, each direction a pair of
    its own: count, share of the true class's images, and that share's mean, min and max over the folds (a pair
    made by one fold alone is a fluke of the split more than a habit of the model). `among`: only mistakes whose
    true or predicted class is one of these (a focus)."""
    rows = oof_rows(predictions)
    support = rows.groupby("label").size()
    fold_support = rows.groupby(["fold", "label"]).size()
    wrong = rows[rows["label"] != rows["pred"]]
    if among:
        indices = [list(classes).index(name) for name in among]
        wrong = wrong[wrong["label"].isin(indices) | wrong["pred"].isin(indices)]
    counts = wrong.groupby(["label", "pred"]).size().sort_values(ascending=False, kind="stable").head(top)
    by_fold = wrong.groupby(["fold", "label", "pred"]).size()
    folds = sorted(rows["fold"].unique())
    records = []
    for (true, pred), count in counts.items():
        shares = [by_fold.get((fold, true, pred), 0) / fold_support[(fold, true)]
                  for fold in folds if (fold, true) in fold_support.index]
        records.append({"true": classes[true], "predicted": classes[pred], "count": int(count),
                        "share": count / support[true], "fold min": min(shares), "fold max": max(shares),
                        "true_index": int(true), "pred_index": int(pred)})
    return pd.DataFrame(records, columns=["true", "predicted", "count", "share", "fold min", "fold max",
                                          "true_index", "pred_index"])


def clustered_confusion(matrix: np.ndarray, classes: Sequence[str], max_classes: int = 25
                        ) -> tuple[np.ndarray, list[str]]:
    """The confusion matrix limited to the `max_classes` classes most involved in errors (mistakes made plus
    mistakes received), the others summed into a last row and column "other", and ordered by average-linkage
    clustering on 1 − the symmetrised row-normalised confusion, so classes confused with each other sit together.
    Counts are kept: every image is still in the returned matrix."""
    matrix = np.asarray(matrix, dtype=float)
    errors = matrix - np.diag(np.diag(matrix))
    involvement = errors.sum(axis=0) + errors.sum(axis=1)
    keep = np.sort(np.argsort(-involvement, kind="stable")[:max_classes])
    if len(keep) > 1:
        totals = matrix.sum(axis=1, keepdims=True)
        shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)[np.ix_(keep, keep)]
        distance = 1 - np.minimum(1, (shares + shares.T) / 2)
        np.fill_diagonal(distance, 0)
        keep = keep[average_linkage_order(distance)]
    names = [classes[i] for i in keep]
    rest = np.setdiff1d(np.arange(len(classes)), keep)
    if not len(rest):
        return matrix[np.ix_(keep, keep)], names
    limited = np.zeros((len(keep) + 1, len(keep) + 1))
    limited[:-1, :-1] = matrix[np.ix_(keep, keep)]
    limited[:-1, -1] = matrix[np.ix_(keep, rest)].sum(axis=1)
    limited[-1, :-1] = matrix[np.ix_(rest, keep)].sum(axis=0)
    limited[-1, -1] = matrix[np.ix_(rest, rest)].sum()
    return limited, [*names, OTHER]


def average_linkage_order(distance: np.ndarray) -> list[int]:
    """The leaf order of average-linkage clustering of a small distance matrix (each merge puts the two clusters'
    leaves side by side). A few dozen classes need no SciPy, whose import alone costs a first visit seconds."""
    clusters = [[i] for i in range(len(distance))]
    while len(clusters) > 1:
        pairs = [(a, b) for a in range(len(clusters)) for b in range(a + 1, len(clusters))]
        a, b = min(pairs, key=lambda p: distance[np.ix_(clusters[p[0]], clusters[p[1]])].mean())
        clusters[a] = clusters[a] + clusters.pop(b)
    return clusters[0]


def confusion_csv(matrix: np.ndarray, classes: Sequence[str]) -> bytes:
    """The full matrix as CSV: one row per true class, one column per predicted class, counts."""
    frame = pd.DataFrame(np.asarray(matrix).astype(int), index=list(classes), columns=list(classes))
    frame.index.name = "true \\ predicted"
    buffer = io.StringIO()
    frame.to_csv(buffer)
    return buffer.getvalue().encode()


def both_sides(rows: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    """The images of a pair of classes the model mixes up: a predicted as b and b predicted as a, most confident
    first (the gallery of two classes the data may not separate)."""
    picked = rows[((rows["label"] == a) & (rows["pred"] == b)) | ((rows["label"] == b) & (rows["pred"] == a))]
    return picked.sort_values("confidence", ascending=False, ignore_index=True)


OVERLAP_COLUMNS = ["class A", "class B", "overlap", "fold min", "fold max", "confused", "expected by chance"]


def overlapping_pairs(diagnostics: dict | None) -> pd.DataFrame:
    """The pairs of classes the data cannot separate (diagnostics.json's overlapping_classes that passed every
    rule), largest overlap first: cleanlab's estimated share of the pair's images on the other side, its range
    over folds, and the out-of-fold confusions between the two against chance. Empty for an older run."""
    rows = [r for r in ((diagnostics or {}).get("overlapping_classes") or {}).get("pairs", []) if r["significant"]]
    return pd.DataFrame([[r["a"], r["b"], r["share"], r["fold_min"], r["fold_max"], r["confused"],
                          round(r["expected"], 1)] for r in rows], columns=OVERLAP_COLUMNS)
