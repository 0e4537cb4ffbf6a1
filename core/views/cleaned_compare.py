"""What a cleaning did: a run trained on a cleaned manifest next to the run it was cleaned from.

The cleaned run names its source in run.json (`dataset.derived_from.source_run`, copied from the review.json
beside the manifest). Images are matched across the two runs by their absolute file path, so the comparison
needs nothing but the two run directories. Classes merged by the cleaning (`clean --merge-classes A,B`) are read
from the two runs as well: a source class the cleaned run lacks, whose images all carry one label there, was merged
into it. The like-for-like scores then read the source's labels and predictions of A and B as A+B.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from core.evaluate import dense_confusion, matrix_cells
from core.views.tables import per_class_spread

CHANGES = ("relabelled", "merged", "dropped", "added", "unchanged")   # merged: relabelled into its merged class


def source_run(info: dict) -> str | None:
    """The run a run's manifest was cleaned from, or None."""
    return ((info.get("dataset") or {}).get("derived_from") or {}).get("source_run")


def cleaning_pairs(infos: dict[str, dict]) -> list[tuple[str, str]]:
    """(source, cleaned) run ids among `infos` (run id -> run.json) where both runs are present."""
    return [(source_run(info), run_id) for run_id, info in infos.items() if source_run(info) in infos]


def _by_file(samples: pd.DataFrame, root: str) -> pd.DataFrame:
    """Samples keyed by absolute path and, for a file a manifest lists more than once, which listing it is."""
    absolute = pd.Series([(Path(root) / p).as_posix() for p in samples["path"]])
    return pd.DataFrame({"file": absolute, "copy": absolute.groupby(absolute).cumcount(),
                         "sample_id": samples["sample_id"].to_numpy(), "label": samples["label"].to_numpy(),
                         "split": samples["split"].to_numpy(),
                         "fold": samples["fold"].astype("Int64").to_numpy() if "fold" in samples
                         else pd.array([None] * len(samples), dtype="Int64")})


def class_merges(samples_a: pd.DataFrame, root_a: str, classes_a: list[str], samples_b: pd.DataFrame, root_b: str,
                 classes_b: list[str]) -> dict[str, str]:
    """{source class: cleaned class} for each class of A that B no longer has, whose images in both runs all carry
    one label in B (and for that label itself, when it is a class of A that took the others in)."""
    both = _by_file(samples_a, root_a).merge(_by_file(samples_b, root_b), on=["file", "copy"], suffixes=("_a", "_b"))
    mapping = {}
    for old, labels in both.groupby("label_a")["label_b"]:
        if old not in classes_b and labels.nunique() == 1:
            mapping[old] = labels.iloc[0]
    for new in set(mapping.values()) & set(classes_a):
        mapping[new] = new   # "merge B into A": A keeps its name
    return mapping if len(mapping) > len(set(mapping.values())) else {}   # a rename alone is no merge


def image_changes(samples_a: pd.DataFrame, root_a: str, samples_b: pd.DataFrame, root_b: str,
                  merges: dict[str, str] | None = None) -> pd.DataFrame:
    """Every image of either run, matched by absolute path: file, sample_id/label/split/fold in A and in B, and
    `change`: merged (relabelled into its merged class, `merges` from `class_merges`), relabelled, dropped (in A
    only), added (in B only) or unchanged. Changed images first."""
    both = _by_file(samples_a, root_a).merge(_by_file(samples_b, root_b), on=["file", "copy"], how="outer",
                                             suffixes=("_a", "_b")).drop(columns="copy")
    merged = both["label_a"].map(merges or {}).eq(both["label_b"])
    change = np.select([both["label_a"].isna(), both["label_b"].isna(), both["label_a"] == both["label_b"], merged],
                       ["added", "dropped", "unchanged", "merged"], "relabelled")
    both["change"] = pd.Categorical(change, categories=CHANGES, ordered=True)
    for side in ("a", "b"):
        both[f"sample_id_{side}"] = both[f"sample_id_{side}"].astype("Int64")
    return both.sort_values(["change", "file"], ignore_index=True)


def change_counts(changes: pd.DataFrame) -> dict[str, int]:
    return {change: int((changes["change"] == change).sum()) for change in CHANGES}


def split_moves(changes: pd.DataFrame) -> dict[str, int]:
    """Of the images in both runs: how many, and how many changed split (cv/test) or validation fold. A run on a
    cleaned manifest keeps its source's splits (0 moved) unless it was trained with --redraw-splits."""
    shared = changes[changes["label_a"].notna() & changes["label_b"].notna()]
    moved_split = shared["split_a"] != shared["split_b"]
    moved_fold = ~moved_split & (shared["fold_a"].fillna(-1) != shared["fold_b"].fillna(-1))
    return {"shared": len(shared), "moved_split": int(moved_split.sum()), "moved_fold": int(moved_fold.sum())}


def moves_sentence(moves: dict[str, int]) -> str:
    """The Compare page's line about split moves."""
    if not moves["moved_split"] and not moves["moved_fold"]:
        return (f"All {moves['shared']} images the two runs share kept their split and fold: both runs are "
                "measured on the same test images and the same folds.")
    return (f"Of the {moves['shared']} images the two runs share, {moves['moved_split']} changed split (cv/test) "
            f"and {moves['moved_fold']} changed fold: the splits were drawn anew (--redraw-splits, or a run from "
            "before the splits were kept), so part of any difference is which images each fold was measured on.")


# the like-for-like images: same file and label, a merged class's images read as the merged class in both runs
SAME = ("unchanged", "merged")


def like_for_like_denominator(changes: pd.DataFrame, oof_a: pd.DataFrame, oof_b: pd.DataFrame) -> dict[str, int]:
    """Why the like-for-like table scores the images it does: how many it scores (`merged` of them read as their
    merged class), and how many of each run's images it leaves out as relabelled, dropped, added, or not
    cross-validated by both (test in either run)."""
    counts = change_counts(changes)
    same = changes[changes["change"].isin(SAME)]
    both = same["sample_id_a"].isin(oof_a["sample_id"]) & same["sample_id_b"].isin(oof_b["sample_id"])
    return {"images": int(both.sum()), "merged": int((both & (same["change"] == "merged")).sum()),
            "relabelled": counts["relabelled"], "dropped": counts["dropped"],
            "added": counts["added"], "not_cross_validated_by_both": int((~both).sum())}


def denominator_caption(denominator: dict[str, int]) -> str:
    merged = (f", {denominator['merged']} of them in merged classes (the source's labels and predictions of the "
              "merged classes read as the merged class)" if denominator.get("merged") else "")
    return (f"Scored on {denominator['images']} images{merged}: those both runs cross-validated (each predicted by a "
            f"fold model that did not train on it) with the same file and label. Left out: "
            f"{denominator['relabelled']} relabelled, {denominator['dropped']} dropped, {denominator['added']} added, "
            f"and {denominator['not_cross_validated_by_both']} unchanged images not out-of-fold in both runs (in the test "
            f"split of either, or in a fold not trained yet).")


def unchanged_scores(changes: pd.DataFrame, oof_a: pd.DataFrame, oof_b: pd.DataFrame,
                     run_a: str, run_b: str, merges: dict[str, str] | None = None) -> pd.DataFrame:
    """Both runs scored on the same images: those neither run changed (same file, same label, or relabelled only
    into its merged class) that both cross-validated, each predicted by the fold model that did not train on it.
    With `merges` (from `class_merges`) the source's labels and predictions of merged classes are read as the
    merged class, so both runs are scored on the cleaned run's classes: a source that tells A from B no better
    than chance is not charged for it.

    oof_a/oof_b: out-of-fold `views.prediction_rows` of each run (sample_id, true_name, pred_name)."""
    same = changes[changes["change"].isin(SAME) & changes["sample_id_a"].isin(oof_a["sample_id"])
                   & changes["sample_id_b"].isin(oof_b["sample_id"])]
    rows = []
    for run_id, side, oof in ((run_a, "a", oof_a), (run_b, "b", oof_b)):
        picked = oof.set_index("sample_id").loc[same[f"sample_id_{side}"].astype(int)]
        mapping = (merges or {}) if side == "a" else {}
        truth, pred = (picked[column].map(lambda c: mapping.get(c, c)).to_numpy() for column in ("true_name",
                                                                                               "pred_name"))
        rows.append({"run": run_id, "images": len(picked),
                     "accuracy": accuracy_score(truth, pred) if len(picked) else np.nan,
                     "balanced_accuracy": balanced_accuracy_score(truth, pred) if len(picked) else np.nan,
                     "macro_f1": f1_score(truth, pred, average="macro", zero_division=0) if len(picked) else np.nan})
    return pd.DataFrame(rows)


def merged_metrics(metrics: dict, merges: dict[str, str], classes: list[str]) -> dict | None:
    """The source run's pooled out-of-fold confusion with each merged class summed into its merged class, in the
    cleaned run's class order `classes`: a metrics.json holding that matrix alone, for the confusion difference.
    None when a source class has no place among `classes` (dropped whole, or renamed)."""
    source = list(metrics.get("classes", []))
    target = [merges.get(c, c) for c in source]
    if "oof" not in metrics or not set(target) <= set(classes):
        return None
    into = np.zeros((len(source), len(classes)))
    into[np.arange(len(source)), [classes.index(c) for c in target]] = 1
    matrix = into.T @ dense_confusion(metrics["oof"]["val"], len(source)) @ into
    return {"classes": list(classes), "oof": {"val": {"confusion_cells": matrix_cells(matrix)}}}


def per_class_side_by_side(metrics_by_run: dict[str, dict], score: str = "recall") -> pd.DataFrame:
    """Per class and run: validation `score` mean and std over folds (NaN where undefined), and support."""
    parts = []
    for run_id, metrics in metrics_by_run.items():
        spread = per_class_spread(metrics, metrics.get("classes", []))
        parts.append(spread[spread["score"] == score].drop(columns="score").assign(run=run_id))
    return pd.concat(parts, ignore_index=True)[["class", "run", "mean", "std", "support"]]
