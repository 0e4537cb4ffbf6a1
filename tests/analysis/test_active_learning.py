"""Which pool images to label next: TypiClust and BADGE on constructed embeddings."""
import numpy as np
import pytest

from core.analysis.active_learning import badge, choose_strategy, gradient_embedding, pick, typicality, typiclust
from core.config import PickSettings
from core.errors import UserError

DIM = 16


def blob(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float = 0.05) -> np.ndarray:
    """`n` points around `centre` with the centre itself first (the most typical point of the blob)."""
    ring = centre + spread * rng.normal(size=(n - 1, len(centre)))
    return np.vstack([centre, ring]).astype(np.float32)


def centres(rng: np.random.Generator, k: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[:k] * 5 + 0.01 * rng.normal(size=(k, DIM)).astype(np.float32)


def test_typiclust_picks_the_centres_of_the_largest_uncovered_clusters_first():
    rng = np.random.default_rng(0)
    a, b, c = centres(rng, 3)
    labelled = blob(rng, a, 3)                                   # cluster A is covered
    pool = np.vstack([blob(rng, a, 30), blob(rng, b, 20), blob(rng, c, 12)])
    picks = typiclust(labelled, pool, 2, np.ones(len(pool), bool))
    assert picks["row"].tolist() == [30, 50]                     # B's centre (largest uncovered), then C's
    assert picks["cluster_labelled"].tolist() == [0, 0]
    assert picks["cluster_size"].tolist() == [20, 12]


def test_typiclust_never_picks_an_ineligible_row_and_picks_distinct_rows_beyond_the_clusters():
    rng = np.random.default_rng(1)
    a, b = centres(rng, 2)
    labelled = blob(rng, a + 0.01, 2)
    pool = np.vstack([blob(rng, a, 10), blob(rng, b, 10)])
    eligible = np.ones(len(pool), bool)
    eligible[10] = False                                         # B's centre: e.g. a near-duplicate of a labelled image
    picks = typiclust(labelled, pool, 6, eligible)
    assert len(picks) == 6 and picks["row"].is_unique and 10 not in set(picks["row"])
    assert picks["row"].iloc[0] >= 10                            # still B first: it is the uncovered one
    assert typiclust(labelled, pool, 50, eligible)["row"].nunique() == eligible.sum()   # the pool runs out first


def test_typicality_is_highest_at_the_centre_of_a_blob():
    rng = np.random.default_rng(2)
    points = blob(rng, np.zeros(DIM, np.float32), 25)
    assert np.argmax(typicality(points, 20)) == 0
    assert typicality(points[:1], 20).tolist() == [0.0]


def test_gradient_embedding_is_the_cross_entropy_gradient_of_a_linear_head():
    features = np.array([[1.0, 2.0]], np.float32)
    probabilities = np.array([[0.7, 0.3]], np.float32)
    # d CE / d W for label argmax = 0: (p - onehot) outer h
    assert np.allclose(gradient_embedding(features, probabilities), [[-0.3, -0.6, 0.3, 0.6]])


def test_badge_prefers_uncertain_images_and_picks_distinct_eligible_rows():
    rng = np.random.default_rng(3)
    labelled = rng.normal(size=(10, DIM)).astype(np.float32)
    pool = rng.normal(size=(60, DIM)).astype(np.float32)
    confident = np.tile([[1.0, 0.0, 0.0]], (60, 1))
    uncertain = rng.dirichlet([1, 1, 1], size=60)
    probabilities = np.where(np.arange(60)[:, None] < 40, confident, uncertain).astype(np.float32)
    eligible = np.ones(60, bool)
    eligible[45] = False
    picks = badge(labelled, pool, probabilities, 8, eligible)
    assert len(picks) == 8 and picks["row"].is_unique and 45 not in set(picks["row"])
    # a confident image has a zero gradient: after the first centre, k-means++ never draws another of them
    assert (picks["row"] < 40).sum() <= 1


def test_auto_chooses_typiclust_for_few_labels_per_class_and_badge_beyond():
    rule = PickSettings().typiclust_per_class
    assert choose_strategy("auto", 5, rule * 3 - 6, 3) == "typiclust"
    assert choose_strategy("auto", 5, rule * 3 - 5, 3) == "badge"
    assert choose_strategy("badge", 0, 1, 3) == "badge"
    with pytest.raises(UserError, match="--strategy nope: unknown"):
        choose_strategy("nope", 0, 1, 3)


def test_pick_refuses_a_budget_below_one_and_says_why_each_image_was_picked():
    rng = np.random.default_rng(4)
    labelled, pool = rng.normal(size=(6, DIM)), rng.normal(size=(30, DIM))
    probabilities = rng.dirichlet([1, 1], size=30)
    with pytest.raises(UserError, match="--budget 0"):
        pick(labelled, pool, probabilities, 0, np.ones(30, bool), "auto", 2)
    used, picks = pick(labelled, pool, probabilities, 4, np.ones(30, bool), "auto", 2)
    assert used == "typiclust" and list(picks.columns) == ["row", "score", "reason"] and len(picks) == 4
    assert all(reason.startswith("most typical pool image of a cluster") for reason in picks["reason"])
    used, picks = pick(labelled, pool, probabilities, 4, np.ones(30, bool), "badge", 2)
    assert used == "badge" and all("gradient length" in reason for reason in picks["reason"])
