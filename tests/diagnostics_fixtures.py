"""Builders of small, fully documented run directories for the diagnostics tests.

Images are replaced by synthetic embeddings with the demo set's structure: each class is a set of
concepts (groups), each concept drawn by several "artists" (near-duplicates of one another). The
"model" of each fold is a logistic regression on the backbone embeddings, so train/val/test
predictions behave like a real frozen-backbone run. Prediction tables and metrics.json come from
core.evaluate, as the pipeline writes them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from core.evaluate import compute_metrics, ensemble_table, prediction_table
from core.store import run_store


@dataclass
class Spec:
    classes: tuple[str, ...] = ("All_Beauty", "Digital_Music", "Health_and_Personal_Care")
    groups_per_class: tuple[int, ...] = (14, 8, 6)
    artists: int = 5                 # images per group: near-duplicates of one another
    dim: int = 64
    class_scale: float = 0.5         # how far class centres are apart (small: classes hard to tell apart)
    group_scale: float = 1.5         # how far concepts are from their class centre
    artist_noise: float = 0.6        # per-image noise around the concept (small: near-duplicates)
    grouped: bool = True             # group-aware folds
    folds: int = 3
    test_groups: int = 1             # groups per class held out as test
    flips: int = 0                   # planted label flips (cv samples)
    test_flips: int = 0              # planted label flips in the test split
    unlearnable: str | None = None   # this class's images are drawn from the other classes' concepts
    exact_copies: int = 0            # planted byte-identical pairs
    outliers: int = 0                # planted images far from everything
    noisy_kind: int = 0              # planted slice: this many cv images of one new kind, labels drawn at random
    spaces: tuple[str, ...] = ("backbone",)
    seed: int = 0
    flipped: list[int] = field(default_factory=list)   # filled in: sample ids whose label was flipped (cv and test)
    kind: list[int] = field(default_factory=list)      # filled in: sample ids of the noisy kind


def _embeddings(spec: Spec, rng) -> tuple[np.ndarray, np.ndarray, list[str]]:
    n_classes = len(spec.classes)
    centres = rng.normal(size=(n_classes, spec.dim)) * spec.class_scale
    rows, labels, groups = [], [], []
    for c, n_groups in enumerate(spec.groups_per_class):
        for g in range(n_groups):
            concept = centres[c] + rng.normal(size=spec.dim) * spec.group_scale
            if spec.classes[c] == spec.unlearnable:   # no centre of its own: nothing to learn
                concept = centres[rng.integers(n_classes)] * 0.5 + rng.normal(size=spec.dim) * spec.group_scale
            for _ in range(spec.artists):
                rows.append(concept + rng.normal(size=spec.dim) * spec.artist_noise)
                labels.append(c)
                groups.append(f"{spec.classes[c]}-{g}")
    spec.kind = list(range(len(rows), len(rows) + spec.noisy_kind))
    kind = rng.normal(size=spec.dim) * (spec.class_scale + spec.group_scale) if spec.noisy_kind else None
    for i in range(spec.noisy_kind):   # one group each, so the kind is spread over every fold
        rows.append(kind + rng.normal(size=spec.dim) * spec.artist_noise)
        labels.append(int(rng.integers(n_classes)))
        groups.append(f"kind-{i}")
    return np.asarray(rows), np.asarray(labels), groups


def make_run(root: Path, spec: Spec | None = None) -> Path:
    """Write run.json, samples, history, predictions, metrics and embeddings under root/RUN_ID."""
    spec = spec or Spec()
    rng = np.random.default_rng(spec.seed)
    x, true, groups = _embeddings(spec, rng)
    n, classes = len(x), list(spec.classes)
    group_arr = np.asarray(groups)
    test_groups = {f"{c}-{g}" for c in classes for g in range(spec.test_groups)}
    split = np.where(np.isin(group_arr, list(test_groups)), "test", "cv")
    label = true.copy()
    cv_ids = np.flatnonzero(split == "cv")
    flipped = rng.choice(cv_ids, size=spec.flips, replace=False)
    if spec.test_flips:
        flipped = np.concatenate([flipped, rng.choice(np.flatnonzero(split == "test"), spec.test_flips,
                                                      replace=False)])
    label[flipped] = (label[flipped] + 1) % len(classes)
    spec.flipped = sorted(flipped.tolist())
    fold = np.full(n, -1)
    splits = (StratifiedGroupKFold(spec.folds, shuffle=True, random_state=spec.seed).split(
        x[cv_ids], label[cv_ids], group_arr[cv_ids]) if spec.grouped
        else StratifiedKFold(spec.folds, shuffle=True, random_state=spec.seed).split(x[cv_ids], label[cv_ids]))
    for k, (_, val) in enumerate(splits):
        fold[cv_ids[val]] = k
    digests = [hashlib.sha256(f"image-{i}".encode()).hexdigest() for i in range(n)]
    for i in range(spec.exact_copies):   # the second of each pair is a byte copy of the first
        a, b = cv_ids[2 * i], cv_ids[-1 - 2 * i]
        x[b], digests[b] = x[a], digests[a]
    for i in cv_ids[len(cv_ids) // 2: len(cv_ids) // 2 + spec.outliers]:
        x[i] = rng.normal(size=spec.dim) * 4 * (spec.class_scale + spec.group_scale + spec.artist_noise)
    samples = pd.DataFrame({
        "sample_id": np.arange(n, dtype="int64"),
        "path": [f"{classes[label[i]]}/img_{i:05d}.jpg" for i in range(n)],
        "label": [classes[i] for i in label], "label_index": label.astype("int64"),
        "group": group_arr.astype(object), "split": split,
        "fold": pd.array([None if f < 0 else int(f) for f in fold], dtype="Int64"),
        "width": 128, "height": 128, "sha256": digests,
    })
    test_ids = np.flatnonzero(split == "test")
    frames, history = [], []
    for k in range(spec.folds):
        train_ids, val_ids = cv_ids[fold[cv_ids] != k], cv_ids[fold[cv_ids] == k]
        model = LogisticRegression(C=10.0, max_iter=2000).fit(x[train_ids], label[train_ids])
        for role, ids in (("train", train_ids), ("val", val_ids), ("test", test_ids)):
            frames.append(prediction_table(ids, label[ids], model.predict_proba(x[ids]), f"fold{k}", k, role, classes))
        for epoch in (1, 2, 3):
            for phase, ids in (("train", train_ids), ("val", val_ids)):
                acc = accuracy_score(label[ids], model.predict(x[ids])) * (0.8 + 0.1 * min(epoch, 2))
                history.append({"fold": k, "epoch": epoch, "phase": phase, "loss": 1.0 / epoch, "accuracy": acc,
                                "balanced_accuracy": acc, "lr": 1e-3, "is_best": epoch == 2})
    predictions = pd.concat(frames, ignore_index=True)
    predictions = pd.concat([predictions, ensemble_table(predictions, classes)], ignore_index=True)

    run_dir = Path(root) / f"20250101-000000-{'grouped' if spec.grouped else 'plain'}-{spec.seed}"
    run_store.write_json(run_dir / "run.json", {
        "schema_version": 1, "run_id": run_dir.name, "created": "2025-01-01T00:00:00Z", "status": "complete",
        "error": None, "config": {"use_groups": spec.grouped, "folds": spec.folds, "seed": spec.seed},
        "dataset": {"root": str(root), "manifest": None, "n_images": n, "n_skipped": 0,
                    "has_groups": True, "groups_used": spec.grouped},
        "classes": classes, "class_counts": {c: int((label == i).sum()) for i, c in enumerate(classes)},
        "spaces": list(spec.spaces), "folds_done": list(range(spec.folds)),
    })
    run_store.write_parquet(run_dir / "samples.parquet", samples)
    run_store.write_parquet(run_dir / "predictions.parquet", predictions)
    run_store.write_parquet(run_dir / "history.parquet", pd.DataFrame(history))
    run_store.write_json(run_dir / "metrics.json", compute_metrics(predictions, classes))
    for s, space in enumerate(spec.spaces):   # fine-tuned spaces: the backbone, slightly moved
        moved = x + (rng.normal(size=x.shape) * 0.3 if s else 0.0)
        run_store.write_array(run_store.embedding_path(run_dir, space), moved.astype(np.float16))
    return run_dir


def missing_class_metrics() -> dict:
    """metrics.json of a 3-fold run, every prediction right, where class c is only in fold 0 (so absent from
    fold 0's train part and from folds 1 and 2's validation parts) and class d only in the test split (with one a)."""
    classes = ["a", "b", "c", "d"]
    labels = np.array([0, 1] * 6 + [2, 2] + [3, 0])
    fold = np.array([0, 1, 2] * 4 + [0, 0] + [-1, -1])   # a and b in every fold, -1 = test
    ids = np.arange(len(labels))
    probs = np.full((len(labels), len(classes)), 0.1)
    probs[ids, labels] = 0.7
    tables = [prediction_table(ids[mask], labels[mask], probs[mask], f"fold{k}", k, role, classes)
              for k in range(3)
              for role, mask in (("train", (fold != k) & (fold >= 0)), ("val", fold == k), ("test", fold < 0))]
    predictions = pd.concat(tables, ignore_index=True)
    return compute_metrics(pd.concat([predictions, ensemble_table(predictions, classes)], ignore_index=True), classes)
