"""Train vs validation vs test, per fold and per class, from metrics.json and history.parquet."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.diagnostics.thresholds import Thresholds
from core.evaluate import HEADLINE

METRIC = "balanced_accuracy"   # the headline metric: what every front shows first, and what findings judge


def _folds(metrics: dict) -> list[str]:
    return sorted(metrics["folds"], key=int)


def _gap(a: float | None, b: float | None) -> float | None:
    # per-class scores are None where a fold's part has no images of the class (or no predictions of it)
    return None if a is None or b is None else a - b


def per_class_gaps(metrics: dict) -> list[dict]:
    """One row per (fold, class): recall and F1 in every role, and train minus val/test gaps (None unless
    both sides are defined)."""
    rows = []
    for k in _folds(metrics):
        roles = metrics["folds"][k]
        for cls in roles["train"]["per_class"]:
            row = {"fold": k, "class": cls}
            for role in ("train", "val", "test"):
                stats = roles.get(role, {}).get("per_class", {}).get(cls)
                for key in ("recall", "f1"):
                    row[f"{role}_{key}"] = stats[key] if stats else None
            for role in ("val", "test"):
                for key in ("recall", "f1"):
                    row[f"{key}_gap_{role}"] = _gap(row[f"train_{key}"], row[f"{role}_{key}"])
            rows.append(row)
    return rows


def best_vs_last(history: pd.DataFrame) -> list[dict]:
    """Per fold: the kept (best) epoch against the last epoch trained, train and val phases."""
    rows = []
    for fold, frame in history.groupby("fold"):
        val = frame[frame["phase"] == "val"].set_index("epoch")
        train = frame[frame["phase"] == "train"].set_index("epoch")
        best = int(val.index[val["is_best"]][0]) if val["is_best"].any() else int(val.index.max())
        last = int(val.index.max())
        rows.append({
            "fold": str(fold), "best_epoch": best, "last_epoch": last,
            "train_accuracy_best": float(train.loc[best, "accuracy"]),
            "train_accuracy_last": float(train.loc[last, "accuracy"]),
            "val_accuracy_best": float(val.loc[best, "accuracy"]),
            "val_accuracy_last": float(val.loc[last, "accuracy"]),
            "val_balanced_accuracy_best": float(val.loc[best, "balanced_accuracy"]),
            "val_balanced_accuracy_last": float(val.loc[last, "balanced_accuracy"]),
        })
    return rows


def held_out_test(metrics: dict) -> dict | None:
    """The test ensemble (what predict and serve use) on the headline metric, with its interval, the fold models'
    mean beside it, and each class's test recall with its interval; None without a test split."""
    test = metrics.get("ensemble", {}).get("test")
    if not test:
        return None
    intervals = test.get("intervals", {})
    return {"n": test["n"], "value": test[METRIC], "interval": intervals.get(METRIC),
            "fold_mean": metrics["summary"].get("test", {}).get(METRIC, {}).get("mean"),
            "per_class": [{"class": name, "support": stats["support"], "recall": stats["recall"],
                           "interval": intervals.get("recall", {}).get(name)}
                          for name, stats in test["per_class"].items()]}


def overfitting(metrics: dict, history: pd.DataFrame, th: Thresholds) -> dict:
    per_fold = []
    for k in _folds(metrics):
        roles = metrics["folds"][k]
        row = {"fold": k}
        for key in HEADLINE:
            row[f"train_{key}"] = roles["train"][key]
            row[f"val_{key}"] = roles["val"][key]
            row[f"gap_{key}"] = roles["train"][key] - roles["val"][key]
        per_fold.append(row)
    gaps = np.array([row[f"gap_{METRIC}"] for row in per_fold])
    # consistent = the gap is past the medium threshold in every fold, not carried by one bad fold
    return {
        "metric": METRIC,
        "train": metrics["summary"]["train"][METRIC]["mean"],
        "val": metrics["summary"]["val"][METRIC]["mean"],
        "gap": metrics["gaps"]["train_minus_val"][METRIC],
        # pooled out-of-fold: a train score inside it is a gap chance alone can make
        "val_interval": metrics.get("oof", {}).get("val", {}).get("intervals", {}).get(METRIC),
        "test": held_out_test(metrics),
        "gaps": metrics["gaps"],
        "n_folds": len(per_fold),
        "folds_over_gap": int((gaps >= th.overfit_gap_medium).sum()),
        "consistent": bool(len(gaps) > 0 and (gaps >= th.overfit_gap_medium).all()),
        "gap_min": float(gaps.min()) if len(gaps) else None,
        "gap_max": float(gaps.max()) if len(gaps) else None,
        "per_fold": per_fold,
        "per_class": per_class_gaps(metrics),
        "epochs": best_vs_last(history),
    }
