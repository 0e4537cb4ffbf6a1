"""What moves as one unit through the splits: a group, files with identical bytes, and (`--dedup-groups near`)
images whose pretrained features are near-identical, joined transitively."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.config import NEAR_DUPLICATE_SIMILARITY
from core.data.splits import join_units


@dataclass
class SplitUnits:
    unit: np.ndarray   # unit id per sample
    summary: dict      # run.json dataset.split_units


def split_units(samples: pd.DataFrame, use_groups: bool, dedup: str, embedding: np.ndarray | None = None,
                similarity: float = NEAR_DUPLICATE_SIMILARITY) -> SplitUnits:
    """Units from the group column (when used) and, by `dedup` (exact | near | off), identical files and
    near-duplicate pairs of `embedding` (the pretrained backbone's, samples order; needed for near only)."""
    n = len(samples)
    groups = samples["group"].to_numpy(dtype=object) if use_groups else None
    by_group = join_units(n, [groups])
    pairs, cut = None, None
    if dedup == "near":
        from core.analysis.diagnostics.duplicates import near_duplicate_pairs  # lazy: only near needs the kNN machinery
        from core.analysis.diagnostics.thresholds import Thresholds
        pairs, cut = near_duplicate_pairs(embedding, Thresholds(near_duplicate_similarity=similarity))
    unit = join_units(n, [groups, samples["sha256"].to_numpy() if dedup != "off" else None], pairs)
    n_units = int(unit.max()) + 1 if n else 0
    sizes = np.bincount(unit, minlength=n_units)
    # a unit is merged when it joins samples that the group column alone kept apart
    parts = pd.Series(by_group).groupby(unit).nunique().to_numpy()
    return SplitUnits(unit, {
        "dedup_groups": dedup,
        "near_duplicate_similarity": similarity if dedup == "near" else None,   # the floor
        "near_threshold": cut,   # calibrated on the data's nearest-neighbour cosines, never below the floor
        "near_pairs": None if pairs is None else int(len(pairs)),
        "units": n_units,
        "merged_units": int((parts > 1).sum()),
        "samples_in_merged_units": int((parts[unit] > 1).sum()),
        "samples_sharing_a_unit": int((sizes[unit] > 1).sum()),
    })


def describe(summary: dict) -> str:
    """The log line: how many units the deduplication merged."""
    dedup = summary["dedup_groups"]
    if dedup == "off":
        return f"splits: {summary['units']} units (--dedup-groups off)"
    how = ("identical files" if dedup == "exact" else
           f"identical files and near-duplicates (cosine ≥ {summary['near_threshold']:.2f}, calibrated)")
    if not summary["merged_units"]:
        return f"splits: {summary['units']} units; no {how} to join"
    return (f"splits: {summary['units']} units; {summary['merged_units']} of them join "
            f"{summary['samples_in_merged_units']} images as {how}; "
            f"{summary['samples_sharing_a_unit']} images share a unit with another")
