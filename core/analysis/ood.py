"""Out-of-distribution score: how far a new image is from the run's training images in the pretrained space.

Deep nearest neighbours (Sun et al., "Out-of-distribution detection with deep nearest neighbors", ICML 2022):
features of the pretrained backbone (the run's reference space, embeddings/backbone.npy) scaled to unit length;
an image's score is the Euclidean distance to its k-th nearest training image (the cv split, which the fold models
learnt from). A large score means nothing the models were trained on looks like it.

k: Sun et al. use k = 50 on CIFAR-10's 50,000 training images; a small dataset has few images per class, so k
grows with the reference instead: 2% of it, at least 1 and at most 50. Like Sun et al. on ImageNet (a 1% sample),
a large training set is represented by a seeded random sample of `max_reference` images: every request scans the
whole reference (exact search), and a scan of 16,000 x 2048 floats took 60-170 ms on the shared 2-core machine
(bench/bench_ood_drift.py --scale), longer than the forward pass it accompanies.

Calibration: the threshold is the 95th percentile of the scores of held-out images of known classes, so a flag
means "farther from the training images than 95% of held-out images". Held out are the run's test split images
(scored against the cv images they were never part of) when there are at least `min_calibration` of them; else
each cv image scored against the other cv images (leave-one-out). That search is the slow part of loading
(every held-out image against every training image), so its result is kept in the content-addressed cache
(`default_cache_dir()`/ood), keyed by the bytes of backbone.npy, the splits and the settings.
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


@dataclass(frozen=True)
class OodSettings:
    quantile: float = 0.95        # share of held-out images of known classes that are not flagged
    k_share: float = 0.02         # k = this share of the reference images ...
    max_k: int = 50               # ... at most Sun et al.'s k
    min_calibration: int = 20     # fewer test images than this: calibrate leave-one-out on the cv images
    max_reference: int = 5000     # cv images in the reference: a seeded random sample when there are more
    seed: int = 0


@dataclass
class OodReference:
    """The training images' index and the calibrated threshold of one run."""
    index: faiss.IndexFlatIP     # unit-length pretrained features of the cv images
    k: int
    threshold: float
    quantile: float
    calibration: str             # "test split" or "leave-one-out"
    n_calibration: int

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Distance of each row (pretrained features, any scale) to its k-th nearest training image."""
        if len(embeddings) == 0:
            return np.zeros(0)
        return kth_distance(self.index, normalised(np.asarray(embeddings)), self.k)

    def describe(self) -> dict:
        """What a reader needs to interpret a score (predict's CSV note, GET /model)."""
        return {"method": "distance to the k-th nearest training image, unit-length pretrained features "
                          "(Sun et al. 2022)",
                "k": self.k, "n_reference": int(self.index.ntotal), "threshold": self.threshold,
                "quantile": self.quantile, "calibration": self.calibration, "n_calibration": self.n_calibration}


def choose_k(n_reference: int, settings: OodSettings = OodSettings()) -> int:
    return int(np.clip(round(settings.k_share * n_reference), 1, min(settings.max_k, max(1, n_reference - 1))))


def kth_distance(index: faiss.IndexFlatIP, unit: np.ndarray, k: int, skip_self: bool = False) -> np.ndarray:
    """Euclidean distance of unit rows to their k-th nearest indexed row (the nearest skipped with `skip_self`).
    On unit vectors |a - b|^2 = 2 - 2 a.b, so the inner-product index gives it exactly."""
    similarity, _ = index.search(np.ascontiguousarray(unit, dtype=np.float32), k + int(skip_self))
    return np.sqrt(np.clip(2.0 - 2.0 * similarity[:, -1].astype(np.float64), 0.0, None))


def build_reference(embeddings: np.ndarray, split: np.ndarray, settings: OodSettings = OodSettings(),
                    calibrated: dict | None = None) -> OodReference | None:
    """The reference of a run from its pretrained features and each row's split ("cv" / "test"); None when it has
    fewer than two cv images. `calibrated`: a threshold computed before for the same features (`calibration`)."""
    split = np.asarray(split)
    rows = np.flatnonzero(split == "cv")
    if len(rows) > settings.max_reference:
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows, settings.max_reference, replace=False))
    train = normalised(np.asarray(embeddings)[rows])
    if len(train) < 2:
        return None
    index = faiss.IndexFlatIP(train.shape[1])
    index.add(train)
    k = choose_k(len(train), settings)
    if calibrated is None:
        held = np.asarray(embeddings)[split == "test"]
        if len(held) >= settings.min_calibration:
            how, held_scores = "test split", kth_distance(index, normalised(held), k)
        else:
            how, held_scores = "leave-one-out", kth_distance(index, train, k, skip_self=True)
        calibrated = {"threshold": float(np.quantile(held_scores, settings.quantile)), "calibration": how,
                      "n_calibration": len(held_scores)}
    return OodReference(index, k, quantile=settings.quantile, **calibrated)


def calibration(reference: OodReference) -> dict:
    """What `build_reference` computes on held-out images, to keep in the cache."""
    return {"threshold": reference.threshold, "calibration": reference.calibration,
            "n_calibration": reference.n_calibration}


def load_reference(run_dir: Path, settings: OodSettings = OodSettings(),
                   cache_dir: str | Path | None = None) -> OodReference | None:
    """The reference of a run from embeddings/backbone.npy (rows in samples order), its threshold from the cache
    when computed before; None when the run has no such features."""
    path = store.embedding_path(Path(run_dir), "backbone")
    samples = store.read_table(Path(run_dir), "samples")
    if not path.exists() or samples is None:
        return None
    embeddings = np.load(path)
    if len(samples) != len(embeddings):
        return None
    split = samples["split"].to_numpy()
    key = hashlib.sha256(json.dumps([memoised_file_sha256(path), split.tolist(), asdict(settings)]).encode())
    cached = Path(cache_dir or default_cache_dir()) / "ood" / f"{key.hexdigest()[:32]}.json"
    calibrated = store.read_json(cached) if cached.exists() else None
    reference = build_reference(embeddings, split, settings, calibrated)
    if reference is not None and calibrated is None:
        store.write_json(cached, calibration(reference))
    return reference
