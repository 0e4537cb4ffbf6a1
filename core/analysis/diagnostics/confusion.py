"""Most-confused class pairs of the confusion matrices that metrics.json already holds."""
from __future__ import annotations

import numpy as np


def confused_pairs(matrix: list[list[int]], classes: list[str], top: int = 10) -> list[dict]:
    counts = np.asarray(matrix, dtype=float)
    support = counts.sum(axis=1)
    pairs = [
        {"true": classes[i], "pred": classes[j], "count": int(counts[i, j]), "share": counts[i, j] / support[i]}
        for i in range(len(classes)) for j in range(len(classes))
        if i != j and counts[i, j] > 0
    ]
    return sorted(pairs, key=lambda p: (-p["count"], -p["share"]))[:top]


def confusion(metrics: dict, classes: list[str]) -> dict:
    """Pairs for the pooled OOF matrix, each fold's validation matrix and the test ensemble's (if any)."""
    return {
        "oof": confused_pairs(metrics["oof"]["val"]["confusion"], classes),
        "folds": {k: confused_pairs(roles["val"]["confusion"], classes) for k, roles in metrics["folds"].items()},
        "ensemble": (confused_pairs(metrics["ensemble"]["test"]["confusion"], classes)
                     if "test" in metrics.get("ensemble", {}) else None),
    }
