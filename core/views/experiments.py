"""Data for the dashboard's Experiments page, shaped from an experiment folder (no Streamlit here)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from core.experiments.learning_curve import power_law
from core.experiments.remedies import remedy_named
from core.numbers import percent, points, points_interval
from core.store import run_store as store

OVERALL = "balanced_accuracy"


def read_experiment_table(experiment: dict, name: str) -> pd.DataFrame | None:
    path = Path(experiment["path"]) / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else None


def read_experiment_json(experiment: dict, name: str):
    path = Path(experiment["path"]) / f"{name}.json"
    return store.read_json(path) if path.exists() else None


def metric_label(metric: str) -> str:
    return "balanced accuracy" if metric == OVERALL else f"recall of {metric.removeprefix('recall:')}"


def effect_metrics(effects: pd.DataFrame) -> list[str]:
    """balanced_accuracy first, then each class's recall, in the table's order."""
    metrics = list(dict.fromkeys(effects.metric))
    return sorted(metrics, key=lambda m: m != OVERALL)


def forest_rows(effects: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per remedy and scope (validation folds, test ensemble): difference and interval, in points."""
    rows = []
    for row in effects[effects.metric == metric].itertuples():
        rows.append({"remedy": row.remedy, "scope": f"validation, mean of {row.n_folds} folds (t interval)",
                     "difference": row.difference_mean, "low": row.ci_low, "high": row.ci_high,
                     "verdict": row.verdict})
        if not np.isnan(row.test_difference):
            rows.append({"remedy": row.remedy, "scope": "test ensemble (bootstrap interval)",
                         "difference": row.test_difference, "low": row.test_ci_low, "high": row.test_ci_high,
                         "verdict": row.test_verdict})
    frame = pd.DataFrame(rows, columns=["remedy", "scope", "difference", "low", "high", "verdict"])
    for column in ("difference", "low", "high"):
        frame[column] = 100 * frame[column].astype(float)
    return frame.assign(minus=lambda f: f.difference - f.low, plus=lambda f: f.high - f.difference)


def effects_view(effects: pd.DataFrame) -> pd.DataFrame:
    """The effects table as shown: scores as percentages, differences and their 95% intervals in points (the
    language `remedies` prints), one row per remedy and metric."""
    return pd.DataFrame({
        "remedy": effects.remedy, "metric": effects.metric.map(metric_label), "folds": effects.n_folds,
        "baseline (validation)": effects.baseline_mean.map(percent),
        "remedy (validation)": effects.remedy_mean.map(percent),
        "difference": effects.difference_mean.map(points),
        "95% interval": [points_interval(lo, hi) for lo, hi in zip(effects.ci_low, effects.ci_high)],
        "verdict": effects.verdict,
        "test ensemble difference": effects.test_difference.map(points),
        "test 95% interval": [points_interval(lo, hi) for lo, hi in zip(effects.test_ci_low, effects.test_ci_high)],
        "test verdict": effects.test_verdict})


def _rounded(values: pd.Series, digits: int = 1) -> list[float | None]:
    return [None if pd.isna(v) else round(float(v), digits) for v in values]


def costs_view(costs: pd.DataFrame) -> pd.DataFrame:
    """The cost table as shown: each run's network, input size, parameter counts (all, and those its training
    updates: the head's alone in head mode) and seconds per fold."""
    return pd.DataFrame({
        "remedy": costs.remedy, "model": costs.model, "input px": costs.image_size, "mode": costs.train_mode,
        "parameters": costs.parameters, "trained parameters": costs.trained_parameters,
        "seconds per fold": _rounded(costs.seconds_per_fold),
        "features seconds (once)": _rounded(costs.features_seconds)})


def curve_points(table: pd.DataFrame) -> pd.DataFrame:
    """Per metric and training share: mean and std over folds of the validation score, and the mean size."""
    grouped = table.groupby(["metric", "fraction"])
    return grouped.agg(n_train=("n_train", "mean"), mean=("value", "mean"), std=("value", "std"),
                       folds=("value", "count")).reset_index().assign(label=lambda f: f.metric.map(metric_label))


def fitted_lines(fits: list[dict], points: pd.DataFrame, steps: int = 40) -> pd.DataFrame:
    """The fitted law score = 1 - a n^-b from the smallest size to twice the full size, per fitted metric."""
    rows = []
    for fit in fits:
        if fit["a"] is None:
            continue
        sizes = points[points.metric == fit["metric"]].n_train
        n = np.linspace(sizes.min(), 2 * fit["n_train_full"], steps)
        rows.append(pd.DataFrame({"metric": fit["metric"], "label": metric_label(fit["metric"]), "n_train": n,
                                  "score": 1 - power_law(n, fit["a"], fit["b"])}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["metric", "label", "n_train",
                                                                                 "score"])


def doubling_table(fits: list[dict]) -> pd.DataFrame:
    """Estimated gain (points) from doubling the training data, with its interval, per metric."""
    return pd.DataFrame([{"metric": metric_label(f["metric"]), "training images now": f["n_train_full"],
                          "gain from doubling (points)": None if f["gain_doubling"] is None
                          else 100 * f["gain_doubling"],
                          "interval low": None if f["ci_low"] is None else 100 * f["ci_low"],
                          "interval high": None if f["ci_high"] is None else 100 * f["ci_high"]} for f in fits])


def experiment_runs(experiment: dict, run_status: Mapping[str, str]) -> pd.DataFrame:
    """The runs of a remedies experiment in the order they train: remedy, run id, status, what it changes. The
    baseline's status is its run's (`run_status`: status by run id); a remedy not reached yet is `planned`."""
    baseline = experiment.get("baseline")
    rows = [{"remedy": "baseline", "run_id": baseline, "status": run_status.get(baseline, "planned"),
             "what": "the settings as given"}]
    rows += [{"remedy": r["remedy"], "run_id": r["run_id"], "status": r["status"],
              "what": r["what"] + (f" ({r['dropped']['count']} images left out)" if r.get("dropped") else "")
              + (f" — {r['error']}" if r.get("error") else "")} for r in experiment.get("runs", [])]
    reached = {r["remedy"] for r in experiment.get("runs", [])} | {s["remedy"] for s in experiment.get("skipped", [])}
    rows += [{"remedy": name, "run_id": None, "status": "planned", "what": remedy_named(name).what}
             for name in experiment.get("planned", []) if name not in reached]
    return pd.DataFrame(rows)


def self_training_run(experiment: dict, runs_dir: Path) -> tuple[str, pd.DataFrame, dict] | None:
    """(run id, pseudo-labels per fold and class, record) of the experiment's complete self-training run; None
    when it has none."""
    for entry in experiment.get("runs", []):
        if entry["status"] == "complete" and remedy_named(entry["remedy"]).uses_pool:
            stored = store.read_self_training(Path(runs_dir) / entry["run_id"])
            if stored is not None:
                return entry["run_id"], *stored
    return None


def pseudo_labels_view(per_class: pd.DataFrame) -> pd.DataFrame:
    """Self-training's pseudo-labels per class as shown: the fold training prior, how many each fold took (and
    the threshold that took them), the total, and their accuracy where the pool's true label is known."""
    def joined(values, form) -> str:
        return " / ".join(form(v) for v in values)
    rows = []
    for name, group in per_class.sort_values("fold").groupby("class", sort=False):
        known, correct = int(group.known.sum()), int(group.correct.sum())
        rows.append({"class": name, "training prior": percent(group.prior.mean()),
                     "pseudo-labels per fold": joined(group.pseudo_labels, str),
                     "threshold per fold": joined(group.threshold, lambda t: "—" if np.isinf(t) else f"{t:.2f}"),
                     "pseudo-labels": int(group.pseudo_labels.sum()), "true label known": known,
                     "accuracy": percent(correct / known) if known else "—"})
    return pd.DataFrame(rows)


def repeat_spread(spread: dict[str, dict[str, float]] | None) -> pd.DataFrame:
    """A repeats experiment's spread as rows: score (e.g. `val balanced_accuracy`), mean, std, min, max over the
    repeats; scores without a value (no test split) left out."""
    rows = [{"score": name, **stats} for name, stats in (spread or {}).items() if stats["mean"] == stats["mean"]]
    return pd.DataFrame(rows, columns=["score", "mean", "std", "min", "max"])


def trials_view(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials table as shown: settings as columns without the param_ prefix, best score first, scores as
    percentages."""
    if trials is None or trials.empty:
        return pd.DataFrame()
    shown = trials.rename(columns=lambda c: c.removeprefix("param_"))
    shown = shown.sort_values(["value", "number"], ascending=[False, True], na_position="last").reset_index(drop=True)
    return shown.assign(value=shown["value"].map(percent))


def study_url(experiment: dict) -> str:
    """A read-only SQLite URL of the study, so the dashboard never writes to it."""
    path = Path(experiment["path"]) / experiment["storage"]
    return f"sqlite:///file:{path}?mode=ro&uri=true"


def load_study(experiment: dict):
    """The Optuna study of a tune experiment, opened read-only (for optuna.visualization)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(study_url(experiment), skip_table_creation=True)
    return optuna.load_study(study_name=experiment["experiment_id"], storage=storage)
