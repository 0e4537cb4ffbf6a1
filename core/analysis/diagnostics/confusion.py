"""Most-confused class pairs of the confusion matrices that metrics.json already holds."""
from __future__ import annotations

import numpy as np

from core.evaluate import dense_confusion


def confused_pairs(counts: np.ndarray, classes: list[str], top: int = 10) -> list[dict]:
    """The `top` off-diagonal cells of a dense confusion by count, then share of the true class."""
    support = counts.sum(axis=1)
    rows, cols = np.nonzero(counts)   # only the occupied cells: a thousand classes are a million cells
    pairs = [{"true": classes[i], "pred": classes[j], "count": int(counts[i, j]), "share": counts[i, j] / support[i]}
             for i, j in zip(rows.tolist(), cols.tolist()) if i != j]
    return sorted(pairs, key=lambda p: (-p["count"], -p["share"]))[:top]


def confusion(metrics: dict, classes: list[str]) -> dict:
    """Pairs for the pooled OOF matrix, each fold's validation matrix and the test ensemble's (if any)."""
    def pairs(block: dict) -> list[dict]:
        return confused_pairs(dense_confusion(block, len(classes)), classes)
    return {
        "oof": pairs(metrics["oof"]["val"]),
        "folds": {k: pairs(roles["val"]) for k, roles in metrics["folds"].items()},
        "ensemble": pairs(metrics["ensemble"]["test"]) if "test" in metrics.get("ensemble", {}) else None,
    }
