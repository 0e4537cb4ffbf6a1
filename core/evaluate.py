"""Prediction tables and the metrics computed from them (scikit-learn, so anyone can recompute them)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")

# A fold whose model predicts a class absent from that fold's labels is normal on small data.
warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")


def prob_column(name: str) -> str:
    return f"prob_{name}"


def prediction_table(sample_ids: np.ndarray, labels: np.ndarray, probs: np.ndarray, model: str,
                     fold: int | None, role: str, classes: list[str]) -> pd.DataFrame:
    """Rows of predictions.parquet for one model and one role."""
    probs = np.asarray(probs, dtype=np.float32)
    pred = probs.argmax(1)
    picked = probs[np.arange(len(labels)), labels]
    table = pd.DataFrame({
        "sample_id": np.asarray(sample_ids, dtype=np.int64), "model": model,
        "fold": pd.array([fold] * len(labels), dtype="Int64"), "role": role,
        "label": np.asarray(labels, dtype=np.int64), "pred": pred.astype(np.int64),
        "confidence": probs.max(1), "loss": -np.log(np.clip(picked, 1e-12, None)).astype(np.float32)})
    for index, name in enumerate(classes):
        table[prob_column(name)] = probs[:, index]
    return table


def _defined(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Headline and per-class metrics. A per-class value that is undefined (recall of a class absent from
    y_true, precision of a class never predicted) is None, not 0; macro F1 averages the classes present
    in y_true or y_pred (scikit-learn's default), so a class missing from a fold does not count as a failure."""
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                                     zero_division=np.nan)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "per_class": {name: {"precision": _defined(precision[i]), "recall": _defined(recall[i]),
                             "f1": _defined(f1[i]), "support": int(support[i])} for i, name in enumerate(classes)},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _metrics_of(rows: pd.DataFrame, classes: list[str]) -> dict:
    return classification_metrics(rows.label.to_numpy(), rows.pred.to_numpy(), classes)


def ensemble_table(predictions: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Mean probability over fold models on the test split."""
    test = predictions[(predictions.role == "test") & (predictions.model != "ensemble")]
    if test.empty:
        return test.iloc[0:0]
    columns = [prob_column(c) for c in classes]
    mean = test.groupby("sample_id")[columns + ["label"]].mean().sort_index()
    return prediction_table(mean.index.to_numpy(), mean.label.to_numpy().astype(np.int64),
                            mean[columns].to_numpy(), "ensemble", None, "test", classes)


def compute_metrics(predictions: pd.DataFrame, classes: list[str]) -> dict:
    """metrics.json: per fold and role, pooled out-of-fold, ensemble, summary over folds, gaps."""
    folds = predictions[predictions.model != "ensemble"]
    per_fold = {str(int(fold)): {role: _metrics_of(rows, classes) for role, rows in part.groupby("role")}
                for fold, part in folds.groupby("fold")}
    summary = {}
    for role in ("train", "val", "test"):
        values = [m[role] for m in per_fold.values() if role in m]
        if values:
            summary[role] = {key: {"mean": float(np.mean([v[key] for v in values])),
                                   "std": float(np.std([v[key] for v in values]))} for key in HEADLINE}
    gaps = {f"train_minus_{role}": {key: summary["train"][key]["mean"] - summary[role][key]["mean"]
                                    for key in HEADLINE}
            for role in ("val", "test") if "train" in summary and role in summary}
    oof = folds[folds.role == "val"]
    ensemble = predictions[predictions.model == "ensemble"]
    return {"classes": classes, "folds": per_fold,
            "oof": {"val": _metrics_of(oof, classes)} if not oof.empty else {},
            "ensemble": {"test": _metrics_of(ensemble, classes)} if not ensemble.empty else {},
            "summary": summary, "gaps": gaps}
