"""Which images to label next: does labelling the pool's picks beat labelling random images? On the demo dataset.

    .venv/bin/python bench/bench_pool.py [--seeds 10] [--budgets 3,6,12,24,48] [--start-per-class 1]
                                         [--image-size 224]

Setup (assets/product_icons: 413 emoji icons of 3 classes; each emoji drawn by several vendors is one group):
per seed, 30% of the groups are held out as the test set (whole groups: a test emoji never has a vendor variant
among the training images); of the rest, `--start-per-class` images per class at random are the labelled start,
and everything else is the unlabelled pool, whose labels are kept aside. Features: ImageNet ResNet-50's pooled
features at the default run's input recipe, through the run's content-addressed feature cache (computed once).

Per seed and budget N, each arm chooses N pool images to label; they join the labelled start with their true
labels, a linear head is trained on the labelled features (logistic regression: what a head-mode run's fold
heads are, without the training loop), and scored by balanced accuracy on the test set:

- random: N eligible pool images uniformly at random;
- typiclust, badge, auto: `core.analysis.active_learning.pick` (what `train_cli.py pool RUN_ID --budget N` runs).
  BADGE's ensemble probabilities come from the start set's stand-in fold ensemble: logistic regressions on the
  stratified folds of the start set (one on all of it when a class has a single image).

Eligible pool images exclude near-duplicates of labelled images (`core.delivery.pool.near_labelled`, the
diagnostics' rule), as the command does. Printed: per budget and arm, the mean balanced accuracy over seeds with its
95% t-interval, and each strategy's mean paired gain over random with its 95% interval.

Room for more arms: ARMS maps a name to a function (context, budget, seed) -> (pool rows to add with their true
labels, extra pseudo-labelled rows); a self-training arm would return confident pool images with the ensemble's
labels as the second part, and is scored the same way.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupShuffleSplit, StratifiedKFold

from core.config import DEMO_DATA, PickSettings, RunConfig


@dataclass
class Context:
    """One seed's split: features, true labels, and which rows are the labelled start, the pool and the test."""
    features: np.ndarray
    labels: np.ndarray
    n_classes: int
    start: np.ndarray
    pool: np.ndarray
    test: np.ndarray
    eligible: np.ndarray        # over `pool`: not a near-duplicate of a start image
    probabilities: np.ndarray   # over `pool`: the start set's stand-in fold ensemble


def demo_features(image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features [n, 2048], label index, group) of every demo image, through the feature cache."""
    from core.training.backbone_space import pretrained_features
    from core.training.preprocessing import run_preprocessing
    from core.training.weights import build_classifier
    meta = pd.read_csv(DEMO_DATA)
    cfg = RunConfig(image_size=image_size)
    classifier, arch, weights = build_classifier(cfg.model, 1, "imagenet", log=lambda *_: None)
    paths = [DEMO_DATA.parent / p for p in meta["path"]]
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    features = pretrained_features(classifier.backbone.eval(), arch.to_dict(), weights.sha256,
                                   run_preprocessing(cfg), cfg, paths, shas)
    labels = pd.factorize(meta["label"], sort=True)[0]
    return features.astype(np.float16).astype(np.float32), labels, meta["group"].to_numpy()


def head(features: np.ndarray, labels: np.ndarray, seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(features, labels)


def stand_in_ensemble(features: np.ndarray, labels: np.ndarray, pool: np.ndarray, n_classes: int,
                      seed: int) -> np.ndarray:
    """Mean probabilities over pool rows of heads trained on the folds of the labelled start."""
    folds = min(3, int(np.bincount(labels, minlength=n_classes).min()))
    parts = ([train for train, _ in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels)]
             if folds >= 2 else [np.arange(len(labels))])
    total = np.zeros((len(pool), n_classes))
    for train in parts:
        model = head(features[train], labels[train], seed)
        total[:, model.classes_] += model.predict_proba(pool)
    return (total / len(parts)).astype(np.float32)


def split(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, per_class: int, seed: int) -> Context:
    from core.delivery.pool import near_labelled
    rng = np.random.default_rng(seed)
    n_classes = int(labels.max()) + 1
    rest, test = next(GroupShuffleSplit(1, test_size=0.3, random_state=seed).split(features, labels, groups))
    start = np.concatenate([rng.choice(rest[labels[rest] == c], per_class, replace=False) for c in range(n_classes)])
    pool = np.setdiff1d(rest, start)
    partner, _, _ = near_labelled(features[start], features[pool])
    return Context(features, labels, n_classes, start, pool, test, partner < 0,
                   stand_in_ensemble(features[start], labels[start], features[pool], n_classes, seed))


def random_arm(ctx: Context, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.random.default_rng(seed + 1000).permutation(np.flatnonzero(ctx.eligible))[:budget]
    return ctx.pool[rows], np.zeros(0, dtype=int)


def strategy_arm(strategy: str):
    def arm(ctx: Context, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        from core.analysis.active_learning import pick
        _, picks = pick(ctx.features[ctx.start], ctx.features[ctx.pool], ctx.probabilities, budget, ctx.eligible,
                        strategy, ctx.n_classes, PickSettings(seed=seed))
        return ctx.pool[picks["row"].to_numpy()], np.zeros(0, dtype=int)
    return arm


ARMS = {"random": random_arm, "typiclust": strategy_arm("typiclust"), "badge": strategy_arm("badge"),
        "auto": strategy_arm("auto")}


def score(ctx: Context, rows: np.ndarray, pseudo: np.ndarray, seed: int) -> float:
    """Balanced accuracy on the test set of a head trained on the start + `rows` (true labels) + `pseudo`
    (pseudo-labelled rows: none yet)."""
    train = np.concatenate([ctx.start, rows, pseudo]).astype(int)
    model = head(ctx.features[train], ctx.labels[train], seed)
    return balanced_accuracy_score(ctx.labels[ctx.test], model.predict(ctx.features[ctx.test]))


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))
    return mean, mean - half, mean + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default="3,6,12,24,48")
    parser.add_argument("--start-per-class", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=RunConfig().image_size)
    args = parser.parse_args()
    from core.analysis.active_learning import choose_strategy
    budgets = [int(b) for b in args.budgets.split(",")]
    started = time.perf_counter()
    features, labels, groups = demo_features(args.image_size)
    print(f"features of {len(features)} demo images in {time.perf_counter() - started:.0f} s "
          f"(ResNet-50, ImageNet weights, {args.image_size} px; cached by content for the next run)")
    started = time.perf_counter()
    results = []
    for seed in range(args.seeds):
        ctx = split(features, labels, groups, args.start_per_class, seed)
        for budget in budgets:
            for name, arm in ARMS.items():
                rows, pseudo = arm(ctx, budget, seed)
                results.append({"seed": seed, "budget": budget, "arm": name, "picked": len(rows),
                                "balanced_accuracy": score(ctx, rows, pseudo, seed)})
    table = pd.DataFrame(results)
    n_classes = int(labels.max()) + 1
    print(f"{args.seeds} seeds, start {args.start_per_class} labelled image(s) per class ({n_classes} classes), "
          f"pool ~{len(ctx.pool)} images, test ~{len(ctx.test)} images (30% of the emoji groups); "
          f"{time.perf_counter() - started:.0f} s")
    print("\nbalanced accuracy on the test set, mean over seeds [95% interval]; gain over random in points, paired "
          "by seed [95% interval]")
    for budget in budgets:
        at = table[table["budget"] == budget]
        base = at[at["arm"] == "random"].set_index("seed")["balanced_accuracy"]
        auto_is = choose_strategy("auto", len(ctx.start), budget, n_classes)
        print(f"  budget {budget} (auto = {auto_is}):")
        for name in ARMS:
            values = at[at["arm"] == name].set_index("seed")["balanced_accuracy"]
            mean, low, high = interval(values.to_numpy())
            line = f"    {name:10s} {mean:.1%} [{low:.1%}, {high:.1%}]"
            if name != "random":
                gain, glow, ghigh = interval(100 * (values - base).to_numpy())
                line += f"   gain {gain:+.1f} [{glow:+.1f}, {ghigh:+.1f}]"
            print(line)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}")


if __name__ == "__main__":
    main()
