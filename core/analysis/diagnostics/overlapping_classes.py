"""Classes the data cannot separate: pairs whose images the model, out of fold, splits between the two labels
far more than its errors elsewhere would make chance.

The size of an overlap is cleanlab's estimate (the calibrated confident joint of given and true labels,
`cleanlab.count.estimate_joint`, symmetrised as `cleanlab.dataset.find_overlapping_classes` does): the share of
the pair's images that belong on the other side. It is estimated on the pooled out-of-fold predictions and on
each fold's own, so its spread over folds is known. Whether it is more than chance is asked of the plain
out-of-fold confusion: of the errors made on images of A and B, how many land on the other class of the pair,
against the share an error would land there if the model's errors went to every other class in proportion to
its size (one-sided binomial test, Bonferroni over every pair of classes; the binomial with the mean rate is
conservative for a sum of two binomials). A clean, separable dataset has too few errors to pass; a weak model
whose errors go everywhere has none concentrated on one pair.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.diagnostics.thresholds import Thresholds


def overlap_matrix(labels: np.ndarray, probs: np.ndarray, n_classes: int) -> np.ndarray:
    """Estimated overlapping images per pair (symmetric, zero diagonal): cleanlab's joint of given and true labels
    times the number of images, both directions added. `probs` rows sum to 1."""
    from cleanlab.count import estimate_joint  # lazy: the training machine has no cleanlab

    joint = np.zeros((n_classes, n_classes))
    present = np.unique(labels)
    if len(present) == n_classes:
        joint = estimate_joint(labels=labels, pred_probs=probs)
    elif len(present) >= 2:   # cleanlab needs every class it is given; a fold may lack some: those present
        sub = probs[:, present]
        joint[np.ix_(present, present)] = estimate_joint(labels=np.searchsorted(present, labels),
                                                         pred_probs=sub / sub.sum(axis=1, keepdims=True))
    overlap = (joint + joint.T) * len(labels)
    np.fill_diagonal(overlap, 0)
    return overlap


def _chance(confusion: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Per pair (a, b): the share of the errors on a and b that would land on the other class of the pair if each
    class's errors went to the other classes in proportion to their size."""
    errors = confusion.sum(axis=1) - np.diag(confusion)
    others = support.sum() - support
    to = support[None, :] / np.where(others > 0, others, 1)[:, None]   # to[a, b]: an error of a landing on b
    expected = errors[:, None] * to
    expected = expected + expected.T
    trials = errors[:, None] + errors[None, :]
    return np.divide(expected, trials, out=np.zeros_like(expected), where=trials > 0)


def overlapping_classes(oof: pd.DataFrame, probs: np.ndarray, classes: list[str], th: Thresholds) -> dict:
    """diagnostics.json's overlapping_classes: `found` pairs pass every rule (share, images, chance, folds); `pairs`
    lists up to `overlap_listed` of them, those found first, then by estimated overlap (share of the pair's images).

    oof: the out-of-fold rows (sample_id order) with label, pred and fold; probs: their probabilities."""
    from scipy.stats import binom

    k = len(classes)
    labels, preds, folds = oof["label"].to_numpy(), oof["pred"].to_numpy(), oof["fold"].to_numpy()
    fold_ids = sorted(int(f) for f in np.unique(folds))
    n_pairs = k * (k - 1) // 2
    summary = {"pairs": [], "found": 0, "tested": n_pairs, "n_folds": len(fold_ids)}
    if k < 3 or not len(oof):   # with two classes every error is between them: chance cannot be told apart
        return summary
    probs = probs / probs.sum(axis=1, keepdims=True)   # float32 rounding: cleanlab wants rows summing to 1
    overlap = overlap_matrix(labels, probs, k)
    confusion = np.zeros((k, k))
    np.add.at(confusion, (labels, preds), 1)
    support = np.bincount(labels, minlength=k).astype(float)
    pair_support = support[:, None] + support[None, :]
    share = np.divide(overlap, pair_support, out=np.zeros_like(overlap), where=pair_support > 0)
    confused = confusion + confusion.T
    np.fill_diagonal(confused, 0)
    errors = confusion.sum(axis=1) - np.diag(confusion)
    trials = errors[:, None] + errors[None, :]
    chance = _chance(confusion, support)
    p_value = np.where(trials > 0, binom.sf(confused - 1, trials, chance), 1.0)
    fold_shares, fold_present = np.zeros((len(fold_ids), k, k)), np.zeros((len(fold_ids), k, k), dtype=bool)
    for i, f in enumerate(fold_ids):
        rows = folds == f
        counts = np.bincount(labels[rows], minlength=k)
        present = (counts[:, None] > 0) & (counts[None, :] > 0)
        fold_overlap = overlap_matrix(labels[rows], probs[rows], k)
        fold_shares[i] = np.divide(fold_overlap, counts[:, None] + counts[None, :], out=np.zeros((k, k)),
                                   where=present)
        fold_present[i] = present
    # a fold shows the overlap when its own (noisier) estimate reaches half the pooled threshold
    folds_with = ((fold_shares >= th.overlap_share / 2) & fold_present).sum(axis=0)
    significant = ((share >= th.overlap_share) & (confused >= th.overlap_min_images)
                   & (p_value * n_pairs < th.overlap_p_value) & (folds_with >= th.overlap_fold_share * len(fold_ids)))
    upper = np.triu(np.ones((k, k), dtype=bool), 1) & (overlap > 0)
    a_idx, b_idx = np.nonzero(upper)
    order = np.lexsort((-share[a_idx, b_idx], ~significant[a_idx, b_idx]))[:th.overlap_listed]
    listed = []
    for a, b in zip(a_idx[order].tolist(), b_idx[order].tolist()):
        seen = {str(f): float(fold_shares[i, a, b]) if fold_present[i, a, b] else None
                for i, f in enumerate(fold_ids)}
        values = [v for v in seen.values() if v is not None]
        listed.append({"a": classes[a], "b": classes[b], "a_index": a, "b_index": b,
                       "images": int(pair_support[a, b]), "overlapping": float(overlap[a, b]),
                       "share": float(share[a, b]), "joint_probability": float(overlap[a, b] / len(labels)),
                       "a_as_b": int(confusion[a, b]), "b_as_a": int(confusion[b, a]),
                       "confused": int(confused[a, b]), "errors": int(trials[a, b]),
                       "expected": float(trials[a, b] * chance[a, b]), "p_value": float(p_value[a, b]),
                       "fold_shares": seen, "fold_min": min(values) if values else None,
                       "fold_max": max(values) if values else None, "folds_with_overlap": int(folds_with[a, b]),
                       "significant": bool(significant[a, b])})
    summary["pairs"] = listed
    summary["found"] = int(np.triu(significant, 1).sum())
    return summary
