"""What the training dynamics say about each image: cartography, area under the margin, forgetting events.

Read from every fold's folds/fold{k}/dynamics.npz (core/training/dynamics.py): per epoch, each training image's
probability of its given label and its margin. An image trains in every fold but its own, so each measure is
taken per fold over that fold's epochs, then averaged over the folds that trained on it (forgetting events
are added up).

- Dataset cartography (Swayamdipta et al., 2020): confidence = mean probability of the given label,
  variability = its standard deviation, correctness = share of epochs the model predicted the given label.
  Regions: ambiguous (variability >= cartography_variability), else easy (confidence >= cartography_confidence)
  or hard to learn.
- AUM, area under the margin (Pleiss et al., 2020): the mean margin. A mislabelled image is pushed towards its
  true class by its neighbours, so its margin stays low or negative. The threshold comes from threshold samples
  (head mode: a second head trained with 1/(C+1) of the images moved to a fake class, their labels wrong by
  construction): the `aum_percentile` percentile of their AUM, pooled over folds, but never above 0; an image at
  or below it is flagged. Finetune runs have no threshold samples (a second fine-tuning per fold would double
  the run): the threshold there is 0, the point where the model on average preferred another class.
- Forgetting events (Toneva et al., 2019): epochs where a correctly predicted image becomes wrong; an image
  never predicted right in any epoch is `never_learned`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis.diagnostics.thresholds import Thresholds
from core.store import run_store

COLUMNS = ["sample_id", "folds", "confidence", "variability", "correctness", "region", "aum", "aum_flag",
           "forgetting", "never_learned"]
REGIONS = ("easy", "ambiguous", "hard")


@dataclass
class FoldDynamics:
    fold: int
    sample_id: np.ndarray      # int64 [n_train]
    prob: np.ndarray           # float32 [epochs, n_train], NaN where a pass did not show the image
    margin: np.ndarray         # float32 [epochs, n_train]
    threshold_aum: np.ndarray  # float32 [m], empty without threshold samples


def load_dynamics(run_dir: Path, folds: list[int]) -> list[FoldDynamics]:
    """The dynamics of every listed fold that has them (runs trained before they were kept have none)."""
    out = []
    for fold in folds:
        path = run_store.fold_dir(run_dir, fold) / run_store.DYNAMICS_FILE
        if path.exists():
            with np.load(path) as saved:
                out.append(FoldDynamics(fold, saved["sample_id"].astype(np.int64),
                                        saved["prob"].astype(np.float32), saved["margin"].astype(np.float32),
                                        saved["threshold_aum"].astype(np.float32)))
    return out


def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """Per column of a bool-or-NaN [epochs, n] array: right-then-wrong transitions between epochs that showed it."""
    events = np.zeros(correct.shape[1], dtype=np.int64)
    for j in range(correct.shape[1]):
        seen = correct[~np.isnan(correct[:, j]), j].astype(bool)
        events[j] = int(np.sum(seen[:-1] & ~seen[1:]))
    return events


def fold_measures(d: FoldDynamics) -> pd.DataFrame:
    """One row per training image of one fold: its measures over that fold's epochs."""
    correct = np.where(np.isnan(d.margin), np.nan, (d.margin > 0).astype(np.float32))
    with warnings.catch_warnings():  # an image no pass showed (a sampler's draws) is NaN, said once, here
        warnings.simplefilter("ignore", RuntimeWarning)
        return pd.DataFrame({
            "sample_id": d.sample_id, "confidence": np.nanmean(d.prob, axis=0),
            "variability": np.nanstd(d.prob, axis=0), "correctness": np.nanmean(correct, axis=0),
            "aum": np.nanmean(d.margin, axis=0), "forgetting": forgetting_events(correct),
            "learned": np.nansum(correct, axis=0) > 0})


def aum_threshold(folds: list[FoldDynamics], th: Thresholds) -> dict:
    """The AUM at or below which an image is flagged, and how it was set (see the module docstring)."""
    samples = np.concatenate([d.threshold_aum for d in folds]) if folds else np.empty(0)
    samples = samples[np.isfinite(samples)]
    if len(samples):
        # never above 0: a head on 2048 features with a few hundred images learns even the threshold samples by
        # heart (their 99th percentile sat at +2.3 on the demo set, flagging half of it), and an image predicted
        # with its given label on average is no evidence of a wrong one
        percentile = float(np.percentile(samples, th.aum_percentile))
        return {"value": min(percentile, 0.0), "method": "threshold samples", "threshold_samples": len(samples),
                "percentile": th.aum_percentile, "percentile_value": percentile}
    return {"value": 0.0, "method": "zero (no threshold samples: finetune)", "threshold_samples": 0,
            "percentile": None, "percentile_value": None}


def region(confidence: np.ndarray, variability: np.ndarray, th: Thresholds) -> np.ndarray:
    return np.where(variability >= th.cartography_variability, "ambiguous",
                    np.where(confidence >= th.cartography_confidence, "easy", "hard"))


def image_dynamics(folds: list[FoldDynamics], th: Thresholds) -> tuple[pd.DataFrame, dict]:
    """dynamics.parquet (one row per image some fold trained on, in sample_id order) and the AUM threshold."""
    threshold = aum_threshold(folds, th)
    if not folds:
        return pd.DataFrame(columns=COLUMNS), threshold
    rows = pd.concat([fold_measures(d) for d in folds], ignore_index=True)
    table = rows.groupby("sample_id").agg(
        folds=("aum", "size"), confidence=("confidence", "mean"), variability=("variability", "mean"),
        correctness=("correctness", "mean"), aum=("aum", "mean"), forgetting=("forgetting", "sum"),
        learned=("learned", "any")).reset_index()
    table["region"] = region(table["confidence"].to_numpy(), table["variability"].to_numpy(), th)
    table["aum_flag"] = table["aum"] <= threshold["value"]
    table["never_learned"] = ~table.pop("learned")
    return table[COLUMNS], threshold


def summary(table: pd.DataFrame, threshold: dict, n_folds_with: int) -> dict:
    """diagnostics.json's "dynamics"."""
    return {"file": "dynamics.parquet", "folds": n_folds_with, "images": len(table),
            "regions": {name: int((table["region"] == name).sum()) for name in REGIONS},
            "aum_threshold": threshold, "aum_flagged": int(table["aum_flag"].sum()),
            "forgotten": int((table["forgetting"] > 0).sum()), "never_learned": int(table["never_learned"].sum())}


def image_curves(folds: list[FoldDynamics], sample_id: int) -> pd.DataFrame:
    """One image's probability and margin at every epoch of every fold that trained on it (for its detail view)."""
    parts = []
    for d in folds:
        where = np.flatnonzero(d.sample_id == sample_id)
        if len(where):
            parts.append(pd.DataFrame({"fold": d.fold, "epoch": np.arange(1, len(d.prob) + 1),
                                       "prob": d.prob[:, where[0]], "margin": d.margin[:, where[0]]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["fold", "epoch", "prob", "margin"])
