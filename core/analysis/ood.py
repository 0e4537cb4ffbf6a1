"""Out-of-distribution score: how far a new image is from the run's training images in the features the
classifier reads.

Deep nearest neighbours (Sun et al., "Out-of-distribution detection with deep nearest neighbors", ICML 2022): the
penultimate features of the model, scaled to unit length; an image's score is the Euclidean distance to its k-th
nearest training image (the cv split, which the fold models learnt from). A large score means nothing the models
were trained on looks like it. The space is the one the serving forward pass already computes, so a score costs a
search and no extra pass: in head mode the pretrained backbone's features (embeddings/backbone.npy), which every
fold's head reads; in finetune mode each fold network's own features (embeddings/fold{k}.npy), the score being the
mean of the fold spaces' distances. (Scoring finetune runs in the pretrained space instead would need one more
backbone pass per image, +1/K of the work of K fold networks: bench/bench_confidence.py measured it.)

k: Sun et al. use k = 50 on CIFAR-10's 50,000 training images; a small dataset has few images per class, so k
grows with the reference instead: 2% of it, at least 1 and at most 50. Like Sun et al. on ImageNet (a 1% sample),
a large training set is represented by a seeded random sample of `max_reference` images, shared among the spaces
(5 fold spaces: 1,000 images each): every request scans the whole reference (exact search), and a scan of
16,000 x 2048 floats took 60-170 ms on the shared 2-core machine (bench/bench_ood_drift.py --scale), longer than
the forward pass it accompanies.

Calibration: the threshold is the 95th percentile of the scores of held-out images of known classes, so a flag
means "farther from the training images than 95% of held-out images". Held out are the run's test split images
(scored against the cv images they were never part of, by fold models that never saw them) when there are at
least `min_calibration` of them; else each cv image scored against the other cv images (leave-one-out). In the
pretrained space that is held out too; in fold spaces every fold model but one trained on the image, so those
scores are smaller and the threshold flags more new images than 5%. That search is the slow part of loading
(every held-out image against every training image), so its result is kept in the content-addressed cache
(`default_cache_dir()`/ood), keyed by the bytes of the embeddings, the splits and the settings.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from core.analysis.similar import normalised
from core.config import default_cache_dir
from core.store import run_store as store
from core.store.hashing import memoised_file_sha256
from core.training.run_inputs import shared_backbone


@dataclass(frozen=True)
class OodSettings:
    quantile: float = 0.95        # share of held-out images of known classes that are not flagged
    k_share: float = 0.02         # k = this share of the reference images ...
    max_k: int = 50               # ... at most Sun et al.'s k
    min_calibration: int = 20     # fewer test images than this: calibrate leave-one-out on the cv images
    max_reference: int = 5000     # cv images in the reference, all spaces together: a seeded sample beyond
    seed: int = 0


@dataclass
class OodReference:
    """The training images' index in each feature space of the serving models, and the calibrated threshold."""
    indexes: dict[str, faiss.IndexFlatIP]   # space ("backbone", "fold0", ...) -> unit-length features of cv images
    k: int
    threshold: float
    quantile: float
    calibration: str             # "test split" or "leave-one-out"
    n_calibration: int

    @property
    def n_reference(self) -> int:
        return int(next(iter(self.indexes.values())).ntotal)

    def scores(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Mean over the spaces of each row's distance to its k-th nearest training image (features at any scale,
        rows in the same order in every space)."""
        return np.mean([kth_distance(index, normalised(np.asarray(features[space])), self.k)
                        for space, index in self.indexes.items()], axis=0)

    def space_words(self) -> str:
        """Where the distances are measured, in words."""
        if list(self.indexes) == ["backbone"]:
            return "the pretrained backbone's feature space"
        return f"each fold network's own feature space (mean over {len(self.indexes)} folds)"

    def describe(self) -> dict:
        """What a reader needs to interpret a score (predict's CSV note, GET /model)."""
        return {"method": f"distance to the k-th nearest training image in {self.space_words()}, unit-length "
                          f"features (Sun et al. 2022)",
                "spaces": list(self.indexes), "k": self.k, "n_reference": self.n_reference,
                "threshold": self.threshold, "quantile": self.quantile, "calibration": self.calibration,
                "n_calibration": self.n_calibration}


def serving_spaces(info: dict, folds: list[int]) -> list[str]:
    """The spaces the serving forward pass computes: the shared pretrained backbone's in head mode, each fold
    network's own in finetune mode (and in head mode after `--ssl-method` adapted each fold's backbone)."""
    return ["backbone"] if shared_backbone(info) else [f"fold{k}" for k in folds]


def choose_k(n_reference: int, settings: OodSettings = OodSettings()) -> int:
    return int(np.clip(round(settings.k_share * n_reference), 1, min(settings.max_k, max(1, n_reference - 1))))


def kth_distance(index: faiss.IndexFlatIP, unit: np.ndarray, k: int, skip_self: bool = False) -> np.ndarray:
    """Euclidean distance of unit rows to their k-th nearest indexed row (the nearest skipped with `skip_self`).
    On unit vectors |a - b|^2 = 2 - 2 a.b, so the inner-product index gives it exactly."""
    if len(unit) == 0:
        return np.zeros(0)
    similarity, _ = index.search(np.ascontiguousarray(unit, dtype=np.float32), k + int(skip_self))
    return np.sqrt(np.clip(2.0 - 2.0 * similarity[:, -1].astype(np.float64), 0.0, None))


def build_reference(embeddings: dict[str, np.ndarray], split: np.ndarray, settings: OodSettings = OodSettings(),
                    calibrated: dict | None = None) -> OodReference | None:
    """The reference of a run from its features in each space (rows in samples order) and each row's split
    ("cv" / "test"); None when it has fewer than two cv images. `calibrated`: a threshold computed before for the
    same features (`calibration`)."""
    split = np.asarray(split)
    rows = np.flatnonzero(split == "cv")
    per_space = max(2, settings.max_reference // max(1, len(embeddings)))
    if len(rows) > per_space:
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows, per_space, replace=False))
    if len(rows) < 2 or not embeddings:
        return None
    train, indexes = {}, {}
    for space, features in embeddings.items():
        train[space] = normalised(np.asarray(features)[rows])
        indexes[space] = faiss.IndexFlatIP(train[space].shape[1])
        indexes[space].add(train[space])
    k = choose_k(len(rows), settings)
    if calibrated is None:
        held = split == "test"
        if held.sum() >= settings.min_calibration:
            how = "test split"
            held_scores = np.mean([kth_distance(indexes[s], normalised(np.asarray(f)[held]), k)
                                   for s, f in embeddings.items()], axis=0)
        else:
            how = "leave-one-out"
            held_scores = np.mean([kth_distance(indexes[s], train[s], k, skip_self=True) for s in embeddings], axis=0)
        calibrated = {"threshold": float(np.quantile(held_scores, settings.quantile)), "calibration": how,
                      "n_calibration": len(held_scores)}
    return OodReference(indexes, k, quantile=settings.quantile, **calibrated)


def calibration(reference: OodReference) -> dict:
    """What `build_reference` computes on held-out images, to keep in the cache."""
    return {"threshold": reference.threshold, "calibration": reference.calibration,
            "n_calibration": reference.n_calibration}


def load_reference(run_dir: Path, spaces: list[str], settings: OodSettings = OodSettings(),
                   cache_dir: str | Path | None = None) -> OodReference | None:
    """The reference of a run in `spaces` (`serving_spaces`) from embeddings/{space}.npy (rows in samples order),
    its threshold from the cache when computed before; None when the run lacks any of those features."""
    paths = [store.embedding_path(Path(run_dir), space) for space in spaces]
    samples = store.read_table(Path(run_dir), "samples")
    if not spaces or samples is None or not all(path.exists() for path in paths):
        return None
    embeddings = {space: np.load(path) for space, path in zip(spaces, paths)}
    if any(len(features) != len(samples) for features in embeddings.values()):
        return None
    split = samples["split"].to_numpy()
    key = hashlib.sha256(json.dumps([[(space, memoised_file_sha256(path)) for space, path in zip(spaces, paths)],
                                     split.tolist(), asdict(settings)]).encode())
    cached = Path(cache_dir or default_cache_dir()) / "ood" / f"{key.hexdigest()[:32]}.json"
    calibrated = store.read_json(cached) if cached.exists() else None
    reference = build_reference(embeddings, split, settings, calibrated)
    if reference is not None and calibrated is None:
        store.write_json(cached, calibration(reference))
    return reference
