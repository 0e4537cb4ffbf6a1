"""Expected calibration error and reliability-diagram bins of the top-class confidence."""
from __future__ import annotations

import numpy as np


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> dict:
    """Equal-width confidence bins; ECE = sum over bins of (share of samples) * |accuracy - confidence|."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        conf = float(confidence[mask].mean()) if count else None
        acc = float(correct[mask].mean()) if count else None
        if count:
            ece += count / len(confidence) * abs(acc - conf)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count, "confidence": conf,
                     "accuracy": acc})
    return {
        "ece": float(ece),
        "mean_confidence": float(confidence.mean()),
        "accuracy": float(correct.mean()),
        "overconfidence": float(confidence.mean() - correct.mean()),
        "bins": bins,
    }


def calibration(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> dict:
    return reliability(probs.max(axis=1), probs.argmax(axis=1) == labels, n_bins)
