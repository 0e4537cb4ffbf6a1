"""How well the splits hold still (issue #25): the same images listed in another order, and a subset of them.

    .venv/bin/python bench/bench_split_stability.py [--images 510] [--drop 7] [--folds 5] [--seeds 5]

Three look-alike classes of `--images` distinct images (content keys stand in for the files' sha256). For each
seed it splits the images as listed, the same images with the rows shuffled, and the images less `--drop`
random ones (what `clean` does), and prints: the share of images whose split and fold are identical after the
shuffle (1.0 = the splits depend on content only), and the share of the shared images that keep their split and
fold in the subset (the content-based draw alone; a cleaned rerun reuses its source's splits and keeps all).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.data.splits import assign_splits


def split_table(labels: pd.Series, content: pd.Series, folds: int, seed: int) -> pd.Series:
    split, fold = assign_splits(labels, None, folds, 0.2, seed, content=content)
    return pd.Series([f"{s}{f}" for s, f in zip(split, fold)], index=content.to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=510)
    parser.add_argument("--drop", type=int, default=7)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        labels = pd.Series(rng.choice(["a", "b", "c"], size=args.images, p=[0.5, 0.3, 0.2]))
        content = pd.Series([f"{rng.integers(2 ** 63):016x}" for _ in range(args.images)])
        listed = split_table(labels, content, args.folds, seed)
        order = rng.permutation(args.images)
        shuffled = split_table(labels[order].reset_index(drop=True), content[order].reset_index(drop=True),
                               args.folds, seed)
        kept = np.sort(rng.choice(args.images, args.images - args.drop, replace=False))
        subset = split_table(labels[kept].reset_index(drop=True), content[kept].reset_index(drop=True),
                             args.folds, seed)
        rows.append({"seed": seed, "same after shuffle": (shuffled.loc[listed.index] == listed).mean(),
                     "kept in subset": (subset == listed.loc[subset.index]).mean()})
    table = pd.DataFrame(rows)
    print(f"{args.images} images, 3 classes (50/30/20%), {args.folds} folds + 20% test; subset drops {args.drop}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"mean: same after shuffle {table['same after shuffle'].mean():.3f}, "
          f"kept in subset {table['kept in subset'].mean():.3f}")


if __name__ == "__main__":
    main()
