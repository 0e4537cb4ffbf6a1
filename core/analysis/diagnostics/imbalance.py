"""Class counts, recall against support, and which classes a class collapses into (out-of-fold)."""
from __future__ import annotations

import numpy as np

from core.evaluate import dense_confusion


def imbalance(class_counts: dict, oof: dict, classes: list[str]) -> dict:
    counts = {c: int(class_counts.get(c, 0)) for c in classes}
    present = [n for n in counts.values() if n > 0]
    confusion = dense_confusion(oof, len(classes)).astype(float)
    support = confusion.sum(axis=1)
    # row-normalised confusion: where each class's validation images go
    shares = np.divide(confusion, support[:, None], out=np.zeros_like(confusion), where=support[:, None] > 0)
    per_class = []
    for i, cls in enumerate(classes):
        others = shares[i].copy()
        others[i] = -1.0
        j = int(others.argmax())
        per_class.append({
            "class": cls, "count": counts[cls], "support": int(support[i]),
            # None as in metrics.json (no validation image of the class), never a made-up 0
            "recall": oof["per_class"][cls]["recall"], "f1": oof["per_class"][cls]["f1"],
            "collapse_into": classes[j] if len(classes) > 1 else None,
            "collapse_share": float(max(others[j], 0.0)) if len(classes) > 1 else 0.0,
        })
    return {
        "counts": counts,
        "largest": max(counts, key=counts.get),
        "smallest": min(counts, key=counts.get),
        "ratio": max(present) / min(present) if present else None,
        "accuracy": oof["accuracy"],
        "balanced_accuracy": oof["balanced_accuracy"],
        "per_class": per_class,
    }
