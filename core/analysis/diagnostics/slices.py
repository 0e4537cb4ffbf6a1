"""Failing slices: groups of similar images where the model fails far more than elsewhere, found by clustering
each embedding space and keeping the clusters whose out-of-fold error is well above the run's in most folds."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import hypergeom
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


REASONS = ("too_small", "not_worse", "one_fold", "not_significant", "passed")


def error_p_value(errors: int, size: int, total_errors: int, total: int) -> float:
    """One-sided permutation test of a cluster's errors against the rest: the chance that `size` images drawn
    at random from the run hold at least `errors` mistakes. Computed exactly (hypergeometric), so it is valid
    at any size, where a binomial test against the run's rate (which counts the cluster itself) is not."""
    return float(hypergeom.sf(errors - 1, total, total_errors, size))


def _without_worst_fold(per_fold: dict[str, float], fold_sizes: dict[str, int]) -> float:
    """The cluster's error over its folds but the one where it errs most (a per-fold share test fails at 5
    members a fold by chance; this asks only whether the excess survives losing its likeliest source)."""
    worst = max(per_fold, key=per_fold.get)
    rest = [k for k in per_fold if k != worst]
    return sum(per_fold[k] * fold_sizes[k] for k in rest) / sum(fold_sizes[k] for k in rest)


def _verdict(size: int, errors: int, per_fold: dict[str, float], fold_sizes: dict[str, int], run_error: float,
             total_errors: int, total: int, th: Thresholds) -> tuple[str, float | None]:
    """Why a cluster is no slice (the first test it fails, cheapest first), or "passed"; with its p-value."""
    if size < th.slice_min_size:
        return "too_small", None
    if errors / size < max(th.slice_error_lift * run_error, run_error + th.slice_error_margin):
        return "not_worse", None
    if len(per_fold) < 2 or _without_worst_fold(per_fold, fold_sizes) < th.slice_error_lift * run_error:
        return "one_fold", None   # one fold's accident, not a kind of image
    p_value = error_p_value(errors, size, total_errors, total)
    return ("not_significant" if p_value > th.slice_p_value else "passed"), p_value


def candidate_slices(space: Space, cv: pd.DataFrame, th: Thresholds) -> tuple[list[dict], dict[str, int]]:
    """Clusters of one space that pass every test, and how many clusters were examined and why the others
    failed (`REASONS`). cv: sample_id, fold, wrong for cv samples (samples order among them); the cluster of a
    test sample is kept too, for the gallery, but only cv samples are scored."""
    assignment = clusters(space.unit, th)
    run_error = float(cv["wrong"].mean())
    ids = cv["sample_id"].to_numpy()
    wrong = cv["wrong"].to_numpy(dtype=bool)
    folds = cv["fold"].to_numpy(dtype=int)
    found, tally = [], dict.fromkeys(REASONS, 0)
    for cluster in np.unique(assignment):
        members = np.flatnonzero(assignment[ids] == cluster)
        size, errors = len(members), int(wrong[members].sum())
        per_fold = _fold_errors(wrong[members], folds[members])
        fold_sizes = {str(int(k)): int(n) for k, n in zip(*np.unique(folds[members], return_counts=True))}
        verdict, p_value = _verdict(size, errors, per_fold, fold_sizes, run_error, int(wrong.sum()), len(wrong), th)
        tally[verdict] += 1
        if verdict != "passed":
            continue
        found.append({"space": space.name, "members": ids[members].tolist(),
                      "all_members": np.flatnonzero(assignment == cluster).tolist(), "size": size, "errors": errors,
                      "error": errors / size, "run_error": run_error, "fold_errors": per_fold,
                      "fold_std": float(np.std(list(per_fold.values()))), "p_value": p_value,
                      "excess_errors": errors - run_error * size})
    return found, {"clusters": len(np.unique(assignment)), **tally}


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
    found, examined = [], {}
    for space in spaces:
        passed, examined[space.name] = candidate_slices(space, cv, th)
        found += passed
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
                   "examined": examined, "found": rows}
