"""Data shaping for the dashboard pages: plain pandas/numpy on the tables of a run (no Streamlit here).

Every function takes already-loaded tables (see `core.store.run_store`) and returns a small frame or array
ready to draw, so the pages stay thin and these functions are testable without a browser.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from core.evaluate import HEADLINE, dense_confusion, training_counts
from core.numbers import interval, metric_name, percent, points, spread, with_interval

ROLES = ("train", "val", "test")
SCORES = ["precision", "recall", "f1"]   # per-class scores, in the order tables show them
COLOR_BY = ("label", "prediction", "correct", "role", "confidence")


# ---------------------------------------------------------------- overview

def _bounds(held_out: dict, key: str) -> tuple[float, float]:
    bounds = held_out.get("intervals", {}).get(key)
    return (bounds[0], bounds[1]) if bounds else (np.nan, np.nan)


def headline_table(metrics: dict) -> pd.DataFrame:
    """One row per headline metric: mean and std per role over fold models, the train-minus gaps, the test
    ensemble (what predict and serve use) with its 95% interval, and validation's interval (pooled out-of-fold)."""
    rows = []
    ensemble = metrics.get("ensemble", {}).get("test", {})
    oof = metrics.get("oof", {}).get("val", {})
    for key in HEADLINE:
        row = {"metric": key}
        for role in ROLES:
            stats = metrics.get("summary", {}).get(role, {}).get(key)
            row[f"{role}_mean"] = stats["mean"] if stats else np.nan
            row[f"{role}_std"] = stats["std"] if stats else np.nan
        for gap in ("train_minus_val", "train_minus_test"):
            row[gap] = metrics.get("gaps", {}).get(gap, {}).get(key, np.nan)
        row["val_low"], row["val_high"] = _bounds(oof, key)
        row["test_ensemble"] = ensemble.get(key, np.nan)
        row["test_low"], row["test_high"] = _bounds(ensemble, key)
        rows.append(row)
    return pd.DataFrame(rows)


def gap_text(gap: float, train: float, high: float) -> str:
    """A train-minus gap in points, saying when train lies inside the held-out side's interval: a gap chance alone
    can make is not evidence of memorising."""
    if np.isnan(gap):
        return "–"
    return points(gap) + (" (within the interval)" if not np.isnan(high) and train <= high else "")


def headline_cards(metrics: dict) -> list[dict]:
    """Per headline metric, the text of its card: the test ensemble with its interval and the fold models' mean
    beside it (validation mean ± std when there is no test split), then validation, train and the gaps."""
    cards = []
    for row in headline_table(metrics).itertuples():
        name = metric_name(row.metric)
        val_interval = "" if np.isnan(row.val_low) else f"interval {interval([row.val_low, row.val_high])}"
        test_interval = "" if np.isnan(row.test_low) else f"95% interval {interval([row.test_low, row.test_high])} · "
        gaps = f"gap train−val **{gap_text(row.train_minus_val, row.train_mean, row.val_high)}**"
        if not np.isnan(row.test_ensemble):
            gaps += f" · train−test **{gap_text(row.train_minus_test, row.train_mean, row.test_high)}**"
            cards.append({
                "metric": row.metric, "title": f"Test {name}", "value": percent(row.test_ensemble),
                "lines": [f"{test_interval}fold models' mean {percent(row.test_mean)}",
                          f"validation **{spread(row.val_mean, row.val_std)}**"
                          + (f" ({val_interval})" if val_interval else "") + f" · train {percent(row.train_mean)}",
                          gaps],
                "help": "The test ensemble (mean probability of the fold models), which `predict` and `serve` use, "
                        "on the held-out test split, with its 95% interval; beside it, the mean of the fold "
                        "models each on the test split."})
        else:
            cards.append({
                "metric": row.metric, "title": f"Validation {name}", "value": spread(row.val_mean, row.val_std),
                "lines": ["no test split" + (f" · validation {val_interval}" if val_interval else ""),
                          f"train {percent(row.train_mean)}", gaps],
                "help": "Mean ± standard deviation over folds of each fold model on its own validation fold; the "
                        "95% interval is of the pooled out-of-fold predictions."})
    return cards


def has_test_split(metrics: dict) -> bool:
    """Whether the run holds out a test split (test_size > 0): only then does metrics.json have test entries."""
    return "test" in metrics.get("summary", {})


def class_counts(samples: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Images per class and split, in `classes` order, with each class's share of all images."""
    counts = pd.crosstab(samples["label"], samples["split"]).reindex(classes, fill_value=0)
    counts = counts.reindex(columns=["cv", "test"], fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts["share"] = counts["total"] / max(1, counts["total"].sum())
    return counts.rename_axis("class").reset_index()


def config_rows(info: dict) -> pd.DataFrame:
    """The run's configuration plus the resolved choices (mode, device, weights) as key/value rows."""
    rows = {**info.get("config", {}),
            "resolved train_mode": f"{info.get('train_mode')} ({info.get('train_mode_reason', '')})",
            "device": info.get("device"), "weights source": (info.get("weights") or {}).get("source"),
            "dataset root": (info.get("dataset") or {}).get("root")}
    return pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]})


# ---------------------------------------------------------------- overfitting

def learning_curves(history: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per fold, mean over folds) of `metric` by epoch and phase. The mean only covers epochs all folds
    reached, so early-stopped folds do not make it jump."""
    per_fold = history[["fold", "epoch", "phase", metric]].sort_values(["phase", "fold", "epoch"])
    n_folds = per_fold["fold"].nunique()
    grouped = per_fold.groupby(["phase", "epoch"])[metric].agg(["mean", "count"]).reset_index()
    mean = grouped[grouped["count"] == n_folds].drop(columns="count").rename(columns={"mean": metric})
    return per_fold, mean


def best_epochs(history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The kept epoch of every fold, on the validation curve."""
    return history[history["is_best"] & (history["phase"] == "val")][["fold", "epoch", metric]]


def fold_gaps(metrics: dict, metric: str) -> pd.DataFrame:
    """Per fold: train, val and test value of `metric` and the train-minus-val gap."""
    rows = []
    for fold, by_role in sorted(metrics.get("folds", {}).items(), key=lambda item: int(item[0])):
        row = {"fold": int(fold), **{role: by_role[role][metric] for role in ROLES if role in by_role}}
        row["gap"] = row.get("train", np.nan) - row.get("val", np.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=["fold", *ROLES, "gap"])


def class_gaps(metrics: dict, classes: list[str], score: str = "recall") -> pd.DataFrame:
    """Per class: `score` on train and val (mean over the folds where both are defined) and the gap, largest
    gap first; NaN for a class that no fold has on both sides."""
    folds = [f for f in metrics.get("folds", {}).values() if "train" in f and "val" in f]
    train, val = (pd.DataFrame(_score_matrix([f[role] for f in folds], classes, score)) for role in ("train", "val"))
    both = train.notna() & val.notna()
    train, val = train.where(both).mean(axis=1), val.where(both).mean(axis=1)
    return pd.DataFrame({"class": list(classes), "train": train, "val": val, "gap": train - val}).sort_values(
        "gap", ascending=False, ignore_index=True)


# ---------------------------------------------------------------- classes

def confusion_sources(metrics: dict) -> list[str]:
    """Which confusion matrices the run has: pooled OOF, each fold's validation, the test ensemble."""
    sources = ["oof"] if metrics.get("oof", {}).get("val") else []
    sources += [f"fold{k}" for k in sorted(map(int, metrics.get("folds", {})))]
    return sources + (["ensemble"] if metrics.get("ensemble", {}).get("test") else [])


def source_label(source: str) -> str:
    if source == "oof":
        return "pooled out-of-fold (validation)"
    if source == "ensemble":
        return "test set, ensemble of folds"
    return f"fold {source.removeprefix('fold')} validation"


def confusion(metrics: dict, source: str, normalize: bool) -> np.ndarray:
    """Rows = true class, columns = predicted; row-normalised to recall when asked (empty rows stay 0)."""
    block = _metrics_block(metrics, source)
    matrix = dense_confusion(block, len(metrics["classes"])).astype(float)
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    return matrix


def _metrics_block(metrics: dict, source: str) -> dict:
    if source == "oof":
        return metrics["oof"]["val"]
    if source == "ensemble":
        return metrics["ensemble"]["test"]
    return metrics["folds"][source.removeprefix("fold")]["val"]


def per_class_spread(metrics: dict, classes: list[str]) -> pd.DataFrame:
    """Per class and score: mean, std, min and max over the folds' validation sets where the score is defined
    (NaN where it is nowhere), plus pooled support."""
    folds = [f["val"] for f in metrics.get("folds", {}).values() if "val" in f]
    pooled = metrics.get("oof", {}).get("val", {}).get("per_class", {})
    # one class x fold frame per score (column-wise statistics, not a Series per class: 1,000 classes stay quick)
    stats = []
    for score in SCORES:
        values = pd.DataFrame(_score_matrix(folds, classes, score))
        stats.append(np.column_stack([values.mean(axis=1), values.std(axis=1, ddof=0), values.min(axis=1),
                                      values.max(axis=1)]))
    by_class = np.stack(stats, axis=1).reshape(-1, 4)   # rows: each class's three scores in turn
    support = [pooled.get(name, {}).get("support", 0) for name in classes]
    return pd.DataFrame({"class": np.repeat(list(classes), len(SCORES)), "score": SCORES * len(classes),
                         "mean": by_class[:, 0], "std": by_class[:, 1], "min": by_class[:, 2],
                         "max": by_class[:, 3], "support": np.repeat(support, len(SCORES))})


def _score_matrix(blocks: list[dict], classes: list[str], score: str) -> np.ndarray:
    """Classes x blocks (folds) of one per-class score, NaN where undefined (None)."""
    return np.array([[block["per_class"][name][score] for block in blocks] for name in classes],
                    dtype=float).reshape(len(classes), len(blocks))


def scores_by_training_images(metrics: dict, classes: list[str]) -> pd.DataFrame:
    """Per class and score (recall, precision): its training images (mean per fold, `training_counts`), the mean
    over folds' validation sets with the fold min and max, and pooled validation support: the long-tail chart."""
    spread_frame = per_class_spread(metrics, classes)
    frame = spread_frame[spread_frame["score"].isin(["recall", "precision"])].copy()
    frame["train_images"] = frame["class"].map(training_counts(metrics, classes))
    return frame[["class", "score", "train_images", "mean", "min", "max", "std", "support"]].reset_index(drop=True)


def tail_cut(diagnostics: dict | None) -> float | None:
    """The long-tail diagnostic's cut in training images, when the run has a tail (older runs: None)."""
    tail = (diagnostics or {}).get("tail")
    return tail["cut"] if tail and tail["n_tail"] else None


def worst_classes(spread: pd.DataFrame, n: int) -> list[str]:
    """The `n` classes of lowest mean validation recall in a `per_class_spread` frame, worst first (a class without
    a recall last)."""
    recall = spread[spread["score"] == "recall"].sort_values("mean", na_position="last", kind="stable")
    return recall["class"].head(n).tolist()


def per_class_table(metrics: dict, classes: list[str]) -> pd.DataFrame:
    """Per class, as text: validation precision, recall and F1 (mean ± std over folds, '–' where no fold defines
    them), pooled validation support, and the test ensemble's recall of its test images with the 95% interval
    ('–' without a test split)."""
    table = per_class_spread(metrics, classes)
    means = table["mean"].to_numpy().reshape(-1, len(SCORES))
    stds = table["std"].to_numpy().reshape(-1, len(SCORES))
    supports = table["support"].to_numpy()[::len(SCORES)]
    test = metrics.get("ensemble", {}).get("test", {})
    recall_intervals = test.get("intervals", {}).get("recall", {})
    rows = []
    for i, name in enumerate(classes):
        row = {"class": name}
        for j, score in enumerate(SCORES):
            row[score] = spread(means[i, j], stds[i, j])
        row["support"] = int(supports[i])
        stats = test.get("per_class", {}).get(name)
        bounds = recall_intervals.get(name)
        row["test recall"] = "–" if not stats or not stats["support"] else (f"{percent(stats['recall'])} of {stats['support']}"
                                                    + (f" ({interval(bounds)})" if bounds else ""))
        rows.append(row)
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support", "test recall"])


# ---------------------------------------------------------------- predictions

def prediction_rows(predictions: pd.DataFrame, samples: pd.DataFrame, classes: list[str], source: str,
                    role: str = "val") -> pd.DataFrame:
    """Predictions of one source joined with their samples.

    source: "oof" (every fold model's validation rows: each cv sample once; `role` does not apply), "fold{k}"
    (that model's rows of `role`), or "ensemble" (test split).
    """
    if source == "ensemble":
        rows = predictions[predictions["model"] == "ensemble"]
    elif source == "oof":
        rows = predictions[(predictions["model"] != "ensemble") & (predictions["role"] == "val")]
    else:
        rows = predictions[(predictions["model"] == source) & (predictions["role"] == role)]
    names = np.asarray(classes, dtype=object)
    frame = rows[["sample_id", "model", "fold", "role", "label", "pred", "confidence", "loss"]].merge(
        samples[["sample_id", "path", "width", "height"]], on="sample_id", how="left")
    frame["true_name"] = names[frame["label"].to_numpy()]
    frame["pred_name"] = names[frame["pred"].to_numpy()]
    frame["correct"] = frame["label"] == frame["pred"]
    return frame


def roles_for(fold: str, has_test: bool) -> list[str]:
    """The roles a (fold, role) filter offers. Fold "oof" is every image once: its validation rows, and the test
    split through the ensemble; train rows would repeat each image once per other fold."""
    roles = ["val", "test"] if fold == "oof" else ["val", "test", "train"]
    return [role for role in roles if has_test or role != "test"]


def source_for(fold: str, role: str) -> str:
    """The prediction source behind a (fold, role) filter (see `roles_for`): fold "oof" means every fold model on
    the rows it did not train on, and for the test split that is their ensemble."""
    if fold == "oof":
        return "ensemble" if role == "test" else "oof"
    return f"fold{fold}"


def cell_rows(rows: pd.DataFrame, true: int, pred: int) -> pd.DataFrame:
    """Samples of one confusion cell, most confident first."""
    picked = rows[(rows["label"] == true) & (rows["pred"] == pred)]
    return picked.sort_values("confidence", ascending=False, ignore_index=True)


def misclassified(rows: pd.DataFrame, true: int | None, pred: int | None,
                  issue_ids: set[int], duplicate_ids: set[int]) -> pd.DataFrame:
    """Wrong predictions, most confidently wrong first, with badges for suspected label issues and
    duplicates (the likeliest explanations for a confident mistake)."""
    wrong = rows[~rows["correct"]]
    if true is not None:
        wrong = wrong[wrong["label"] == true]
    if pred is not None:
        wrong = wrong[wrong["pred"] == pred]
    wrong = wrong.sort_values("confidence", ascending=False, ignore_index=True)
    ids = wrong["sample_id"]
    wrong["label_issue"] = ids.isin(issue_ids)
    wrong["duplicate"] = ids.isin(duplicate_ids)
    return wrong


def mistakes_out_of(rows: pd.DataFrame, true: int | None, pred: int | None) -> int:
    """How many predictions the mistakes of a (true, pred) filter are counted out of: the true class's images
    when one is picked (what wrong share of that class), else the predictions of the picked class, else all."""
    if true is not None:
        return int((rows["label"] == true).sum())
    if pred is not None:
        return int((rows["pred"] == pred).sum())
    return len(rows)


def page_count(n_rows: int, per_page: int) -> int:
    return max(1, -(-n_rows // per_page))


def page_of(frame: pd.DataFrame, page: int, per_page: int) -> pd.DataFrame:
    """Rows of the 1-based `page`, clamped to the pages there are."""
    page = min(max(1, page), page_count(len(frame), per_page))
    return frame.iloc[(page - 1) * per_page: page * per_page]


# ---------------------------------------------------------------- embeddings

def embedding_points(coords: pd.DataFrame, rows: pd.DataFrame, color: str) -> pd.DataFrame:
    """2-D points of one space with what the scatter colours and shows on hover.

    coords: sample_id, x, y of one space; rows: `prediction_rows` of the model behind that space (OOF for
    the backbone), so test samples appear through the ensemble or the fold model's test rows.
    """
    points = coords[["sample_id", "x", "y"]].merge(
        rows[["sample_id", "path", "true_name", "pred_name", "confidence", "correct", "role"]],
        on="sample_id", how="inner")
    values = {"label": points["true_name"], "prediction": points["pred_name"],
              "correct": points["correct"].map({True: "correct", False: "wrong"}), "role": points["role"],
              "confidence": points["confidence"]}
    points["color"] = values[color]
    return points


def space_rows(predictions: pd.DataFrame, samples: pd.DataFrame, classes: list[str], space: str) -> pd.DataFrame:
    """The predictions a space is about: a fold's model for its own space (train, val and test rows),
    otherwise out-of-fold predictions plus the test ensemble."""
    if space.startswith("fold"):
        return pd.concat([prediction_rows(predictions, samples, classes, space, role) for role in ROLES],
                         ignore_index=True)
    parts = [prediction_rows(predictions, samples, classes, "oof")]
    if (predictions["model"] == "ensemble").any():
        parts.append(prediction_rows(predictions, samples, classes, "ensemble"))
    return pd.concat(parts, ignore_index=True)


def pca_2d(embedding: np.ndarray, seed: int = 0, fit_rows: int = 4000) -> pd.DataFrame:
    """A quick 2-D linear projection, shown while the UMAP map is not computed yet. Components are fit on a
    random subset so 50k x 2048 stays fast."""
    data = np.asarray(embedding, dtype=np.float32)
    fit = np.random.default_rng(seed).choice(len(data), size=min(fit_rows, len(data)), replace=False)
    from sklearn.decomposition import PCA  # here: importing scikit-learn costs every page's first visit a second
    xy = PCA(n_components=2, random_state=seed).fit(data[fit]).transform(data)
    return pd.DataFrame({"sample_id": np.arange(len(data)), "x": xy[:, 0], "y": xy[:, 1]})


def selected_rows(points: pd.DataFrame, sample_ids: list[int]) -> pd.DataFrame:
    """The selected points, mistakes first and most confident first within each, like the gallery."""
    picked = points[points["sample_id"].isin(sample_ids)]
    return picked.sort_values(["correct", "confidence"], ascending=[True, False], ignore_index=True)


# ---------------------------------------------------------------- data

def image_sizes(samples: pd.DataFrame) -> pd.DataFrame:
    """Width/height per image with its class, for a size scatter."""
    return samples[["sample_id", "label", "width", "height", "path"]]


def size_summary(samples: pd.DataFrame) -> pd.DataFrame:
    """Per class: median width/height and smallest side, so tiny or odd images stand out."""
    short = samples[["width", "height"]].min(axis=1)
    return (samples.assign(short_side=short).groupby("label")
            .agg(images=("sample_id", "size"), median_width=("width", "median"),
                 median_height=("height", "median"), smallest_side=("short_side", "min"))
            .reset_index())


def duplicate_pairs(duplicates: pd.DataFrame) -> pd.DataFrame:
    """Leaking pairs first, then pairs crossing folds or touching the test split, then by similarity."""
    order = [c for c in ("leakage", "touches_test", "crosses_folds", "similarity") if c in duplicates]
    return duplicates.sort_values(order, ascending=False, ignore_index=True)


def label_issue_rows(issues: pd.DataFrame) -> pd.DataFrame:
    """The label-issue table as shown: suspected label errors first, then by combined evidence, then lowest label
    quality; 'rank' as 'k of n' within its part (cv or test), which detectors flag it, cleanlab's flag and the
    test-split marker. Files from before the ranking listed flagged cross-validation samples only, and read that
    way; files from before the detectors count as cleanlab's alone; files from before the combined evidence
    rank by how many detectors flag a sample."""
    shown = issues.assign(**{column: issues.get(column, default) for column, default in (
        ("split", "cv"), ("flagged", True), ("affects_test_metric", False), ("detectors", 1), ("agreed", True))})
    shown = shown.assign(evidence=shown["evidence"] if "evidence" in shown else shown["detectors"])
    shown = shown.sort_values(["agreed", "evidence", "quality", "sample_id"], ascending=[False, False, True, True],
                              ignore_index=True)
    if {"rank", "part_size"} <= set(shown.columns):
        shown["rank"] = [f"{r} of {n}" for r, n in zip(shown["rank"], shown["part_size"])]
    shown["flagged_by"] = [", ".join(name for name, column in (("cleanlab", "cleanlab"), ("AUM", "aum_flag"),
                                                               ("neighbours", "neighbours_flag"))
                                     if row.get(column, column == "cleanlab"))
                           for row in shown.to_dict("records")]
    columns = ["sample_id", "path", "split", "label", "suggested_label", "quality", "suggested_confidence", "rank",
               "flagged_by", "agreed", "flagged", "affects_test_metric"]
    return shown[[c for c in columns if c in shown.columns]]


def prediction_set_rows(conformal: dict) -> pd.DataFrame:
    """Per class, on the test split: coverage and mean set size of the marginal and class-conditional sets
    (diagnostics.json["conformal"]), and the classes most often in its sets. Empty without a test split."""
    marginal, conditional = conformal["marginal"]["test"], conformal["class_conditional"]["test"]
    if not marginal:
        return pd.DataFrame(columns=["class", "test images", "coverage", "set size", "coverage (per class)",
                                     "set size (per class)", "most often with"])
    return pd.DataFrame([{
        "class": row["class"], "test images": row["n"], "coverage": row["coverage"], "set size": row["mean_set_size"],
        "coverage (per class)": own["coverage"], "set size (per class)": own["mean_set_size"],
        "most often with": ", ".join(f"{s['class']} {s['share']:.0%}" for s in row["shared_with"])}
        for row, own in zip(marginal["per_class"], conditional["per_class"])])


def label_issue_ids(label_issues: pd.DataFrame | None) -> set[int]:
    return set() if label_issues is None else set(label_issues["sample_id"].astype(int))


def duplicate_ids(duplicates: pd.DataFrame | None) -> set[int]:
    if duplicates is None:
        return set()
    return set(duplicates["sample_id_a"].astype(int)) | set(duplicates["sample_id_b"].astype(int))


# ---------------------------------------------------------------- compare

# Config fields that say where a run came from or went, not how it was trained.
BOOKKEEPING = ("data", "name", "runs_dir", "cache_dir", "num_workers")


def setting_differences(configs: dict[str, dict]) -> list[str]:
    """One line per training setting that differs between the compared runs' configs (run id -> config), e.g.
    "folds: 5 in A, 3 in B": a difference in scores may come from these as much as from the data."""
    keys = sorted({key for config in configs.values() for key in config} - set(BOOKKEEPING))
    lines = []
    for key in keys:
        values = {run_id: config.get(key) for run_id, config in configs.items()}
        if len({repr(value) for value in values.values()}) > 1:
            lines.append(f"{key}: " + ", ".join(f"{value} in {run_id}" for run_id, value in values.items()))
    return lines

def compare_headline(metrics_by_run: dict[str, dict]) -> pd.DataFrame:
    """Runs as rows: validation mean ± std of each headline metric, test mean, and the train-val gap."""
    rows = []
    for run_id, metrics in metrics_by_run.items():
        table = headline_table(metrics).set_index("metric")
        row = {"run": run_id}
        for key in HEADLINE:
            row[f"val {key}"] = table.at[key, "val_mean"]
            row[f"val {key} std"] = table.at[key, "val_std"]
            row[f"test {key}"] = table.at[key, "test_mean"]
            row[f"gap {key}"] = table.at[key, "train_minus_val"]
        rows.append(row)
    return pd.DataFrame(rows)


def compare_headline_rows(metrics_by_run: dict[str, dict]) -> pd.DataFrame:
    """Runs as rows, as text in the one metric language: per headline metric, validation mean ± std over folds,
    the test ensemble with its 95% interval, and the train−val gap in points."""
    rows = []
    for run_id, metrics in metrics_by_run.items():
        row = {"run": run_id}
        for r in headline_table(metrics).itertuples():
            name = metric_name(r.metric)
            row[f"validation {name}"] = spread(r.val_mean, r.val_std)
            if has_test_split(metrics):
                bounds = None if np.isnan(r.test_low) else [r.test_low, r.test_high]
                row[f"test {name} (ensemble)"] = with_interval(r.test_ensemble, bounds)
            row[f"gap train−val {name}"] = gap_text(r.train_minus_val, r.train_mean, r.val_high)
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")   # a run without a test split beside one with


def as_percentages(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """`frame` with `columns` written as percentages with one decimal and named in words."""
    columns = list(columns)
    return frame.assign(**{c: frame[c].map(percent) for c in columns}).rename(columns=metric_name)


def compare_recall(metrics_by_run: dict[str, dict]) -> pd.DataFrame:
    """Long table run, class, recall of the pooled out-of-fold predictions (NaN for a class without any)."""
    rows = [{"run": run_id, "class": name, "recall": scores["recall"], "support": scores["support"]}
            for run_id, metrics in metrics_by_run.items()
            for name, scores in metrics.get("oof", {}).get("val", {}).get("per_class", {}).items()]
    return pd.DataFrame(rows, columns=["run", "class", "recall", "support"]).astype({"recall": float})


def confusion_difference(metrics_a: dict, metrics_b: dict) -> np.ndarray | None:
    """Row-normalised OOF confusion of B minus A (positive = B does it more), or None when the runs do not
    share the same classes in the same order."""
    if metrics_a.get("classes") != metrics_b.get("classes") or "oof" not in metrics_a or "oof" not in metrics_b:
        return None
    return confusion(metrics_b, "oof", True) - confusion(metrics_a, "oof", True)
