"""Would more data help? Each fold retrained on growing shares of its training part, validation unchanged,
and a power law fitted to the validation error to estimate the gain from doubling the training data.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.evaluate import prediction_table
from core.experiments.effects import scores
from core.store import run_store as store


@dataclass(frozen=True)
class CurveSettings:
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)   # shares of each fold's training part
    bootstrap: int = 1000                                   # resamples of the folds for the gain's interval
    confidence: float = 0.95
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def stratified_subset(train_index: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """`fraction` of each class's training samples (at least one each), drawn by a seeded shuffle per class.

    The shuffle does not depend on `fraction`, so a smaller subset is contained in every larger one.
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels[train_index]):
        members = train_index[labels[train_index] == label]
        members = members[rng.permutation(len(members))]
        chosen.append(members[:max(1, int(round(fraction * len(members))))])
    return np.sort(np.concatenate(chosen))


def curve_predictions(run_dir: Path, settings: CurveSettings,
                      log: Callable[[str], None] = print) -> pd.DataFrame:
    """Validation predictions of every fold at every training share. The full share reuses the run's own
    fold models (the same training, already done)."""
    # Imported here: fold_job brings torch (a second or more), and the dashboard reads this module's fits only.
    from core.training.fold_job import fit_parts
    from core.training.run_inputs import fold_parts, load_run_inputs

    run_dir = Path(run_dir)
    info, cfg, samples = load_run_inputs(run_dir)
    labels = samples.label_index.to_numpy()
    stored = pd.read_parquet(run_dir / "predictions.parquet")
    tables = []
    for fold in range(cfg.folds):
        parts = fold_parts(samples, fold)
        for fraction in settings.fractions:
            subset = stratified_subset(parts["train"], labels, fraction, cfg.seed + fold)
            if fraction >= 1:
                table = stored[(stored.model == f"fold{fold}") & (stored.role == "val")]
            else:
                _, probs, _, _ = fit_parts(run_dir, fold, {"train": subset, "val": parts["val"]})
                table = prediction_table(parts["val"], labels[parts["val"]], probs[parts["val"]], f"fold{fold}",
                                         fold, "val", info["classes"])
            tables.append(table.assign(fraction=fraction, n_train=len(subset)))
        log(f"learning curve: fold {fold} done")
    return pd.concat(tables, ignore_index=True)


def curve_table(predictions: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Per fold, share and metric (balanced_accuracy, recall:<class>): the validation score."""
    names = np.asarray(classes)
    rows = []
    for (fold, fraction), part in predictions.groupby(["fold", "fraction"]):
        values = scores(names[part.label.to_numpy()], names[part.pred.to_numpy()], classes)
        rows += [{"fold": int(fold), "fraction": float(fraction), "n_train": int(part.n_train.iloc[0]),
                  "metric": metric, "value": value} for metric, value in values.items()]
    return pd.DataFrame(rows)


def power_law(n: np.ndarray, a: float, b: float) -> np.ndarray:
    """Validation error as a function of training-set size: a * n^-b."""
    return a * np.power(n, -b)


def fit_power_law(n: np.ndarray, score: np.ndarray) -> tuple[float, float] | None:
    """(a, b) of error = 1 - score = a * n^-b by least squares (scipy), or None when it does not converge."""
    from scipy.optimize import curve_fit

    n, error = np.asarray(n, dtype=float), 1 - np.asarray(score, dtype=float)
    keep = ~np.isnan(error)
    if keep.sum() < 2 or len(np.unique(n[keep])) < 2:
        return None
    start_b = 0.5
    start_a = max(float(error[keep].mean()), 1e-3) * float(np.mean(n[keep])) ** start_b
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # OptimizeWarning on a flat curve: the bounds keep b finite
            (a, b), _ = curve_fit(power_law, n[keep], error[keep], p0=(start_a, start_b),
                                  bounds=([0, 0], [np.inf, 3]), maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    return float(a), float(b)


def doubling_gain(a: float, b: float, n: float) -> float:
    """Score gained by training on 2n instead of n images, by the fitted law."""
    return float(power_law(n, a, b) - power_law(2 * n, a, b))


def fit_curve(table: pd.DataFrame, metric: str, settings: CurveSettings) -> dict:
    """Fit on the mean over folds at each share; the interval of the doubling gain resamples the folds."""
    part = table[table.metric == metric]
    by_fold = part.pivot_table(index="fold", columns="fraction", values="value")
    sizes = part.groupby("fraction").n_train.mean().reindex(by_fold.columns).to_numpy()
    full_size = float(sizes[-1])
    fitted = fit_power_law(sizes, by_fold.mean().to_numpy())
    result = {"metric": metric, "n_train_full": full_size, "a": None, "b": None, "gain_doubling": None,
              "ci_low": None, "ci_high": None, "n_folds": int(len(by_fold))}
    if fitted is None:
        return result
    rng = np.random.default_rng(settings.seed)
    gains = []
    for _ in range(settings.bootstrap):
        picked = by_fold.iloc[rng.integers(0, len(by_fold), len(by_fold))]
        refit = fit_power_law(sizes, picked.mean().to_numpy())
        if refit is not None:
            gains.append(doubling_gain(*refit, full_size))
    tail = (1 - settings.confidence) / 2
    low, high = (np.quantile(gains, [tail, 1 - tail]) if gains else (None, None))
    return {**result, "a": fitted[0], "b": fitted[1], "gain_doubling": doubling_gain(*fitted, full_size),
            "ci_low": None if low is None else float(low), "ci_high": None if high is None else float(high)}


def learning_curve(run_dir: Path, settings: CurveSettings | None = None,
                   log: Callable[[str], None] = print) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """(validation predictions per share, scores per fold/share/metric, one fit per metric)."""
    settings = settings or CurveSettings()
    classes = store.read_json(Path(run_dir) / store.RUN_JSON)["classes"]
    predictions = curve_predictions(run_dir, settings, log)
    table = curve_table(predictions, classes)
    fits = [fit_curve(table, metric, settings) for metric in table.metric.unique()]
    return predictions, table, fits


def format_fits(fits: list[dict]) -> str:
    def points(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:+.1f}"
    lines = ["learning curve: estimated gain from doubling the training data (points, 95% CI over folds):"]
    lines += [f"  {fit['metric']:<28} {points(fit['gain_doubling']):>6}  [{points(fit['ci_low'])}, "
              f"{points(fit['ci_high'])}]" for fit in fits]
    return "\n".join(lines)
