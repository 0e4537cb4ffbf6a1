"""The 95% intervals of held-out metrics: what they say on a small test split, whether they hold their promise,
and what they cost when metrics.json is assembled.

    .venv/bin/python bench/bench_intervals.py [--sizes 1000 10000] [--simulations 200]

1. The issue's case: 12 test images of a class, 2 right. Prints the exact interval, and how far the recall of 12
   images moves between splits when the true recall is 40% (the spread of 10,000 simulated splits).
2. Coverage: simulated test splits of 60 images (3 classes, 12 of the smallest) from a model whose true per-class
   recall is known; the share of splits whose interval holds the true value (nominal 95%).
3. Cost: seconds for `metric_intervals` (both bootstraps and every exact interval) at each size.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.evaluate import metric_intervals, proportion_interval
from core.numbers import interval, percent

CLASSES = ["a", "b", "c"]
RECALL = np.array([0.85, 0.75, 0.40])      # true recall per class of the simulated model
COUNTS = np.array([24, 24, 12])            # test images per class: 12 of the minority class


def simulated_split(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions: each image right with its class's true recall, else another class at random."""
    truth = np.repeat(np.arange(len(counts)), counts)
    right = rng.random(len(truth)) < RECALL[truth]
    other = (truth + rng.integers(1, len(counts), len(truth))) % len(counts)
    return truth, np.where(right, truth, other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--simulations", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    print(f"12 test images, 2 right: recall {percent(2 / 12)}, 95% interval {interval(proportion_interval(2, 12))}")
    observed = rng.binomial(12, 0.4, 10_000) / 12
    low, high = np.quantile(observed, [0.05, 0.95])
    print(f"true recall 40%, 12 test images: 90% of splits observe {percent(low)} to {percent(high)}")

    hits = {"balanced_accuracy": 0, "minority recall": 0}
    truth_ba = RECALL.mean()
    for _ in range(args.simulations):
        truth, predicted = simulated_split(rng, COUNTS)
        found = metric_intervals(truth, predicted, CLASSES)
        hits["balanced_accuracy"] += found["balanced_accuracy"][0] <= truth_ba <= found["balanced_accuracy"][1]
        hits["minority recall"] += found["recall"]["c"][0] <= RECALL[2] <= found["recall"]["c"][1]
    for name, count in hits.items():
        print(f"coverage of the {name} interval over {args.simulations} simulated 60-image test splits: "
              f"{percent(count / args.simulations)} (nominal 95.0%)")

    for size in args.sizes:
        truth, predicted = simulated_split(rng, np.full(3, size // 3))
        started = time.perf_counter()
        metric_intervals(truth, predicted, CLASSES)
        print(f"metric_intervals on {3 * (size // 3)} images: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
