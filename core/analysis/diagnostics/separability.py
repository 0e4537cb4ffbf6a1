"""Which classes the backbone features cannot tell apart: label agreement of kNN neighbours."""
from __future__ import annotations

import numpy as np

from core.analysis.diagnostics.neighbours import Space
from core.analysis.diagnostics.thresholds import Thresholds


def separability(space: Space, labels: np.ndarray, classes: list[str], th: Thresholds) -> list[dict]:
    """Per class: share of its images' nearest neighbours with the same label, against chance (its share)."""
    same = labels[space.index] == labels[:, None]
    rows = []
    for i, cls in enumerate(classes):
        members = labels == i
        if not members.any():
            continue
        agreement = float(same[members].mean())
        chance = float(members.mean())
        rows.append({
            "class": cls, "agreement": agreement, "chance": chance, "lift": agreement / chance,
            "inseparable": agreement < min(th.separability_agreement, th.separability_lift * chance),
        })
    return rows
