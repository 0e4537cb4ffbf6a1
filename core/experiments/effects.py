"""Fold-paired effects of a remedy: per-fold differences from the baseline, with a confidence interval over folds.

Everything here is computed from the two runs' stored predictions.parquet and samples.parquet, so anyone can
recompute it. Images are matched by path; only images that both runs evaluate, with the same label, count
(a remedy that drops or relabels images is compared on the rest, and the table says how many were left out).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, recall_score

from core.store import run_store as store


@dataclass(frozen=True)
class EffectSettings:
    confidence: float = 0.95        # two-sided interval: paired t over folds, bootstrap over test images
    test_bootstrap: int = 2000      # resamples of the test images for the test-ensemble interval
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


NO_EFFECT = "no measurable effect"


def verdict(low: float | None, high: float | None) -> str:
    """An interval that contains 0 (or none at all) is not a win or a loss."""
    if low is None or high is None or np.isnan(low) or np.isnan(high) or low <= 0 <= high:
        return NO_EFFECT
    return "better" if low > 0 else "worse"


def paired_t_interval(differences: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Mean of per-fold differences and its Student-t interval (NaN bounds with fewer than 2 folds)."""
    values = np.asarray(differences, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, float(mean - half), float(mean + half)


def _labelled_predictions(run_dir: Path) -> pd.DataFrame:
    """predictions.parquet with each sample's path and label name (sample ids differ between runs)."""
    info = store.read_json(Path(run_dir) / store.RUN_JSON)
    samples = pd.read_parquet(Path(run_dir) / "samples.parquet", columns=["sample_id", "path"])
    predictions = pd.read_parquet(Path(run_dir) / "predictions.parquet",
                                  columns=["sample_id", "model", "fold", "role", "label", "pred"])
    names = np.asarray(info["classes"])
    return predictions.merge(samples, on="sample_id").assign(label_name=lambda t: names[t.label],
                                                             pred_name=lambda t: names[t.pred])


def paired_predictions(baseline_dir: Path, remedy_dir: Path) -> pd.DataFrame:
    """One row per image both runs predicted in the same place (fold model on its validation images, or the
    test ensemble) with the same label: path, model, fold, role, label, pred_baseline, pred_remedy."""
    base, other = _labelled_predictions(baseline_dir), _labelled_predictions(remedy_dir)
    keep = ((base.role == "val") & (base.model != "ensemble")) | (base.model == "ensemble")
    base = base[keep]
    pairs = base.merge(other, on=["path", "model", "role"], suffixes=("_baseline", "_remedy"))
    pairs = pairs[pairs.label_name_baseline == pairs.label_name_remedy]
    return pd.DataFrame({"path": pairs.path, "model": pairs.model, "fold": pairs.fold_baseline, "role": pairs.role,
                         "label": pairs.label_name_baseline, "pred_baseline": pairs.pred_name_baseline,
                         "pred_remedy": pairs.pred_name_remedy}).reset_index(drop=True)


def scores(labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict[str, float]:
    """balanced_accuracy and recall:<class> (NaN for a class absent from `labels`)."""
    recall = recall_score(labels, predicted, labels=classes, average=None, zero_division=np.nan)
    return {"balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
            **{f"recall:{name}": float(value) for name, value in zip(classes, recall)}}


def fold_differences(pairs: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Per fold and metric: the baseline's and the remedy's validation score on the shared images, and
    remedy minus baseline."""
    rows = []
    for fold, part in pairs[pairs.role == "val"].groupby("fold"):
        base = scores(part.label.to_numpy(), part.pred_baseline.to_numpy(), classes)
        other = scores(part.label.to_numpy(), part.pred_remedy.to_numpy(), classes)
        rows += [{"fold": int(fold), "metric": metric, "n_images": len(part), "baseline_score": base[metric],
                  "remedy_score": other[metric], "difference": other[metric] - base[metric]} for metric in base]
    return pd.DataFrame(rows)


def _recall_matrix(label_index: np.ndarray, correct: np.ndarray, picks: np.ndarray, n_classes: int) -> np.ndarray:
    """Per resample (rows of `picks`) and class: recall; NaN for a class absent from that resample."""
    offset = np.arange(len(picks))[:, None] * n_classes
    cells = (label_index[picks] + offset).ravel()
    size = len(picks) * n_classes
    hits = np.bincount(cells, weights=correct[picks].ravel(), minlength=size).reshape(len(picks), n_classes)
    seen = np.bincount(cells, minlength=size).reshape(len(picks), n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, hits / seen, np.nan)


def ensemble_difference(pairs: pd.DataFrame, classes: list[str], settings: EffectSettings) -> pd.DataFrame:
    """Test-ensemble remedy minus baseline per metric, with a paired bootstrap interval over test images."""
    test = pairs[pairs.model == "ensemble"]
    if test.empty:
        return pd.DataFrame(columns=["metric", "n_images", "difference", "ci_low", "ci_high"])
    labels = test.label.to_numpy()
    point = {m: v - scores(labels, test.pred_baseline.to_numpy(), classes)[m]
             for m, v in scores(labels, test.pred_remedy.to_numpy(), classes).items()}
    # Resampled scores from per-class hit counts: the same recall and balanced accuracy (mean recall over
    # the classes present) as scikit-learn's, thousands of times faster than calling it per resample.
    label_index = pd.Categorical(labels, categories=classes).codes
    picks = np.random.default_rng(settings.seed).integers(0, len(test), (settings.test_bootstrap, len(test)))
    delta = (_recall_matrix(label_index, (test.pred_remedy.to_numpy() == labels).astype(float), picks, len(classes))
             - _recall_matrix(label_index, (test.pred_baseline.to_numpy() == labels).astype(float), picks,
                              len(classes)))
    with np.errstate(invalid="ignore"):
        draws = {"balanced_accuracy": np.nanmean(delta, axis=1),
                 **{f"recall:{name}": delta[:, i] for i, name in enumerate(classes)}}
    tail = (1 - settings.confidence) / 2
    rows = []
    for metric, values in draws.items():
        values = values[~np.isnan(values)]
        low, high = (np.quantile(values, [tail, 1 - tail]) if len(values) else (np.nan, np.nan))
        rows.append({"metric": metric, "n_images": len(test), "difference": point[metric],
                     "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(rows)


def remedy_effects(baseline_dir: Path, remedy_dir: Path, remedy: str,
                   settings: EffectSettings | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(summary rows, per-fold rows, comparison note) for one remedy against the baseline."""
    settings = settings or EffectSettings()
    classes = store.read_json(Path(baseline_dir) / store.RUN_JSON)["classes"]
    pairs = paired_predictions(baseline_dir, remedy_dir)
    folds = fold_differences(pairs, classes).assign(remedy=remedy)
    test = ensemble_difference(pairs, classes, settings).set_index("metric")
    rows = []
    for metric, part in folds.groupby("metric", sort=False):
        mean, low, high = paired_t_interval(part.difference.to_numpy(), settings.confidence)
        in_test = metric in test.index
        rows.append({
            "remedy": remedy, "metric": metric, "n_folds": int(part.difference.notna().sum()),
            "baseline_mean": float(part.baseline_score.mean()), "remedy_mean": float(part.remedy_score.mean()),
            "difference_mean": mean, "ci_low": low, "ci_high": high, "verdict": verdict(low, high),
            "test_difference": float(test.loc[metric, "difference"]) if in_test else np.nan,
            "test_ci_low": float(test.loc[metric, "ci_low"]) if in_test else np.nan,
            "test_ci_high": float(test.loc[metric, "ci_high"]) if in_test else np.nan,
            "test_verdict": verdict(test.loc[metric, "ci_low"], test.loc[metric, "ci_high"]) if in_test else None})
    base_val = _labelled_predictions(baseline_dir).query("role == 'val' and model != 'ensemble'")
    compared = int((pairs.role == "val").sum())
    note = {"remedy": remedy, "validation_images_compared": compared,
            "validation_images_left_out": int(len(base_val) - compared),
            "compared_on": ("every validation image" if compared == len(base_val) else
                            f"the {compared} validation images both runs evaluate with the same label "
                            f"({len(base_val) - compared} of the baseline's left out)")}
    return pd.DataFrame(rows), folds, note


def effects_table(baseline_dir: Path, remedy_runs: dict[str, Path],
                  settings: EffectSettings | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Every remedy's effects: (summary, per fold, comparison notes)."""
    summaries, folds, notes = [], [], []
    for remedy, run_dir in remedy_runs.items():
        summary, per_fold, note = remedy_effects(baseline_dir, run_dir, remedy, settings)
        summaries.append(summary)
        folds.append(per_fold)
        notes.append(note)
    if not summaries:
        return pd.DataFrame(), pd.DataFrame(), []
    return pd.concat(summaries, ignore_index=True), pd.concat(folds, ignore_index=True), notes


def format_effects(summary: pd.DataFrame, notes: list[dict]) -> str:
    """The printed table: balanced accuracy per remedy, then the classes whose recall moved measurably."""
    if summary.empty:
        return "no remedy finished, so there are no effects to show"

    def points(value: float) -> str:
        return "   -  " if value is None or np.isnan(value) else f"{100 * value:+5.1f}"
    lines = ["effect on validation balanced accuracy (remedy - baseline, points; mean over folds, 95% CI):",
             f"  {'remedy':<22} {'mean':>6} {'CI low':>7} {'CI high':>7}  {'verdict':<21} {'test ens.':>9}"]
    for row in summary[summary.metric == "balanced_accuracy"].itertuples():
        lines.append(f"  {row.remedy:<22} {points(row.difference_mean):>6} {points(row.ci_low):>7} "
                     f"{points(row.ci_high):>7}  {row.verdict:<21} {points(row.test_difference):>9}")
    moved = summary[(summary.metric != "balanced_accuracy") & (summary.verdict != NO_EFFECT)]
    if len(moved):
        lines.append("per-class recall with a measurable effect:")
        lines += [f"  {r.remedy:<22} {r.metric.removeprefix('recall:'):<20} {points(r.difference_mean)} "
                  f"[{points(r.ci_low)}, {points(r.ci_high)}] {r.verdict}" for r in moved.itertuples()]
    lines += [f"note: {n['remedy']} compared on {n['compared_on']}" for n in notes
              if n["validation_images_left_out"]]
    return "\n".join(lines)
