"""Failing slices: groups of similar images where the model fails far more than elsewhere, found by clustering
each embedding space and keeping the clusters whose out-of-fold error is well above the run's in most folds."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.cluster import KMeans
from sklearn.metrics import roc_auc_score

from core.analysis.diagnostics.image_properties import PROPERTIES
from core.analysis.diagnostics.neighbours import Space
from core.analysis.diagnostics.thresholds import Thresholds


def clusters(unit: np.ndarray, th: Thresholds) -> np.ndarray:
    """k-means labels of one space's PCA unit vectors; k grows with the data (about one cluster per
    `slice_cluster_size` images). Fitted on a seeded subsample of `pca_fit_rows` rows, like the PCA (on 50k
    samples a full fit costs ten times as much for the same centres), then every row is assigned."""
    k = int(np.clip(len(unit) // th.slice_cluster_size, 2, th.slice_max_clusters))
    fit = np.sort(np.random.default_rng(th.seed).choice(len(unit), size=min(len(unit), th.pca_fit_rows),
                                                        replace=False))
    return KMeans(n_clusters=min(k, len(fit)), n_init=2, random_state=th.seed).fit(unit[fit]).predict(unit)


def _fold_errors(wrong: np.ndarray, folds: np.ndarray) -> dict[str, float]:
    return {str(int(k)): float(wrong[folds == k].mean()) for k in np.unique(folds)}


def candidate_slices(space: Space, cv: pd.DataFrame, th: Thresholds) -> list[dict]:
    """Clusters of one space that pass every test. cv: sample_id, fold, wrong for cv samples (samples order
    among them); the cluster of a test sample is kept too, for the gallery, but only cv samples are scored."""
    assignment = clusters(space.unit, th)
    run_error = float(cv["wrong"].mean())
    ids = cv["sample_id"].to_numpy()
    wrong = cv["wrong"].to_numpy(dtype=bool)
    folds = cv["fold"].to_numpy(dtype=int)
    found = []
    for cluster in np.unique(assignment):
        members = np.flatnonzero(assignment[ids] == cluster)
        size, errors = len(members), int(wrong[members].sum())
        if size < th.slice_min_size:
            continue
        error = errors / size
        if error < max(th.slice_error_lift * run_error, run_error + th.slice_error_margin):
            continue
        per_fold = _fold_errors(wrong[members], folds[members])
        above = np.mean([value > run_error for value in per_fold.values()])
        if len(per_fold) < 2 or above < th.slice_fold_share:   # one fold's accident, not a kind of image
            continue
        p_value = float(binomtest(errors, size, run_error, alternative="greater").pvalue)
        if p_value > th.slice_p_value:
            continue
        found.append({"space": space.name, "members": ids[members].tolist(),
                      "all_members": np.flatnonzero(assignment == cluster).tolist(), "size": size, "errors": errors,
                      "error": error, "run_error": run_error, "fold_errors": per_fold,
                      "fold_std": float(np.std(list(per_fold.values()))), "p_value": p_value,
                      "excess_errors": errors - run_error * size})
    return found


def _jaccard(a: list[int], b: list[int]) -> float:
    a, b = set(a), set(b)
    return len(a & b) / max(1, len(a | b))


def _distinguishing(properties: pd.DataFrame | None, members: list[int], th: Thresholds) -> list[dict]:
    """Properties whose values in the slice differ from the rest's (AUC of slice vs rest far from 0.5)."""
    if properties is None:
        return []
    inside = properties["sample_id"].isin(members).to_numpy()
    out = []
    for name in PROPERTIES:
        values = properties[name].to_numpy(dtype=float)
        known = ~np.isnan(values)
        if inside[known].sum() < 2 or (~inside[known]).sum() < 2 or np.ptp(values[known]) == 0:
            continue
        auc = float(roc_auc_score(inside[known], values[known]))
        if abs(auc - 0.5) >= th.slice_property_auc - 0.5:
            out.append({"property": name, "auc": auc, "slice_median": float(np.median(values[known & inside])),
                        "rest_median": float(np.median(values[known & ~inside]))})
    return sorted(out, key=lambda row: -abs(row["auc"] - 0.5))


def _describe(row: dict) -> str:
    """The slice in one or two plain sentences."""
    mix = ", ".join(f"{c['class']} {c['share']:.0%}" for c in row["class_mix"][:3])
    folds = row["fold_errors"].values()
    text = (f"{row['size']} similar images ({row['space']} space) of which {row['error']:.0%} are wrong, against "
            f"{row['run_error']:.0%} over the run (per fold {min(folds):.0%}–{max(folds):.0%}). Labelled {mix}")
    if row["confused_with"]:
        top = row["confused_with"][0]
        text += f"; most mistakes are {top['true']} predicted as {top['pred']} ({top['count']} of {row['errors']})"
    text += "."
    if row["properties"]:
        words = [f"{'higher' if p['auc'] > 0.5 else 'lower'} {p['property'].replace('_', ' ')} "
                 f"(median {p['slice_median']:.3g} vs {p['rest_median']:.3g})" for p in row["properties"][:2]]
        text += " Compared with the rest: " + " and ".join(words) + "."
    return text


def failing_slices(spaces: list[Space], samples: pd.DataFrame, oof: pd.DataFrame, classes: list[str],
                   properties: pd.DataFrame | None, th: Thresholds) -> tuple[pd.DataFrame, dict]:
    """(membership table: slice, space, sample_id; diagnostics.json's `slices` block), best slice first.

    oof: the out-of-fold predictions (sample_id, label, pred, confidence); samples: the run's samples.
    """
    cv = oof[["sample_id", "label", "pred", "confidence"]].merge(samples[["sample_id", "fold"]], on="sample_id")
    cv["wrong"] = cv["label"] != cv["pred"]
    cv = cv.sort_values("sample_id", ignore_index=True)
    found = [c for space in spaces for c in candidate_slices(space, cv, th)]
    found.sort(key=lambda c: -c["excess_errors"])
    kept: list[dict] = []
    for candidate in found:
        if all(_jaccard(candidate["members"], k["members"]) < th.slice_overlap for k in kept):
            kept.append(candidate)
    kept = kept[: th.slice_max]
    names = np.asarray(classes, dtype=object)
    rows, membership = [], []
    for number, slice_ in enumerate(kept, start=1):
        name = f"slice{number}"
        part = cv[cv["sample_id"].isin(slice_["members"])]
        counts = pd.Series(names[part["label"].to_numpy()]).value_counts()
        mistakes = part[part["wrong"]]
        pairs = (pd.DataFrame({"true": names[mistakes["label"].to_numpy()], "pred": names[mistakes["pred"].to_numpy()]})
                 .value_counts().reset_index(name="count"))
        examples = pd.concat([mistakes.sort_values("confidence", ascending=False), part[~part["wrong"]]])
        row = {"slice": name, **{k: v for k, v in slice_.items() if k not in ("members", "all_members")},
               "class_mix": [{"class": c, "count": int(n), "share": float(n / len(part))} for c, n in counts.items()],
               "confused_with": pairs.head(3).to_dict("records"),
               "properties": _distinguishing(properties, slice_["members"], th),
               "examples": examples["sample_id"].head(th.slice_examples).astype(int).tolist()}
        row["description"] = _describe(row)
        rows.append(row)
        membership.append(pd.DataFrame({"slice": name, "space": slice_["space"],
                                        "sample_id": np.asarray(slice_["all_members"], dtype=np.int64)}))
    table = (pd.concat(membership, ignore_index=True) if membership
             else pd.DataFrame({"slice": pd.Series(dtype=str), "space": pd.Series(dtype=str),
                                "sample_id": pd.Series(dtype=np.int64)}))
    return table, {"file": "slices.parquet", "run_error": float(cv["wrong"].mean()), "candidates": len(found),
                   "found": rows}
