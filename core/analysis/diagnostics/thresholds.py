"""Every threshold and setting of the diagnostics, in one place. Recorded in diagnostics.json and findings.json."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.config import CONFORMAL_COVERAGE, NEAR_DUPLICATE_SIMILARITY


@dataclass(frozen=True)
class Thresholds:
    # overfitting: train minus validation balanced accuracy (fold means), as a fraction; a gap whose train score
    # lies inside validation's 95% interval is not reported
    overfit_gap_medium: float = 0.10
    overfit_gap_high: float = 0.20
    # test split: a class whose test recall interval (95%, exact binomial) is wider than this is too small to judge
    test_class_interval_width: float = 0.30
    test_classes_named: int = 3           # such classes named in the finding, widest interval first
    # classes: out-of-fold recall below these means the class fails
    class_recall_medium: float = 0.50
    class_recall_high: float = 0.25
    collapse_share: float = 0.30          # name the class a failing class is mostly predicted as, from this share
    confused_pair_share: float = 0.20     # a true->pred pair worth a finding: share of the true class's images
    # overlapping classes: cleanlab's estimated overlap of a pair (share of its images that belong on the other side)
    overlap_share: float = 0.20           # a pair overlaps from this share ...
    overlap_min_images: int = 5           # ... with at least this many out-of-fold confusions between the two ...
    overlap_p_value: float = 0.01         # ... more than chance (binomial, Bonferroni over all pairs) ...
    overlap_fold_share: float = 0.5       # ... and in at least this share of the folds (half of overlap_share there)
    overlap_listed: int = 20              # pairs written in diagnostics.json, those found first
    # long tail: classes with fewer training images (per fold) than the geometric mean of the largest and the
    # smallest class's, rounded down to 1, 2 or 5 x 10^k, when the largest has tail_min_ratio times the smallest's;
    # a finding when their mean recall is tail_recall_gap under the others' and their pooled recall's 95% interval
    # lies wholly below the others'
    tail_min_ratio: float = 4.0
    tail_recall_gap: float = 0.15
    tail_min_classes: int = 2
    tail_classes_named: int = 5          # the worst tail classes named in the finding, the rest counted
    # imbalance: largest / smallest class count
    imbalance_low: float = 1.5
    imbalance_medium: float = 3.0
    imbalance_high: float = 10.0
    # calibration (out-of-fold top-class confidence)
    calibration_bins: int = 15
    ece_medium: float = 0.08
    ece_high: float = 0.15
    # prediction sets (conformal, calibrated out-of-fold, measured on the test split's ensemble predictions)
    conformal_coverage: float = CONFORMAL_COVERAGE
    large_set_size: float = 2.0           # a class whose test images' sets hold this many classes on average
    coverage_shortfall_se: float = 2.0    # test coverage this many standard errors under the target is a finding
    # label issues: share of images cleanlab flags
    label_issue_share_medium: float = 0.05
    label_contradicted_confidence: float = 0.80   # also list a label when a held-out model gives another class this
    # label-error detectors that must agree: cleanlab (above), AUM and a kNN vote; an image is a suspected label
    # error (the headline) only when at least `agreeing_detectors` of them flag it; the headline holds as many
    # as the estimate of wrong labels (label_issues.py), the others are listed below it
    agreeing_detectors: int = 2
    aum_percentile: float = 99.0          # AUM threshold: this percentile of the threshold samples' AUM, at most 0
    neighbour_vote_share: float = 0.6     # kNN vote: this share of the image's backbone neighbours (k = neighbours)
    #                                       carry one other label, and more of them than carry its own
    # training dynamics (cartography): ambiguous from this variability of the given label's probability, else
    # easy from this mean confidence, else hard to learn
    cartography_variability: float = 0.2
    cartography_confidence: float = 0.5
    # model strength: out-of-fold balanced accuracy as a share of the way from chance (1 / classes) to 100%.
    # Below this the findings that rest on the model's probabilities say so and drop one severity level
    # (a model right 64.5% of the time on three classes, skill 0.47, makes most label-issue flags itself)
    model_weak_skill: float = 0.60
    # embedding spaces: PCA first, then one exact cosine kNN graph per space
    pca_dims: int = 50
    pca_fit_rows: int = 10_000            # PCA is fitted on a seeded subsample of this many rows
    neighbours: int = 15                  # k of the kNN graph (UMAP, duplicate candidates, separability)
    # near-duplicates: cosine similarity of mean-centred backbone embeddings (full dimension); the same
    # setting joins split units under --dedup-groups near. A fixed cosine fits no embedding of every dataset
    # (look-alike products sit at 0.7-0.9), so the threshold used is calibrated on the data's own nearest-
    # neighbour similarities: median + z * 1.4826 * MAD of each image's best cosine, kept within floor..ceiling
    near_duplicate_similarity: float = NEAR_DUPLICATE_SIMILARITY   # the floor
    near_duplicate_z: float = 4.0         # an outlier among nearest-neighbour similarities ...
    near_duplicate_ceiling: float = 0.95  # ... but never above this: a resized or re-encoded copy scores higher
    # copies: the same picture resized or re-encoded, whatever its cosine. Candidates: the backbone kNN edges and
    # pairs whose DCT perceptual hashes (64 bits) are this close; a copy when their 16x16 colour thumbnails (each
    # channel centred) correlate this much. A half-size JPEG (quality 60) copy correlates 0.98 or more on the demo
    # set (0.915 or more on the benchmark's noisy generated images); different pictures at most 0.88 on either
    # (two drawings of one emoji in one artist's 3D and flat styles can reach 0.99: one item, one group)
    pixel_hash_bits: int = 4
    copy_correlation: float = 0.92
    leakage_share_high: float = 0.10      # share of near-duplicate pairs crossing splits that makes leakage high
    # separability: share of a class's backbone neighbours with the same label
    separability_agreement: float = 0.50  # flagged below this ...
    separability_lift: float = 2.0        # ... and below this multiple of chance (the class's share)
    # outliers: mean cosine distance to the k nearest same-class neighbours, robust z within the class
    outlier_neighbours: int = 5
    outlier_z: float = 3.5
    # image properties: flags (absolute, except blur which is relative to the dataset)
    dark_brightness: float = 0.15         # mean luminance below this share of white
    blur_z: float = 3.5                   # log sharpness this many robust z below the dataset's median
    tiny_fraction: float = 0.25           # shorter side below this share of the model input (upscaled 4x or more)
    odd_aspect: float = 2.5               # one side more than this many times the other
    low_entropy: float = 2.0              # grey-level entropy in bits (8 = every level equally common)
    # shortcut check: balanced accuracy of a one-property tree of this depth under the run's folds
    shortcut_depth: int = 2
    shortcut_classes: int = 20            # one against the rest: only the classes whose values stand most apart
    shortcut_medium: float = 0.80         # one class against the rest (chance 0.5): medium from here ...
    shortcut_high: float = 0.90           # ... high from here
    error_shortcut_medium: float = 0.70   # the property predicts the out-of-fold error (chance 0.5)
    # failing slices: k-means clusters of each space whose out-of-fold error is well above the run's
    slice_cluster_size: int = 25          # k = samples / this (at least 2, at most slice_max_clusters)
    slice_max_clusters: int = 60
    slice_min_size: int = 8               # fewer members (cv) than this is never a slice
    slice_error_lift: float = 1.5         # error at least this multiple of the run's ...
    slice_error_margin: float = 0.15      # ... and this many points above it
    slice_p_value: float = 0.01           # permutation test (exact) of the cluster's errors against the rest's
    # and, without the fold where it errs most, still slice_error_lift times the run's error (not one fold's)
    slice_overlap: float = 0.5            # a slice sharing this share (Jaccard) with a better one is dropped
    slice_max: int = 8                    # slices kept, best first
    slice_property_auc: float = 0.75      # a property describes a slice when AUC(slice vs rest) is this far out
    slice_examples: int = 12              # example images named per slice (mistakes first)
    # UMAP
    umap_min_dist: float = 0.1
    umap_large_n: int = 10_000            # from this many samples: fewer epochs, spaces in parallel processes
    umap_large_epochs: int = 100          # umap-learn's own default there is 200
    umap_large_init: str = "pca"           # there: the spectral start costs a quarter of a 100k map's time
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
