"""False alarms and misses of two diagnostics on synthetic data with a known answer (issue #24).

    .venv/bin/python bench/bench_false_alarms.py [--seeds 10]

1. Near-duplicates: 240 distinct look-alike items (three classes, nearest-neighbour cosine 0.7-0.9) with one
   planted copy (the same image rescaled and noised). Prints, per seed range, the pairs a fixed cosine of 0.70
   would flag (all false but the copy) and those the calibrated threshold flags, and how often the copy is found.
2. Failing slices: 400-image runs (5 folds) with a moderate planted kind (30 images wrong at 45% against 12%),
   and the same runs without it. Prints how often the planted kind is found and how many slices clean runs report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.analysis.diagnostics.duplicates import duplicates
from core.analysis.diagnostics.neighbours import prepare
from core.analysis.diagnostics.slices import failing_slices
from core.analysis.diagnostics.thresholds import Thresholds
from core.testing.alarms import look_alikes, plant_copy, small_run


def near_duplicates(seeds: int) -> None:
    n, th = 240, Thresholds(pca_dims=20)
    samples = pd.DataFrame({"sample_id": np.arange(n), "path": [f"c/{i}.png" for i in range(n)], "label": "c",
                            "label_index": 0, "group": None, "split": "cv",
                            "fold": pd.array([i % 3 for i in range(n)], dtype="Int64"),
                            "sha256": [f"h{i}" for i in range(n)]})
    fixed, calibrated, copies, cuts = [], [], 0, []
    for seed in range(seeds):
        x = plant_copy(look_alikes(n, shared=1.8, seed=seed), original=100, copy=8, seed=seed + 1)
        x = x.astype(np.float16)
        pairs, summary = duplicates(samples, prepare("backbone", x, th), x, th)
        fixed.append(next(s["pairs"] for s in summary["sweep"] if s["similarity"] == 0.7) - 1)
        calibrated.append(len(pairs) - int(((pairs["sample_id_a"] == 8) & (pairs["sample_id_b"] == 100)).any()))
        copies += int(((pairs["sample_id_a"] == 8) & (pairs["sample_id_b"] == 100)).any())
        cuts.append(summary["threshold"]["similarity"])
    print(f"near-duplicates, {seeds} seeds of {n} look-alikes + 1 planted copy:")
    print(f"  false pairs at fixed cosine 0.70: mean {np.mean(fixed):.1f} (min {min(fixed)}, max {max(fixed)})")
    print(f"  false pairs at the calibrated threshold ({min(cuts):.3f}-{max(cuts):.3f}): "
          f"mean {np.mean(calibrated):.1f} (max {max(calibrated)})")
    print(f"  planted copy found: {copies} of {seeds}")


def slices(seeds: int) -> None:
    th, found, false = Thresholds(), 0, []
    for seed in range(seeds):
        for planted in (30, 0):
            x, samples, oof = small_run(seed, planted)
            members, block = failing_slices([prepare("backbone", x, th)], samples, oof, ["a", "b", "c"], None, th)
            if planted:
                found += int(bool(set(members["sample_id"]) & set(range(370, 400))))
            else:
                false.append(len(block["found"]))
    print(f"failing slices, {seeds} seeds of 400-image runs:")
    print(f"  moderate planted kind (30 images, 45% wrong vs 12%) found: {found} of {seeds}")
    print(f"  slices reported on runs without one: {sum(false)} in {seeds} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    near_duplicates(args.seeds)
    slices(args.seeds)


if __name__ == "__main__":
    main()
