"""A generated run directory in the documented format (docs/run-format.md), for tests and benchmarks.

Nothing is trained: embeddings are class centroids plus noise, and every fold "model" scores samples by
their distance to those centroids, sharper on its train rows (so there is an overfitting gap). A few
samples are planted as label errors (embedded among another class) and a few as exact duplicates across
folds or into the test split, so the diagnostics and the dashboard have something to find.
Image files are small generated PNGs; for large runs a pool of files per class is reused by many samples.
"""
from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.config import RunConfig
from core.evaluate import compute_metrics, ensemble_table, prediction_table
from core.store import run_store

_SIZES = np.array([[64, 64], [96, 72], [120, 120], [48, 80], [200, 150]])


def make_synthetic_run(runs_dir: Path, run_id: str, n_samples: int = 240, n_classes: int = 4, n_folds: int = 3,
                       dim: int = 32, *, test_size: float = 0.2, seed: int = 0, status: str = "complete",
                       train_mode: str = "finetune", files_per_class: int = 40, epochs: int = 12,
                       data_dir: Path | None = None, created: datetime | None = None,
                       diagnostics: bool = True, class_names: list[str] | None = None, n_superclasses: int = 0,
                       dropped_classes: list[dict] | None = None, dynamics: bool = False) -> Path:
    """Write RUNS_DIR/RUN_ID and its images (under `data_dir`, default RUNS_DIR/../synthetic-data/RUN_ID).

    status "running" writes only the first half of the folds (no diagnostics); "failed" also sets an error.
    `class_names` replace class_a, class_b, ... (as a CSV manifest may name classes: anything, "../x" or HTML
    included); their images are then in folders class_000, class_001, ... `n_superclasses`: class i belongs to
    superclass super_{i mod n} (run.json superclasses, metrics.json superclass). `dropped_classes`: run.json's
    dataset.dropped_classes ({label, images, units}), as --drop-small-classes records them. `dynamics`: every fold
    keeps its training dynamics (folds/fold{k}/dynamics.npz), as runs trained since they are kept do. Returns the
    run directory.
    """
    rng = np.random.default_rng(seed)
    run_dir = Path(runs_dir) / run_id
    data_root = Path(data_dir) if data_dir else Path(runs_dir).resolve().parent / "synthetic-data" / run_id
    classes = list(class_names) if class_names else [
        f"class_{chr(ord('a') + i)}" if n_classes <= 26 else f"class_{i:03d}" for i in range(n_classes)]
    n_classes = len(classes)
    folders = [f"class_{i:03d}" for i in range(n_classes)] if class_names else classes

    # Imbalanced labels: class i is 0.6**i as frequent as class 0, every class at least n_folds + 2 images.
    weights = 0.6 ** np.arange(n_classes)
    labels = rng.choice(n_classes, size=n_samples, p=weights / weights.sum())
    labels[: n_classes * (n_folds + 2)] = np.tile(np.arange(n_classes), n_folds + 2)
    is_test = rng.random(n_samples) < test_size
    folds = np.where(is_test, -1, rng.permutation(n_samples) % n_folds)

    paths, sha = _write_images(data_root, folders, labels, files_per_class, rng)
    sizes = _SIZES[rng.integers(0, len(_SIZES), n_samples)]
    samples = pd.DataFrame({
        "sample_id": np.arange(n_samples, dtype=np.int64), "path": paths,
        "label": [classes[i] for i in labels], "label_index": labels.astype(np.int64),
        "group": pd.array([None] * n_samples, dtype="string"),
        "split": np.where(is_test, "test", "cv"),
        "fold": pd.Series(folds, dtype="Int64").mask(is_test),
        "width": sizes[:, 0].astype(np.int64), "height": sizes[:, 1].astype(np.int64), "sha256": sha})

    # Embeddings: centroid of the (true) class + noise; planted label errors sit among another class.
    centroids = rng.normal(0, 1, (n_classes, dim)) * 0.55
    true_class = labels.copy()
    planted = rng.choice(n_samples, size=max(2, n_samples // 60), replace=False)
    true_class[planted] = (labels[planted] + 1 + rng.integers(0, max(1, n_classes - 1), len(planted))) % n_classes
    backbone = centroids[true_class] + rng.normal(0, 1.6, (n_samples, dim))
    duplicates = _plant_duplicates(samples, is_test, rng)
    for a, b in duplicates:
        backbone[b] = backbone[a]
        _copy_image(data_root, samples, a, b)

    n_done = n_folds if status == "complete" else max(1, n_folds // 2)
    done = list(range(n_done))
    predictions = _predictions(backbone, centroids, labels, folds, done, classes, rng)

    run_dir.mkdir(parents=True, exist_ok=True)
    run_store.write_parquet(run_dir / "samples.parquet", samples)
    run_store.write_array(run_store.embedding_path(run_dir, "backbone"), backbone.astype(np.float16))
    spaces = ["backbone"]
    if train_mode == "finetune":
        for k in done:
            shifted = backbone + 0.3 * centroids[labels] * (folds != k)[:, None]  # fit tighter on train rows
            run_store.write_array(run_store.embedding_path(run_dir, f"fold{k}"), shifted.astype(np.float16))
            spaces.append(f"fold{k}")
    history = _history(done, epochs, rng)
    for k in done:
        best = int(history[(history.fold == k) & history.is_best].epoch.iloc[0])
        out = run_store.fold_dir(run_dir, k)
        run_store.write_parquet(out / "history.parquet", history[history.fold == k])
        run_store.write_parquet(out / "predictions.parquet", predictions[predictions.fold == k])
        if dynamics:
            _write_dynamics(out, predictions[(predictions.fold == k) & (predictions.role == "train")], classes,
                            epochs, train_mode, rng)
        run_store.write_json(out / "fold.json", {"fold": k, "status": "complete", "best_epoch": best,
                                                 "epochs_run": epochs, "stopped_early": False, "seconds": 1.0})
    run_store.write_parquet(run_dir / "history.parquet", history)
    run_store.write_parquet(run_dir / "predictions.parquet", predictions)
    superclasses = {c: f"super_{i % n_superclasses}" for i, c in enumerate(classes)} if n_superclasses else None
    run_store.write_json(run_dir / "metrics.json", compute_metrics(predictions, classes, superclasses))

    config = RunConfig(data=str(data_root), folds=n_folds, seed=seed, test_size=test_size, epochs=epochs,
                       train_mode=train_mode, name="synthetic", runs_dir=str(runs_dir)).to_dict()
    created = created or datetime.now(timezone.utc) - timedelta(minutes=5)
    run_store.write_json(run_dir / run_store.RUN_JSON, {
        "schema_version": run_store.SCHEMA_VERSION, "run_id": run_id,
        "created": created.isoformat(timespec="seconds"),
        "status": status, "error": "CUDA out of memory in fold 1 (synthetic failure)" if status == "failed" else None,
        "config": config,
        "dataset": {"root": str(data_root), "manifest": None, "n_images": n_samples, "n_skipped": 2,
                    "has_groups": False, "groups_used": False, "dropped_classes": dropped_classes or []},
        "classes": classes, "superclasses": superclasses,
        "class_counts": {c: int((labels == i).sum()) for i, c in enumerate(classes)},
        "device": "cpu (synthetic)", "train_mode": train_mode,
        "train_mode_reason": "synthetic run: nothing was trained",
        "model": {"name": "resnet50", "feature_dim": dim, "stride_on_1x1": False},
        "weights": {"spec": "none", "source": "none", "sha256": None, "path": None},
        "spaces": spaces, "folds_done": done,
        "timings": {"scan": 0.1, "features": 0.5, **{f"fold{k}": 1.0 for k in done}, "total": 1.0 + n_done},
        "versions": {"python": "synthetic"},
        "skipped": [{"path": f"{classes[0]}/broken.jpg", "reason": "cannot identify image file"},
                    {"path": f"{classes[-1]}/notes.txt", "reason": "not an image (extension .txt)"}],
    })
    if status == "complete" and diagnostics:
        _run_diagnostics(run_dir)
    return run_dir


FILE_USES = 50   # samples sharing one image file at most (files_per_class is raised to keep to it)


def _write_images(root: Path, classes: list[str], labels: np.ndarray, per_class: int,
                  rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """One PNG per sample up to `per_class` files per class (more for a class of more than `FILE_USES` samples a
    file), then reuse.

    A reused file gets a per-sample synthetic sha256, so reuse (a shortcut for big runs) does not look like
    thousands of exact duplicates to the diagnostics.
    """
    paths, hashes, file_sha = [], [], {}
    seen = np.zeros(len(classes), dtype=np.int64)
    # a large class gets more files: one file behind thousands of samples would make them all pixel copies, a
    # quadratic number of copy pairs no 12-class run of the same size has
    files = np.maximum(per_class, -(-np.bincount(labels, minlength=len(classes)) // FILE_USES))
    for sample_id, label in enumerate(labels):
        index = int(seen[label] % files[label])
        seen[label] += 1
        rel = f"{classes[label]}/img_{index:03d}.png"
        if rel not in file_sha:
            file_sha[rel] = _write_png(root / rel, _image_array(int(label), len(classes), rng))
            hashes.append(file_sha[rel])
        else:
            hashes.append(hashlib.sha256(f"{rel}#{sample_id}".encode()).hexdigest())
        paths.append(rel)
    return paths, hashes


def _image_array(label: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A 64x64 tile: class hue as background, a random bright square, some noise."""
    hue = np.array(Image.new("HSV", (1, 1), (int(255 * label / n_classes), 170, 210)).convert("RGB"))[0, 0]
    image = np.tile(hue, (64, 64, 1)).astype(np.int16)
    x, y, s = rng.integers(4, 36), rng.integers(4, 36), rng.integers(10, 26)
    image[y:y + s, x:x + s] = 245
    image += rng.integers(-18, 18, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _write_png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _plant_duplicates(samples: pd.DataFrame, is_test: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Pairs (a, b) of same-class samples where b becomes a byte copy of a: one into the test split, the rest
    across folds."""
    pairs = []
    cv = np.flatnonzero(~is_test)
    test = np.flatnonzero(is_test)
    for a in rng.choice(cv, size=min(3, len(cv) // 4), replace=False):
        label = samples.label_index.iat[a]
        pool = test if not pairs and len(test) else cv[samples.fold.to_numpy()[cv] != samples.fold.iat[a]]
        pool = pool[samples.label_index.to_numpy()[pool] == label]
        if len(pool):
            pairs.append((int(a), int(rng.choice(pool))))
    return pairs


def _copy_image(root: Path, samples: pd.DataFrame, a: int, b: int) -> None:
    rel = f"{Path(samples.path.iat[a]).parent.as_posix()}/dup_of_{a}.png"
    data = (root / samples.path.iat[a]).read_bytes()
    (root / rel).write_bytes(data)
    samples.loc[b, ["path", "sha256"]] = [rel, hashlib.sha256(data).hexdigest()]


def _predictions(embeddings: np.ndarray, centroids: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                 done: list[int], classes: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Every done fold model scores every sample; train rows are scored more confidently (memorised)."""
    # squared distances expanded, not broadcast: samples x classes x dim would not fit at a thousand classes
    distance = ((embeddings ** 2).sum(1)[:, None] - 2 * embeddings @ centroids.T + (centroids ** 2).sum(1)[None])
    logits = -distance / embeddings.shape[1]
    ids = np.arange(len(labels))
    tables = []
    for k in done:
        noisy = logits * 4 + rng.normal(0, 0.5, logits.shape)
        train = (folds != k) & (folds >= 0)
        noisy[train, labels[train]] += 2.5
        probs = np.exp(noisy - noisy.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        for role, mask in (("train", train), ("val", folds == k), ("test", folds < 0)):
            tables.append(prediction_table(ids[mask], labels[mask], probs[mask], f"fold{k}", k, role, classes))
    predictions = pd.concat(tables, ignore_index=True)
    ensemble = ensemble_table(predictions, classes)
    return pd.concat([predictions, ensemble], ignore_index=True) if len(ensemble) else predictions


def _write_dynamics(out: Path, train: pd.DataFrame, classes: list[str], epochs: int, train_mode: str,
                    rng: np.random.Generator) -> None:
    """Each training image's given-label probability rising from chance towards the fold model's final one, with
    noise, and the margin that goes with it; head mode also threshold samples (wrong labels: low margins)."""
    final = train[[f"prob_{c}" for c in classes]].to_numpy()[np.arange(len(train)), train["label"].to_numpy()]
    progress = 1 - np.exp(-np.arange(1, epochs + 1) / 3)[:, None]
    chance = 1 / len(classes)
    prob = np.clip(chance + (final - chance)[None] * progress + rng.normal(0, 0.05, (epochs, len(train))),
                   0.01, 0.99)
    margin = np.log(prob / (1 - prob))
    threshold = rng.normal(-1.0, 0.5, len(train) // (len(classes) + 1)) if train_mode == "head" else np.empty(0)
    run_store.write_npz(out / run_store.DYNAMICS_FILE, sample_id=train["sample_id"].to_numpy(np.int64),
                        prob=prob.astype(np.float16), margin=margin.astype(np.float16),
                        threshold_aum=threshold.astype(np.float16))


def _history(done: list[int], epochs: int, rng: np.random.Generator) -> pd.DataFrame:
    """Train loss keeps falling; validation loss bottoms out and rises again (overfitting)."""
    rows = []
    epoch = np.arange(1, epochs + 1)
    for k in done:
        turn = rng.integers(epochs // 3, max(epochs // 3 + 1, 2 * epochs // 3))
        train_loss = 1.4 * np.exp(-epoch / (epochs / 4)) + 0.05 + rng.normal(0, 0.01, epochs)
        val_loss = 1.5 * np.exp(-epoch / (epochs / 5)) + 0.35 + 0.03 * np.maximum(0, epoch - turn)
        val_loss += rng.normal(0, 0.02, epochs)
        train_acc = np.clip(1 - train_loss / 1.6, 0, 1)
        val_acc = np.clip(0.95 - val_loss / 2.2, 0, 1)
        best = int(np.argmin(val_loss))
        for phase, loss, acc in (("train", train_loss, train_acc), ("val", val_loss, val_acc)):
            rows.append(pd.DataFrame({"fold": k, "epoch": epoch, "phase": phase, "loss": loss, "accuracy": acc,
                                      "balanced_accuracy": acc - 0.04, "lr": 1e-3 * np.cos(epoch / epochs),
                                      "is_best": np.arange(epochs) == best}))
    return pd.concat(rows, ignore_index=True)


def _run_diagnostics(run_dir: Path) -> None:
    """The diagnostics stage of core, when it is installed in this checkout."""
    try:
        from core.analysis.diagnostics import run_diagnostics
    except ImportError:
        return
    run_diagnostics(run_dir)


def classifier_outputs(n: int, n_classes: int = 5, *, signal: float | np.ndarray = 2.0, sharpness: float = 1.0,
                       shares: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [n, C] and true labels [n] of an imagined classifier, exchangeable across calls with the
    same settings: every image's true class gets `signal` (one number, or one per class: a class the model
    tells apart badly gets less) added to noisy logits, and the model reports
    softmax(sharpness * logits), so sharpness > 1 is over-confident and sharpness 1 is calibrated (labels are
    drawn from softmax(logits) itself). `shares`: class frequencies (default: equal)."""
    rng = np.random.default_rng(seed)
    shares = np.full(n_classes, 1 / n_classes) if shares is None else np.asarray(shares) / np.sum(shares)
    centre = rng.choice(n_classes, size=n, p=shares)
    logits = rng.normal(0, 1, (n, n_classes))
    logits[np.arange(n), centre] += np.broadcast_to(signal, (n_classes,))[centre]
    true = np.exp(logits - logits.max(1, keepdims=True))
    true /= true.sum(1, keepdims=True)
    labels = (true.cumsum(1) < rng.random((n, 1))).sum(1).clip(max=n_classes - 1)
    reported = np.exp(sharpness * (logits - logits.max(1, keepdims=True)))
    return reported / reported.sum(1, keepdims=True), labels


def class_predictions(counts: list[int], recalls: list[float], n_folds: int = 3, seed: int = 0,
                      test_share: float = 0.0) -> tuple[pd.DataFrame, list[str]]:
    """predictions.parquet of an imagined k-fold run (and its classes): class i has counts[i] images spread over
    the folds (every `1/test_share`-th in the test split), each fold model is right on its training images and on a
    held-out image of class i with probability recalls[i], else predicts class (i + 1) mod C."""
    rng = np.random.default_rng(seed)
    classes = [f"class_{i:03d}" for i in range(len(counts))]
    labels = np.repeat(np.arange(len(counts)), counts)
    position = np.concatenate([np.arange(n) for n in counts])
    is_test = (position % round(1 / test_share) == 0) if test_share else np.zeros(len(labels), bool)
    folds = np.where(is_test, -1, position % n_folds)
    ids = np.arange(len(labels))
    tables = []
    for k in range(n_folds):
        right = rng.random(len(labels)) < np.asarray(recalls)[labels]
        pred = np.where((folds != k) & (folds >= 0) | right, labels, (labels + 1) % len(counts))
        probs = np.full((len(labels), len(counts)), 0.1 / max(1, len(counts) - 1), dtype=np.float32)
        probs[ids, pred] = 0.9
        for role, mask in (("train", (folds != k) & (folds >= 0)), ("val", folds == k), ("test", folds < 0)):
            if mask.any():
                tables.append(prediction_table(ids[mask], labels[mask], probs[mask], f"fold{k}", k, role, classes))
    predictions = pd.concat(tables, ignore_index=True)
    return pd.concat([predictions, ensemble_table(predictions, classes)], ignore_index=True), classes


def make_synthetic_pool(run_dir: Path, image_dir: Path, n: int = 6, picks: list[int] | None = None) -> None:
    """An unlabelled pool of `n` generated PNGs (under `image_dir`) in a run, as `train_cli.py pool --add` stores it
    (docs/run-format.md, pool/): random features in the run's backbone dimension, random probabilities, the first
    image noted as identical to labelled sample 0, one unreadable file recorded; `picks`: pool rows written as the
    last ranking (pool/picks.parquet), best first."""
    from core.delivery.pool import PICK_COLUMNS, TABLE_COLUMNS, write_pool
    run_dir, image_dir = Path(run_dir), Path(image_dir)
    info = run_store.read_json(run_dir / run_store.RUN_JSON)
    dim = run_store.read_embedding(run_dir, "backbone").shape[1]
    rng = np.random.default_rng(0)
    image_dir.mkdir(parents=True, exist_ok=True)
    paths, shas = [], []
    for i in range(n):
        paths.append(str(image_dir / f"pool_{i}.png"))
        shas.append(_write_png(Path(paths[-1]), _image_array(i % len(info["classes"]), len(info["classes"]), rng)))
    probabilities = rng.dirichlet(np.ones(len(info["classes"])), size=n).astype(np.float32)
    classes = np.asarray(info["classes"], dtype=object)
    table = pd.DataFrame({"pool_id": np.arange(n), "path": paths, "sha256": shas, "copies": [[] for _ in range(n)],
                          "known_label": pd.array([None] * n, dtype="string"),
                          "labelled_sample_id": pd.array([0] + [None] * (n - 1), dtype="Int64"),
                          "near_labelled_sample_id": pd.array([None] * n, dtype="Int64"), "near_similarity": np.nan,
                          "prediction": classes[probabilities.argmax(1)], "confidence": probabilities.max(1)})
    record = {"created": "2026-12-03T12:00:00+00:00", "inputs": [str(image_dir)], "n_files": n + 1,
              "skipped": [{"path": str(image_dir / "notes.jpg"), "reason": "not an image (format not recognised)"}],
              "n_images": n, "identical_to_labelled": 1, "near_labelled": 0, "near_duplicate_similarity": 0.95,
              "space": "backbone", "train_mode": info["train_mode"], "classes": list(info["classes"])}
    write_pool(run_dir, table[TABLE_COLUMNS], rng.normal(size=(n, dim)).astype(np.float16), probabilities, record)
    if picks:
        chosen = table.iloc[picks]
        run_store.write_parquet(run_store.pool_path(run_dir, "picks"), chosen.assign(
            rank=np.arange(1, len(picks) + 1), strategy="typiclust", score=1.0,
            reason="most typical pool image of a cluster of 9 images with 0 labelled (typicality 1.00)")[PICK_COLUMNS])
