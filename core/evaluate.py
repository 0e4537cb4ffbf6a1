"""Prediction tables and the metrics computed from them (scikit-learn, so anyone can recompute them)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

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
    # one block of columns, not one insert per class (a thousand inserts fragment the frame and take seconds)
    prob_columns = pd.DataFrame(probs, columns=[prob_column(name) for name in classes], index=table.index)
    return pd.concat([table, prob_columns], axis=1)


def _defined(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Headline and per-class metrics. A per-class value that is undefined (recall of a class absent from
    y_true, precision of a class never predicted) is None, not 0; macro F1 averages the classes present
    in y_true or y_pred (scikit-learn's default), so a class missing from a fold does not count as a failure."""
    # scikit-learn and SciPy are imported where used: importing them costs a dashboard page's first visit seconds
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        precision_recall_fscore_support,
    )
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                                     zero_division=np.nan)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "per_class": {name: {"precision": _defined(precision[i]), "recall": _defined(recall[i]),
                             "f1": _defined(f1[i]), "support": int(support[i])} for i, name in enumerate(classes)},
        "confusion_cells": confusion_cells(y_true, y_pred, len(classes)),
    }


def confusion_cells(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """metrics.json's confusion: [true index, predicted index, count] of each nonzero cell, row-major. A dense
    matrix grows with the square of the class count (23 MB of metrics.json at 300 classes); the cells grow with the
    images at most."""
    codes = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    cells, counts = np.unique(codes, return_counts=True)
    return [[int(c // n_classes), int(c % n_classes), int(n)] for c, n in zip(cells, counts)]


def matrix_cells(matrix: np.ndarray) -> list[list[int]]:
    """The nonzero cells of a dense count matrix, in metrics.json's form (`confusion_cells`)."""
    rows, cols = np.nonzero(matrix)
    return [[int(i), int(j), int(round(matrix[i, j]))] for i, j in zip(rows, cols)]


def dense_confusion(block: dict, n_classes: int) -> np.ndarray:
    """The dense confusion (int64, rows = true class, columns = predicted) of one metrics.json block: the only
    reader of its stored form. Schema 2 stores `confusion_cells`; runs of schema 1 stored the dense rows under
    `confusion`, still read here."""
    if "confusion_cells" in block:
        matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
        cells = np.asarray(block["confusion_cells"], dtype=np.int64).reshape(-1, 3)
        np.add.at(matrix, (cells[:, 0], cells[:, 1]), cells[:, 2])
        return matrix
    return np.asarray(block["confusion"], dtype=np.int64).reshape(n_classes, n_classes)


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


@dataclass(frozen=True)
class IntervalSettings:
    """95% intervals of the held-out metrics: exact binomial for a proportion, a seeded bootstrap over images for
    the metrics that average classes."""
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    chunk_cells: int = 2_000_000   # resampled counts held at once (resamples x occupied confusion cells)

    def describe(self) -> str:
        return (f"{self.confidence:.0%} intervals: accuracy and per-class recall exact binomial (Clopper-Pearson); "
                f"balanced accuracy and macro F1 percentile bootstrap over images ({self.resamples} resamples, "
                f"seed {self.seed})")


def proportion_interval(successes: int, trials: int, confidence: float = 0.95) -> list[float] | None:
    """Exact (Clopper-Pearson) interval of a proportion; None without trials."""
    if trials == 0:
        return None
    from scipy.stats import binomtest
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="exact")
    return [float(ci.low), float(ci.high)]


def resample_scores(counts: np.ndarray, true_of: np.ndarray, pred_of: np.ndarray, n_classes: int) -> dict:
    """Balanced accuracy and macro F1 of resamples given as counts per (true, predicted) cell (rows of `counts`;
    `true_of`/`pred_of` name each column's cell), as scikit-learn computes them: balanced accuracy is the mean
    recall over the classes present; macro F1 averages the classes present in truth or prediction, 0 for one never
    right."""
    from scipy import sparse

    def per_class(index: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        mask = np.ones(len(index), bool) if keep is None else keep
        indicator = sparse.csr_matrix((np.ones(mask.sum()), (np.flatnonzero(mask), index[mask])),
                                      shape=(len(index), n_classes))
        return np.asarray((indicator.T @ counts.T).T)
    support, predicted = per_class(true_of), per_class(pred_of)
    hits = per_class(true_of, true_of == pred_of)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"balanced_accuracy": np.nanmean(np.where(support > 0, hits / support, np.nan), axis=1),
                "macro_f1": np.nanmean(np.where(support + predicted > 0, 2 * hits / (support + predicted), np.nan),
                                       axis=1)}


def _bootstrap_draws(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                     settings: IntervalSettings) -> dict[str, np.ndarray]:
    """Balanced accuracy and macro F1 of bootstrap resamples of the images. Both depend on the images only through
    the confusion counts, so a resample is drawn as multinomial counts over the occupied (true, predicted) cells:
    the same distribution as drawing images, at a cost that does not grow with the number of images."""
    cells, occupied = np.unique(y_true * n_classes + y_pred, return_counts=True)
    rng = np.random.default_rng(settings.seed)
    rows = max(1, settings.chunk_cells // len(cells))
    parts = []
    for start in range(0, settings.resamples, rows):
        counts = rng.multinomial(len(y_true), occupied / len(y_true), size=min(rows, settings.resamples - start))
        parts.append(resample_scores(counts, cells // n_classes, cells % n_classes, n_classes))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def metric_intervals(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str],
                     settings: IntervalSettings | None = None) -> dict:
    """The intervals stored beside held-out metrics: [low, high] per headline metric and per class's recall (None
    for a class with no image)."""
    settings = settings or IntervalSettings()
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    correct = y_true == y_pred
    tail = (1 - settings.confidence) / 2
    out = {"confidence": settings.confidence, "method": settings.describe(),
           "accuracy": proportion_interval(correct.sum(), len(y_true), settings.confidence)}
    if len(y_true):
        for key, values in _bootstrap_draws(y_true, y_pred, len(classes), settings).items():
            out[key] = [float(v) for v in np.quantile(values, [tail, 1 - tail])]
    else:
        out.update(balanced_accuracy=None, macro_f1=None)
    out["recall"] = {name: proportion_interval(correct[y_true == i].sum(), (y_true == i).sum(), settings.confidence)
                     for i, name in enumerate(classes)}
    return out


def training_counts(metrics: dict, classes: list[str]) -> dict[str, float]:
    """Per class: its images in a fold's training part (metrics.json's `train` support), mean over the folds: what
    each fold model learned the class from. 0 without folds."""
    folds = [f["train"]["per_class"] for f in metrics.get("folds", {}).values() if "train" in f]
    return {name: float(np.mean([f[name]["support"] for f in folds])) if folds else 0.0 for name in classes}


def _held_out(rows: pd.DataFrame, classes: list[str]) -> dict:
    """Metrics of held-out predictions with their intervals."""
    metrics = _metrics_of(rows, classes)
    metrics["intervals"] = metric_intervals(rows.label.to_numpy(), rows.pred.to_numpy(), classes)
    return metrics


def superclass_metrics(predictions: pd.DataFrame, classes: list[str], superclasses: dict[str, str]) -> dict:
    """metrics.json's "superclass": the same predictions read at the superclass level (a prediction's superclass is
    its predicted class's), in compute_metrics' layout over the sorted superclass names, plus `of_class` (class ->
    superclass) and, in the held-out blocks, how many class-level errors stay inside the true superclass."""
    names = sorted(set(superclasses[c] for c in classes))
    of = np.array([names.index(superclasses[c]) for c in classes], dtype=np.int64)
    mapped = predictions.assign(label=of[predictions["label"].to_numpy()], pred=of[predictions["pred"].to_numpy()])
    out = compute_metrics(mapped, names)
    out["of_class"] = {c: superclasses[c] for c in classes}

    def errors(rows: pd.DataFrame) -> dict:
        wrong = rows["label"].to_numpy() != rows["pred"].to_numpy()
        inside = of[rows["label"].to_numpy()] == of[rows["pred"].to_numpy()]
        return {"class_errors": int(wrong.sum()), "errors_within_superclass": int((wrong & inside).sum())}
    folds = predictions[predictions.model != "ensemble"]
    if out["oof"]:
        out["oof"]["val"].update(errors(folds[folds.role == "val"]))
    if out["ensemble"]:
        out["ensemble"]["test"].update(errors(predictions[predictions.model == "ensemble"]))
    return out


def compute_metrics(predictions: pd.DataFrame, classes: list[str], superclasses: dict[str, str] | None = None) -> dict:
    """metrics.json: per fold and role, pooled out-of-fold and ensemble (each with 95% intervals), summary over
    folds, gaps; with `superclasses` (class -> superclass), the same at the superclass level under "superclass"."""
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
            "oof": {"val": _held_out(oof, classes)} if not oof.empty else {},
            "ensemble": {"test": _held_out(ensemble, classes)} if not ensemble.empty else {},
            "summary": summary, "gaps": gaps,
            **({"superclass": superclass_metrics(predictions, classes, superclasses)} if superclasses else {})}
