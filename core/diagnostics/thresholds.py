"""Every threshold and setting of the diagnostics, in one place. Recorded in diagnostics.json and findings.json."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.config import NEAR_DUPLICATE_SIMILARITY


@dataclass(frozen=True)
class Thresholds:
    # overfitting: train minus validation accuracy (fold means), as a fraction
    overfit_gap_medium: float = 0.10
    overfit_gap_high: float = 0.20
    # classes: out-of-fold recall below these means the class fails
    class_recall_medium: float = 0.50
    class_recall_high: float = 0.25
    collapse_share: float = 0.30          # name the class a failing class is mostly predicted as, from this share
    confused_pair_share: float = 0.20     # a true->pred pair worth a finding: share of the true class's images
    # imbalance: largest / smallest class count
    imbalance_low: float = 1.5
    imbalance_medium: float = 3.0
    imbalance_high: float = 10.0
    # calibration (out-of-fold top-class confidence)
    calibration_bins: int = 15
    ece_medium: float = 0.08
    ece_high: float = 0.15
    # label issues: share of images cleanlab flags
    label_issue_share_medium: float = 0.05
    label_contradicted_confidence: float = 0.80   # also list a label when a held-out model gives another class this
    # embedding spaces: PCA first, then one exact cosine kNN graph per space
    pca_dims: int = 50
    pca_fit_rows: int = 10_000            # PCA is fitted on a seeded subsample of this many rows
    neighbours: int = 15                  # k of the kNN graph (UMAP, duplicate candidates, separability)
    # near-duplicates: cosine similarity of mean-centred backbone embeddings (full dimension); the same
    # setting joins split units under --dedup-groups near
    near_duplicate_similarity: float = NEAR_DUPLICATE_SIMILARITY
    leakage_share_high: float = 0.10      # share of near-duplicate pairs crossing splits that makes leakage high
    # separability: share of a class's backbone neighbours with the same label
    separability_agreement: float = 0.50  # flagged below this ...
    separability_lift: float = 2.0        # ... and below this multiple of chance (the class's share)
    # outliers: mean cosine distance to the k nearest same-class neighbours, robust z within the class
    outlier_neighbours: int = 5
    outlier_z: float = 3.5
    # UMAP
    umap_min_dist: float = 0.1
    umap_large_n: int = 10_000            # from this many samples: fewer epochs, spaces in parallel processes
    umap_large_epochs: int = 100          # umap-learn's own default there is 200
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
