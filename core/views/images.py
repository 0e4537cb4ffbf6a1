"""Data shaping for the pages that show image properties, failing slices and class activation maps (no Streamlit).

Like core.views.tables: plain pandas on a run's already-loaded tables, so the pages stay thin and this is testable.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.overlay_cache import MapRequest

CAM_CLASSES = ("predicted", "true", "off")


# ---------------------------------------------------------------- class activation maps

def map_requests(rows: pd.DataFrame, which: str) -> dict:
    """{row index: the map request of the predicted or true class} for prediction rows (model, label, pred)."""
    if which not in ("predicted", "true") or rows.empty or "model" not in rows:
        return {}
    column = "pred" if which == "predicted" else "label"
    return {index: MapRequest(int(row["sample_id"]), str(row["model"]), int(row[column]))
            for index, row in rows.iterrows()}


# ---------------------------------------------------------------- image properties

def property_outcomes(properties: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Every image's properties with its outcome: `correct`/`wrong` out of fold (test images: by the ensemble),
    `unscored` when no prediction covers it."""
    outcome = rows.drop_duplicates("sample_id").set_index("sample_id")["correct"].map({True: "correct",
                                                                                      False: "wrong"})
    frame = properties.copy()
    frame["outcome"] = frame["sample_id"].map(outcome).fillna("unscored")
    return frame


def shortcut_table(block: dict | None) -> pd.DataFrame:
    """One row per property: how well it alone predicts the label (all classes, and its best class against the
    rest) and the out-of-fold error; balanced accuracies under the run's folds."""
    columns = ["property", "label_balanced_accuracy", "chance", "best_class", "class_balanced_accuracy", "rule",
               "error_balanced_accuracy"]
    if not block:
        return pd.DataFrame(columns=columns)
    errors = {row["property"]: row["balanced_accuracy"] for row in block.get("error", [])}
    rows = []
    for row in block.get("label", []):
        rule = (f"{row['property']} {row['side']} {row['threshold']:.3g}: {row['class_share']:.0%} of "
                f"{row['class']}, {row['others_share']:.0%} of the others") if "class" in row else ""
        rows.append({"property": row["property"], "label_balanced_accuracy": row["balanced_accuracy"],
                     "chance": row["chance"], "best_class": row.get("class"),
                     "class_balanced_accuracy": row.get("class_balanced_accuracy"), "rule": rule,
                     "error_balanced_accuracy": errors.get(row["property"], np.nan)})
    return pd.DataFrame(rows, columns=columns).sort_values("class_balanced_accuracy", ascending=False,
                                                           ignore_index=True)


def flagged(properties: pd.DataFrame) -> pd.DataFrame:
    """Images with at least one flag, with the flags named, most flags first."""
    from core.analysis.diagnostics.image_properties import FLAGS  # here: the diagnostics import scikit-learn
    flags = properties[list(FLAGS)]
    picked = properties[flags.any(axis=1)].copy()
    picked["flags"] = [", ".join(name.replace("_", " ") for name in FLAGS if row[name])
                       for _, row in picked[list(FLAGS)].iterrows()]
    picked["n_flags"] = flags[flags.any(axis=1)].sum(axis=1)
    return picked.sort_values(["n_flags", "sample_id"], ascending=[False, True], ignore_index=True)


def measured_properties(properties: pd.DataFrame) -> list[str]:
    """The properties with at least two distinct values (a constant one has nothing to show)."""
    from core.analysis.diagnostics.image_properties import PROPERTIES  # here: the diagnostics import scikit-learn
    return [name for name in PROPERTIES if properties[name].nunique() > 1]


# ---------------------------------------------------------------- failing slices

def slice_table(block: dict | None) -> pd.DataFrame:
    """The slices ranked as found (most excess errors first): size, error, the run's error, fold range, top class."""
    columns = ["slice", "space", "size", "error", "run_error", "fold_min", "fold_max", "top_class", "description"]
    rows = []
    for row in (block or {}).get("found", []):
        folds = list(row["fold_errors"].values())
        rows.append({"slice": row["slice"], "space": row["space"], "size": row["size"], "error": row["error"],
                     "run_error": row["run_error"], "fold_min": min(folds), "fold_max": max(folds),
                     "top_class": row["class_mix"][0]["class"], "description": row["description"]})
    return pd.DataFrame(rows, columns=columns)


_WHY = {"too_small": "too small to judge", "not_worse": "not worse enough than the run",
        "one_fold": "worse in one fold only", "not_significant": "not significantly worse (permutation test)"}


def no_slice_message(block: dict) -> str:
    """Why no slice was found: what was examined in each space and the first test each cluster failed."""
    examined = block.get("examined")
    head = f"No failing slice at the run's out-of-fold error of {block['run_error']:.0%}."
    if examined is None:   # diagnostics.json before the count was recorded
        return head + " Run `diagnose` again to see what was examined."
    parts = []
    for space, tally in examined.items():
        if not tally["clusters"]:
            parts.append(f"{space}: no cluster formed")
            continue
        why = ", ".join(f"{tally[k]} {text}" for k, text in _WHY.items()
                        if tally.get(k))
        parts.append(f"{space}: {tally['clusters']} clusters examined ({why})")
    return head + " " + "; ".join(parts) + "."


def slice_points(coords: pd.DataFrame, members: pd.DataFrame, slice_name: str) -> pd.DataFrame:
    """Map points of the slice's space with `in_slice`, the slice's points last so they are drawn on top."""
    inside = set(members.loc[members["slice"] == slice_name, "sample_id"].astype(int))
    points = coords[["sample_id", "x", "y"]].copy()
    points["in_slice"] = points["sample_id"].isin(inside)
    return points.sort_values("in_slice", kind="stable", ignore_index=True)


def slice_rows(rows: pd.DataFrame, members: pd.DataFrame, slice_name: str, examples: list[int]) -> pd.DataFrame:
    """Prediction rows of a slice's members: its example images first (mistakes, most confident first), then
    the rest of the members, mistakes first."""
    inside = members.loc[members["slice"] == slice_name, "sample_id"].astype(int)
    picked = rows[rows["sample_id"].isin(set(inside))].drop_duplicates("sample_id")
    rank = {sample_id: position for position, sample_id in enumerate(examples)}
    order = picked["sample_id"].map(rank).fillna(len(rank))
    return (picked.assign(_example=order).sort_values(["_example", "correct", "confidence"],
                                                      ascending=[True, True, False])
            .drop(columns="_example").reset_index(drop=True))


def property_label(name: str) -> str:
    """What an image property measures, in words (`image_properties.PROPERTIES`)."""
    from core.analysis.diagnostics.image_properties import PROPERTIES  # here: the diagnostics import scikit-learn
    return PROPERTIES[name]
