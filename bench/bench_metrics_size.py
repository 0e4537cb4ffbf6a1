"""Size of metrics.json at many classes: confusion matrices stored as nonzero cells (schema 2) against the dense
rows runs of schema 1 stored, for the same predictions.

    .venv/bin/python bench/bench_metrics_size.py [--classes 12 300 1000] [--samples 100000] [--folds 5]

The predictions are synthetic: every class about equally frequent, 25% of the held-out and 5% of the training
predictions wrong, each class's mistakes going to 3 look-alike classes; 20% of the images are a test split.
Written as run_store.write_json writes it (indented JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.evaluate import compute_metrics, dense_confusion  # noqa: E402


def predictions(n_samples: int, n_classes: int, n_folds: int, seed: int = 0) -> pd.DataFrame:
    """label/pred/model/fold/role rows as predictions.parquet holds them (no probabilities: metrics need none)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_samples)
    fold = np.where(rng.random(n_samples) < 0.2, -1, rng.integers(0, n_folds, n_samples))
    look_alikes = rng.integers(1, n_classes, (n_classes, 3))   # offsets: never the class itself

    def predicted(truth: np.ndarray, error: float) -> np.ndarray:
        wrong = rng.random(len(truth)) < error
        shifted = (truth + look_alikes[truth, rng.integers(0, 3, len(truth))]) % n_classes
        return np.where(wrong, shifted, truth)
    parts = []
    for k in range(n_folds):
        for role, members, error in (("train", (fold >= 0) & (fold != k), 0.05), ("val", fold == k, 0.25),
                                     ("test", fold == -1, 0.25)):
            truth = labels[members]
            parts.append(pd.DataFrame({"label": truth, "pred": predicted(truth, error), "model": f"fold{k}",
                                       "fold": k, "role": role}))
    truth = labels[fold == -1]
    parts.append(pd.DataFrame({"label": truth, "pred": predicted(truth, 0.2), "model": "ensemble", "fold": None,
                               "role": "test"}))
    return pd.concat(parts, ignore_index=True)


def as_schema_1(node, n_classes: int):
    """The same document with every confusion in the dense rows schema 1 wrote."""
    if isinstance(node, dict):
        if "confusion_cells" in node:
            node = {**node, "confusion": dense_confusion(node, n_classes).tolist()}
            node.pop("confusion_cells")
        return {key: as_schema_1(value, n_classes) for key, value in node.items()}
    return node


def megabytes(document: dict) -> float:
    return len(json.dumps(document, indent=2) + "\n") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, nargs="+", default=[12, 300, 1000])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores (this shared 2-core CPU box), load average "
          f"{os.getloadavg()[0]:.1f}; "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"{args.samples} images, {args.folds} folds + test ensemble: {args.folds * 3 + 1} confusion matrices")
    for n_classes in args.classes:
        classes = [f"class_{i:04d}" for i in range(n_classes)]
        frame = predictions(args.samples, n_classes, args.folds)
        started = time.perf_counter()
        metrics = compute_metrics(frame, classes)
        seconds = time.perf_counter() - started
        cells, dense = megabytes(metrics), megabytes(as_schema_1(metrics, n_classes))
        print(f"{n_classes:>5} classes: metrics.json {cells:.2f} MB with nonzero cells (schema 2), {dense:.2f} MB "
              f"with dense rows (schema 1), {dense / cells:.1f}x smaller; compute_metrics {seconds:.1f}s")


if __name__ == "__main__":
    main()
