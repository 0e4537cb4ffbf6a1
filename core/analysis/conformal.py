"""Split conformal prediction sets with adaptive (APS) or regularised adaptive (RAPS) scores, marginal or
class-conditional (Mondrian).

A class's score is the probability mass the model puts on the classes ranked above it, so a set is the top
classes taken in order until their mass passes a threshold (the class that passes it included): few classes
where the model is sure, many where it spreads its belief. This is APS (Romano, Sesia & Candes 2020) without
the random term (their score is this mass + U * p(class), U uniform; here U = 0): split conformal validity
holds for any score, and this end keeps sets small for a confident model, where the other (U = 1, the mass
including the class) adds a second class to most sets.
The threshold is the calibration scores' ceil((n+1)(1-alpha))-th smallest, so that a new exchangeable image's
true class is in its set with probability at least 1 - alpha; the Mondrian variant gives each class its own
threshold, and guarantee, from its own calibration images. The top class scores 0, so no set is empty.
RAPS (Angelopoulos, Bates, Malik & Jordan 2021, same U = 0 end) adds lambda * max(0, rank - k_reg) to a class's
score (rank 1 = most probable): the scores still grow with the rank, so a set is still the top classes, but a
class far down the ranking needs more than its share of mass to get in, which keeps sets short when the model
spreads a little probability over many classes. Its settings (`core.config.SetSettings`) are fixed, not tuned on
the calibration images, so the split conformal guarantee holds as it is.
Checked against MAPIE's scores and crepes' sets on the same inputs (tests/analysis/test_conformal.py).
"""
from __future__ import annotations

import math

import numpy as np

from core.config import SetSettings


def aps_scores(probs: np.ndarray, settings: SetSettings = SetSettings()) -> np.ndarray:
    """[n, C] score of every candidate class: the total probability of the classes ranked above it (ties broken
    by class index, as a stable sort does), rounded to 12 decimals so that sums of the same probabilities in
    another order tie exactly rather than differ in the last bit; with RAPS, plus its rank penalty."""
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, axis=1, kind="stable")
    ranked = np.take_along_axis(probs, order, axis=1)
    above = np.round(np.cumsum(ranked, axis=1) - ranked, 12)
    if settings.method == "raps":
        ranks = np.arange(1, probs.shape[1] + 1)
        above = above + settings.raps_lambda * np.maximum(ranks - settings.raps_k_reg, 0)[None, :]
    scores = np.empty_like(probs)
    np.put_along_axis(scores, order, above, axis=1)
    return scores


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ceil((n+1)(1-alpha))-th smallest score; infinity when there are too few scores for that
    (fewer than 1/alpha - 1): then only a set of every class keeps the guarantee."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil((len(scores) + 1) * (1 - alpha) - 1e-9)  # the tolerance keeps (n+1)(1-alpha) = 90.0 at 90
    return float(scores[rank - 1]) if 1 <= rank <= len(scores) else math.inf


def thresholds(probs: np.ndarray, labels: np.ndarray, alpha: float, class_conditional: bool = False,
               settings: SetSettings = SetSettings()) -> np.ndarray:
    """[C] score threshold of each class from calibration `probs` [n, C] and their true `labels` [n]: one
    shared quantile of the true classes' scores, or (`class_conditional`) each class's quantile over its own
    calibration images only."""
    labels = np.asarray(labels)
    true_scores = np.take_along_axis(aps_scores(probs, settings), labels[:, None], axis=1)[:, 0]
    n_classes = np.shape(probs)[1]
    if not class_conditional:
        return np.full(n_classes, conformal_quantile(true_scores, alpha))
    return np.array([conformal_quantile(true_scores[labels == c], alpha) for c in range(n_classes)])


def prediction_sets(probs: np.ndarray, class_thresholds: np.ndarray,
                    settings: SetSettings = SetSettings()) -> np.ndarray:
    """[n, C] bool membership: every class whose score is within its threshold (the top class always)."""
    return aps_scores(probs, settings) <= np.asarray(class_thresholds)[None, :]


def coverage_by_class(members: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Empirical coverage (share of images whose true class is in their set) and mean set size, overall and
    per true class, with each share's binomial standard error."""
    labels = np.asarray(labels)
    covered = members[np.arange(len(labels)), labels]
    sizes = members.sum(axis=1)

    def summary(mask: np.ndarray) -> dict:
        n = int(mask.sum())
        share = float(covered[mask].mean()) if n else None
        return {"n": n, "coverage": share,
                "coverage_se": math.sqrt(share * (1 - share) / n) if n else None,
                "mean_set_size": float(sizes[mask].mean()) if n else None}

    return {**summary(np.ones(len(labels), dtype=bool)),
            "per_class": [{"class": name, **summary(labels == c)} for c, name in enumerate(classes)]}
