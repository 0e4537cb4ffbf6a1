"""Training dynamics shaped for the Overfitting page's Dynamics tab and an image's detail view: the cartography
map (Swayamdipta et al., 2020) of one class or all, and one image's curves over the epochs of each fold."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.analysis.diagnostics.dynamics import REGIONS, image_curves, load_dynamics

CORRECTNESS_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)   # the map's colours: share of epochs predicted right


def correctness_band(correctness: pd.Series) -> pd.Series:
    """'0-25%' … '75-100%' of epochs right: the colour legend of the map (few bands read better than a scale)."""
    labels = [f"{round(a * 100)}–{round(b * 100)}%" for a, b in zip(CORRECTNESS_BINS, CORRECTNESS_BINS[1:])]
    return pd.cut(correctness, CORRECTNESS_BINS, labels=labels, include_lowest=True).astype(str)


def cartography_points(dynamics: pd.DataFrame, samples: pd.DataFrame, label_issues: pd.DataFrame | None,
                       only: str = "all") -> pd.DataFrame:
    """One point per trained image: x = variability, y = confidence (the map's axes), its correctness band,
    region, label, path, forgetting events and whether it is a listed / agreed label issue. `only`: a class name,
    or "all"."""
    points = dynamics.merge(samples[["sample_id", "path", "label"]], on="sample_id")
    points = points.assign(x=points["variability"], y=points["confidence"],
                           band=correctness_band(points["correctness"]))
    listed = set() if label_issues is None else set(label_issues["sample_id"].astype(int))
    agreed = (set() if label_issues is None or "agreed" not in label_issues
              else set(label_issues.loc[label_issues["agreed"], "sample_id"].astype(int)))
    points["label_issue"] = points["sample_id"].isin(listed)
    points["agreed"] = points["sample_id"].isin(agreed)
    if only != "all":
        points = points[points["label"] == only]
    return points.reset_index(drop=True)


def region_counts(points: pd.DataFrame) -> dict[str, int]:
    return {name: int((points["region"] == name).sum()) for name in REGIONS}


def selected_images(points: pd.DataFrame, sample_ids: list[int]) -> pd.DataFrame:
    """The selected points as gallery rows: hard to learn and agreed label issues first, then least confident."""
    chosen = points[points["sample_id"].isin(sample_ids)]
    return chosen.sort_values(["agreed", "confidence"], ascending=[False, True], ignore_index=True)


def dynamics_curves(run_dir: Path, folds: list[int], sample_id: int) -> pd.DataFrame:
    """One image's probability of its given label and margin at every epoch of every fold that trained on it
    (empty for a test image or a run that kept no dynamics)."""
    return image_curves(load_dynamics(Path(run_dir), folds), sample_id)
