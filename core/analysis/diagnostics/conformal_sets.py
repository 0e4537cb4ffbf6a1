"""Can a deployed model's answers be acted on: conformal prediction sets and temperature scaling, calibrated on
the out-of-fold predictions and measured on the test split's ensemble predictions (what `predict` and `serve`
return), per class. Sets at the run's target coverage, marginal and class-conditional; calibration of the top-class
confidence before and after temperature scaling."""
from __future__ import annotations

import math

import numpy as np

from core.analysis.confidence import fit_confidence
from core.analysis.conformal import coverage_by_class
from core.analysis.diagnostics.calibration import calibration
from core.analysis.diagnostics.thresholds import Thresholds

SHARED_WITH = 2   # the classes named as most often sharing a class's sets


def _thresholds(values: np.ndarray) -> list[float | None]:
    return [None if math.isinf(v) else float(v) for v in values]   # None: too few images, every set holds it


def _shared_with(members: np.ndarray, labels: np.ndarray, classes: list[str]) -> list[list[dict]]:
    """Per true class: the other classes most often in its images' sets, with the share of its images."""
    rows = []
    for c in range(len(classes)):
        mine = members[labels == c]
        share = mine.mean(axis=0) if len(mine) else np.zeros(len(classes))
        share[c] = 0
        order = [int(k) for k in np.argsort(-share, kind="stable")[:SHARED_WITH] if share[k] > 0]
        rows.append([{"class": classes[k], "share": float(share[k])} for k in order])
    return rows


def conformal_sets(oof_probs: np.ndarray, oof_labels: np.ndarray, test_probs: np.ndarray, test_labels: np.ndarray,
                   classes: list[str], th: Thresholds) -> dict:
    """diagnostics.json["conformal"]: the fitted temperature and thresholds, and on the test split (None without
    one) coverage and set size overall and per class, marginal and class-conditional, and ECE before/after."""
    result = {"coverage": th.conformal_coverage, "method": "aps", "n_calibration": len(oof_labels),
              "calibrated_on": "out-of-fold (single fold models)", "evaluated_on": "test split (fold ensemble)",
              "n_test": len(test_labels)}
    for key, class_conditional in (("marginal", False), ("class_conditional", True)):
        # one temperature for both kinds of sets: fitting it costs seconds at a thousand classes
        fitted = fit_confidence(oof_probs, oof_labels, classes, th.conformal_coverage, class_conditional,
                                temperature=result.get("temperature"))
        result["temperature"] = fitted.temperature
        entry = {"thresholds": _thresholds(fitted.thresholds), "test": None}
        if len(test_labels):
            members = fitted.sets(test_probs)
            entry["test"] = coverage_by_class(members, test_labels, classes)
            for row, shared in zip(entry["test"]["per_class"], _shared_with(members, test_labels, classes)):
                row["shared_with"] = shared
        result[key] = entry
    result["test_calibration"] = None if not len(test_labels) else {
        "before": calibration(test_probs, test_labels, th.calibration_bins),
        "after": calibration(fitted.calibrated(test_probs), test_labels, th.calibration_bins)}
    return result
