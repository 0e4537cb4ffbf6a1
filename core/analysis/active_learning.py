"""Which unlabelled images to label next: a ranked list of `budget` pool images, for small budgets.

Two strategies from the literature, on the run's reference space (the pretrained backbone's features, unit length):

- TypiClust (Hacohen, Dekel and Weinshall, "Active learning on a budget: opposite strategies suit high and low
  budgets", ICML 2022). Labelled and pool images together are clustered by k-means into (labelled + budget)
  clusters (at most `max_clusters`). Each pick takes the cluster with the fewest labelled images, the largest
  first among those (clusters under `min_cluster_size` images are passed over while others remain), and from it
  the most typical eligible pool image: typicality is the inverse of the mean Euclidean distance to its
  `typicality_k` nearest neighbours inside its cluster. Uncertainty plays no part: with a handful of labels per
  class the models' uncertainty is itself unreliable, and the paper finds uncertainty sampling then does worse
  than random picks, while typical images of uncovered regions do better.
- BADGE (Ash, Zhang, Krishnamurthy, Langford and Agarwal, "Deep batch active learning by diverse, uncertain
  gradient lower bounds", ICLR 2020). Each pool image's gradient embedding is the gradient of the cross-entropy
  loss with respect to a linear head's weights, taking the ensemble's most probable class as the label:
  (p - onehot(argmax p)) ⊗ h, with p the fold ensemble's mean probabilities and h the features the head reads
  (here the pretrained features, PCA-reduced to `badge_dims` so the outer product stays small). k-means++ seeding
  (D² sampling, one trial per centre as in the paper; scikit-learn's `kmeans_plusplus`, which draws the first
  centre at random where the paper's code takes the longest gradient) on these picks images that are both
  uncertain (long gradient) and unlike each other.

`auto` picks TypiClust while labelled + budget is under `typiclust_per_class` images per class (the low-budget
regime of Hacohen et al., a few labels per class), else BADGE; bench/bench_pool.py measures both against random
picks on the demo dataset.

Pool images identical to, or near-duplicates of, labelled images are not eligible (the caller says which);
labelling them again teaches the models nothing new.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from core.analysis.similar import normalised
from core.config import PICK_STRATEGIES, PickSettings
from core.errors import UserError


def choose_strategy(strategy: str, n_labelled: int, budget: int, n_classes: int,
                    settings: PickSettings = PickSettings()) -> str:
    """The strategy `auto` stands for, or `strategy` itself when it names one."""
    if strategy not in PICK_STRATEGIES:
        raise UserError(f"--strategy {strategy}: unknown; choose one of {', '.join(PICK_STRATEGIES)}")
    if strategy != "auto":
        return strategy
    return "typiclust" if n_labelled + budget < settings.typiclust_per_class * n_classes else "badge"


def typicality(unit: np.ndarray, k: int) -> np.ndarray:
    """1 / mean Euclidean distance to each row's k nearest other rows (k capped by the rows there are); a
    lone row gets 0."""
    n = len(unit)
    if n < 2:
        return np.zeros(n)
    k = min(k, n - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(unit).kneighbors(unit)
    return 1.0 / np.maximum(distances[:, 1:].mean(axis=1), 1e-12)


def typiclust(labelled: np.ndarray, pool: np.ndarray, budget: int, eligible: np.ndarray,
              settings: PickSettings = PickSettings()) -> pd.DataFrame:
    """TypiClust's picks among the `eligible` pool rows, in pick order: `row` (pool row), `score` (typicality),
    `cluster`, `cluster_size`, `cluster_labelled` (labelled images in it when picked)."""
    unit = normalised(np.concatenate([labelled, pool]))
    n_labelled = len(labelled)
    n_clusters = int(min(n_labelled + budget, settings.max_clusters, len(unit)))
    clusters = KMeans(n_clusters, n_init=3, random_state=settings.seed).fit_predict(unit)
    sizes = np.bincount(clusters, minlength=n_clusters)
    covered = np.bincount(clusters[:n_labelled], minlength=n_clusters)
    pool_clusters = clusters[n_labelled:]
    typical = np.zeros(len(pool))
    for c in range(n_clusters):   # within the cluster, labelled images included as neighbours
        members = np.flatnonzero(clusters == c)
        scores = typicality(unit[members], settings.typicality_k)
        in_pool = members >= n_labelled
        typical[members[in_pool] - n_labelled] = scores[in_pool]
    available = np.asarray(eligible, dtype=bool).copy()
    rows = []
    while len(rows) < budget and available.any():
        open_clusters = np.unique(pool_clusters[available])
        big = open_clusters[sizes[open_clusters] >= settings.min_cluster_size]
        candidates = big if len(big) else open_clusters
        # fewest labelled first, then largest (np.lexsort: the last key is the primary one)
        best = candidates[np.lexsort((-sizes[candidates], covered[candidates]))[0]]
        members = np.flatnonzero(available & (pool_clusters == best))
        row = members[np.argmax(typical[members])]
        rows.append({"row": int(row), "score": float(typical[row]), "cluster": int(best),
                     "cluster_size": int(sizes[best]), "cluster_labelled": int(covered[best])})
        covered[best] += 1
        available[row] = False
    return pd.DataFrame(rows, columns=["row", "score", "cluster", "cluster_size", "cluster_labelled"])


def gradient_embedding(features: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """BADGE's per-image gradient of the cross-entropy at the predicted class w.r.t. a linear head's weights:
    (p - onehot(argmax p)) ⊗ h, flattened to [n, classes x dims]."""
    residual = probabilities.astype(np.float32).copy()
    residual[np.arange(len(residual)), residual.argmax(axis=1)] -= 1.0
    return (residual[:, :, None] * features.astype(np.float32)[:, None, :]).reshape(len(features), -1)


def badge(labelled: np.ndarray, pool: np.ndarray, probabilities: np.ndarray, budget: int, eligible: np.ndarray,
          settings: PickSettings = PickSettings()) -> pd.DataFrame:
    """BADGE's picks among the `eligible` pool rows, in pick order: `row`, `score` (gradient embedding length:
    how much labelling it would move the head)."""
    unit = normalised(np.concatenate([labelled, pool]))
    dims = int(min(settings.badge_dims, unit.shape[1], len(unit)))
    reduced = PCA(dims, random_state=settings.seed).fit(unit).transform(unit[len(labelled):])
    gradients = gradient_embedding(reduced, probabilities)
    candidates = np.flatnonzero(eligible)
    k = min(budget, len(candidates))
    if k == 0:
        return pd.DataFrame(columns=["row", "score"])
    _, chosen = kmeans_plusplus(gradients[candidates], k, random_state=settings.seed, n_local_trials=1)
    rows = candidates[chosen]
    return pd.DataFrame({"row": rows.astype(int), "score": np.linalg.norm(gradients[rows], axis=1)})


def pick(labelled: np.ndarray, pool: np.ndarray, probabilities: np.ndarray, budget: int, eligible: np.ndarray,
         strategy: str, n_classes: int, settings: PickSettings = PickSettings()) -> tuple[str, pd.DataFrame]:
    """(the strategy used, its picks: `row`, `score`, `reason` in words, pick order). `labelled`: features of the
    run's labelled images; `pool`, `probabilities`: the pool's features and ensemble probabilities."""
    if budget < 1:
        raise UserError(f"--budget {budget}: must be a positive whole number of images to label")
    used = choose_strategy(strategy, len(labelled), budget, n_classes, settings)
    if used == "typiclust":
        picks = typiclust(labelled, pool, budget, eligible, settings)
        picks["reason"] = [f"most typical pool image of a cluster of {r.cluster_size} images with {r.cluster_labelled} "
                           f"labelled (typicality {r.score:.2f})" for r in picks.itertuples()]
    else:
        picks = badge(labelled, pool, probabilities, budget, eligible, settings)
        confidence = probabilities.max(axis=1)
        picks["reason"] = [f"k-means++ pick on gradient embeddings: gradient length {r.score:.2f}, ensemble "
                           f"confidence {confidence[r.row]:.0%}" for r in picks.itertuples()]
    return used, picks[["row", "score", "reason"]].reset_index(drop=True)
