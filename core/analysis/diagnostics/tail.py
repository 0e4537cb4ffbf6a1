"""The long tail: do the classes with few training images fail where the others do not (out-of-fold)?

A class's training images are the mean over folds of its images in the fold's training part (metrics.json's
`train` support): what each fold model learned it from. The tail is the classes under a cut that adapts to the
data: the geometric mean of the largest and the smallest class's training images (the middle of the range on
the log scale the chart draws), rounded down to 1, 2 or 5 x 10^k so a person can say it ("under 10 training
images"); there is no tail unless the largest class has `tail_min_ratio` times the smallest's. The tail counts
as failing only when the pooled recall of its validation images lies wholly below the rest's (both 95% exact
binomial intervals) and its mean class recall is at least `tail_recall_gap` under theirs: a few unlucky small
classes do not make a finding.
"""
from __future__ import annotations

import math

import numpy as np

from core.analysis.diagnostics.thresholds import Thresholds
from core.evaluate import dense_confusion, proportion_interval, training_counts


def round_down(value: float) -> float:
    """The largest of 1, 2, 5 x 10^k at or below `value` (at least 1): 37 -> 20, 0.4 -> 1."""
    if value < 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(max(step * power for step in (1, 2, 5) if step * power <= value))


def _pooled(confusion: np.ndarray, members: np.ndarray) -> dict:
    """Recall of all the validation images of `members` together, with its exact binomial interval."""
    hits, n = int(confusion[members, members].sum()), int(confusion[members].sum())   # their diagonal; their rows
    return {"recall": hits / n if n else None, "interval": proportion_interval(hits, n), "n": n}


def tail(metrics: dict, classes: list[str], th: Thresholds) -> dict | None:
    """diagnostics.json's "tail": the cut, the tail's and the rest's recall (class means, pooled with intervals,
    per fold) and whether the tail fails beyond chance; None without out-of-fold predictions."""
    oof = metrics.get("oof", {}).get("val")
    if not oof or len(classes) < 2:
        return None
    counts = training_counts(metrics, classes)
    largest, smallest = max(counts.values()), min(counts.values())
    cut = round_down(math.sqrt(largest * smallest))
    has_tail = smallest > 0 and largest >= th.tail_min_ratio * smallest
    in_tail = np.array([has_tail and counts[name] < cut for name in classes])
    recall = np.array([np.nan if oof["per_class"][n]["recall"] is None else oof["per_class"][n]["recall"]
                       for n in classes], dtype=float)
    confusion = dense_confusion(oof, len(classes))
    tail_pooled, head_pooled = _pooled(confusion, np.flatnonzero(in_tail)), _pooled(confusion,
                                                                                   np.flatnonzero(~in_tail))

    def mean(mask: np.ndarray, values: np.ndarray) -> float | None:
        chosen = values[mask & ~np.isnan(values)]
        return float(chosen.mean()) if len(chosen) else None
    folds = []
    for k, fold in sorted(metrics.get("folds", {}).items(), key=lambda item: int(item[0])):
        if "val" in fold:
            values = np.array([np.nan if fold["val"]["per_class"][n]["recall"] is None
                               else fold["val"]["per_class"][n]["recall"] for n in classes], dtype=float)
            folds.append({"fold": int(k), "tail": mean(in_tail, values), "head": mean(~in_tail, values)})
    tail_mean, head_mean = mean(in_tail, recall), mean(~in_tail, recall)
    fails = (int(in_tail.sum()) >= th.tail_min_classes and tail_mean is not None and head_mean is not None
             and head_mean - tail_mean >= th.tail_recall_gap
             and tail_pooled["interval"] is not None and head_pooled["interval"] is not None
             and tail_pooled["interval"][1] < head_pooled["interval"][0])
    order = np.argsort(np.where(np.isnan(recall), np.inf, recall), kind="stable")
    return {
        "cut": cut, "largest": largest, "smallest": smallest,
        "n_tail": int(in_tail.sum()), "n_head": int((~in_tail).sum()),
        "tail_mean_recall": tail_mean, "head_mean_recall": head_mean,
        "tail_pooled": tail_pooled, "head_pooled": head_pooled, "folds": folds,
        "folds_lower": sum(f["tail"] is not None and f["head"] is not None and f["tail"] < f["head"] for f in folds),
        "fails": bool(fails),
        "tail_classes": [{"class": classes[i], "train_images": counts[classes[i]],
                          "recall": None if np.isnan(recall[i]) else float(recall[i])}
                         for i in order if in_tail[i]],
    }
