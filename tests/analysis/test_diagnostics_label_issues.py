"""Label issues: every held-out sample ranked by label quality, cleanlab's flag shown, the test split included."""
import numpy as np
import pandas as pd

from core.analysis.diagnostics.label_issues import COLUMNS, label_issues
from core.analysis.diagnostics.thresholds import Thresholds

CLASSES = ["Bag", "Dress", "Sneaker"]


def clean_easy_part(n, n_flips, first_id, seed, sure_flips):
    """A model that is 98.5-99.9% sure of the true class (clean, easy data), and `n_flips` planted flips: the
    first `sure_flips` with 99% on the true class, the others contradicted at only 84-89%."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 3, n)
    confidence = rng.uniform(0.985, 0.999, n)
    flipped = rng.choice(n, n_flips, replace=False)
    confidence[flipped] = [0.99 if j < sure_flips else rng.uniform(0.84, 0.89) for j in range(n_flips)]
    probs = np.repeat(((1 - confidence) / 2)[:, None], 3, axis=1)
    probs[np.arange(n), true] = confidence
    given = true.copy()
    given[flipped] = (true[flipped] + 1) % 3
    rows = pd.DataFrame({"sample_id": first_id + np.arange(n), "label": given})
    return rows, probs, set((first_id + flipped).tolist()), true


def test_clear_flips_come_first_in_both_parts_with_cleanlabs_flag_shown_and_the_test_ones_marked():
    cv, cv_probs, cv_flips, cv_true = clean_easy_part(600, 9, 0, seed=0, sure_flips=5)
    test, test_probs, test_flips, _ = clean_easy_part(150, 3, 600, seed=1, sure_flips=1)
    samples = pd.DataFrame({"sample_id": np.arange(750), "path": [f"img/{i}.jpg" for i in range(750)]})

    issues, _ = label_issues(cv, cv_probs, test, test_probs, samples, CLASSES, Thresholds())

    assert list(issues.columns) == COLUMNS
    for _, rows in issues.groupby(["split", "agreed"]):   # within a part, the strongest evidence first
        assert rows["quality"].is_monotonic_increasing and rows["evidence"].is_monotonic_decreasing
    in_cv, in_test = issues[issues["split"] == "cv"], issues[issues["split"] == "test"]
    # every planted flip is listed, ahead of everything else of its part, and ranked first within its part
    assert set(in_cv["sample_id"][:9]) == cv_flips and sorted(in_cv["rank"][:9]) == list(range(1, 10))
    assert set(in_test["sample_id"][:3]) == test_flips and sorted(in_test["rank"][:3]) == [1, 2, 3]
    assert (in_cv["part_size"] == 600).all() and (in_test["part_size"] == 150).all()
    # cleanlab's own filter is conservative on such data: the flag says which of them it found
    assert not issues[issues["sample_id"].isin(cv_flips)]["flagged"].all()
    assert in_test["affects_test_metric"].all() and not in_cv["affects_test_metric"].any()
    row = issues.set_index("sample_id").loc[min(cv_flips)]
    assert row["label"] == CLASSES[cv["label"][min(cv_flips)]]
    assert row["suggested_label"] == CLASSES[cv_true[min(cv_flips)]] and row["suggested_confidence"] > 0.8


def test_without_a_test_split_only_the_cross_validation_part_is_ranked():
    cv, cv_probs, cv_flips, _ = clean_easy_part(300, 4, 0, seed=2, sure_flips=4)
    samples = pd.DataFrame({"sample_id": np.arange(300), "path": [f"img/{i}.jpg" for i in range(300)]})
    empty = cv.iloc[:0]
    issues, _ = label_issues(cv, cv_probs, empty, cv_probs[:0], samples, CLASSES, Thresholds())
    assert set(issues["split"]) == {"cv"} and cv_flips <= set(issues["sample_id"])


def test_the_neighbour_vote_flags_an_image_whose_neighbours_mostly_carry_one_other_label():
    from core.analysis.diagnostics.label_issues import neighbour_vote
    labels = np.array([0, 0, 0, 1, 1, 2])
    neighbours = np.array([[1, 2, 3, 4], [0, 2, 3, 5], [3, 4, 5, 1], [4, 0, 1, 2], [3, 0, 1, 2], [0, 1, 3, 4]])
    vote = neighbour_vote(neighbours, labels, 3, Thresholds(neighbour_vote_share=0.5))
    assert vote["neighbour_share"].tolist() == [0.5, 0.5, 0.25, 0.25, 0.25, 0.0]
    # 0: half its neighbours say 1, half its own label: a tie is no vote against it
    assert vote["neighbours_flag"].tolist() == [False, False, True, True, True, True]
    assert vote["neighbour_index"].tolist()[2:5] == [1, 0, 0]
    assert vote["neighbour_margin"].tolist() == [0.0, -0.25, 0.25, 0.5, 0.5, 0.5]
    stricter = neighbour_vote(neighbours, labels, 3, Thresholds(neighbour_vote_share=0.6))
    assert stricter["neighbours_flag"].tolist() == [False, False, False, True, True, False]


def detector_evidence(n, aum_flagged, vote_flagged, aum_value=-1.0, margin=0.6):
    """AUM and neighbour-vote rows for n samples: all clean (AUM 1.0, every neighbour agrees) but the listed."""
    dynamics = pd.DataFrame({"sample_id": np.arange(n), "aum": 1.0, "aum_flag": False})
    dynamics.loc[aum_flagged, ["aum", "aum_flag"]] = [aum_value, True]
    vote = pd.DataFrame({"neighbour_share": 1.0, "neighbour_index": 0, "neighbour_margin": -1.0,
                         "neighbours_flag": False}, index=range(n))
    vote.loc[vote_flagged, ["neighbour_share", "neighbour_margin", "neighbours_flag"]] = [0.2, margin, True]
    return dynamics, vote


def test_errors_every_detector_sees_head_the_list_and_an_image_one_detector_flags_stays_below_it():
    from core.analysis.diagnostics.label_issues import summarize
    cv, cv_probs, cv_flips, _ = clean_easy_part(300, 6, 0, seed=3, sure_flips=0)
    samples = pd.DataFrame({"sample_id": np.arange(300), "path": [f"img/{i}.jpg" for i in range(300)]})
    flips = sorted(cv_flips)
    dynamics, vote = detector_evidence(300, flips + [10], flips + [11])
    # one detector alone, at its most extreme: the lowest AUM of all (10), the strongest vote of all (11)
    dynamics.loc[10, "aum"], vote.loc[11, "neighbour_margin"] = -3.0, 1.0
    issues, estimate = label_issues(cv, cv_probs, cv.iloc[:0], cv_probs[:0], samples, CLASSES, Thresholds(),
                                    dynamics, vote)
    assert estimate["count"] == 7 and estimate["method"] == "AUM (threshold samples)"   # AUM flags 7
    # 7 estimated, but only the 6 flips have two detectors or more: the headline holds them and nothing else
    assert set(issues.loc[issues["agreed"], "sample_id"]) == set(flips)
    assert issues["agreed"].tolist()[:6] == [True] * 6 and (issues.loc[:5, "detectors"] == 3).all()
    below = issues[~issues["agreed"]].set_index("sample_id")
    assert {10, 11} <= set(below.index) and (below.loc[[10, 11], "detectors"] == 1).all()
    assert issues.loc[issues["agreed"], "evidence"].min() > below.loc[[10, 11], "evidence"].max()
    stats = summarize(issues, 300, 0, ["cleanlab", "AUM", "neighbours"], estimate)
    assert stats["agreed"] == 6 and stats["single"] == len(issues) - 6 and stats["estimated_errors"]["count"] == 7
    assert stats["by_detector"]["AUM"] == 7 and stats["by_detector"]["neighbours"] == 7


def test_the_headline_count_follows_the_estimate_and_its_share_sizes_the_test_splits():
    cv, cv_probs, cv_flips, _ = clean_easy_part(300, 6, 0, seed=4, sure_flips=0)
    test, test_probs, test_flips, _ = clean_easy_part(200, 4, 300, seed=5, sure_flips=0)
    samples = pd.DataFrame({"sample_id": np.arange(500), "path": [f"img/{i}.jpg" for i in range(500)]})
    flips = sorted(cv_flips)
    for aum_flagged in (flips[:3], flips):
        dynamics, vote = detector_evidence(500, aum_flagged, flips + sorted(test_flips))
        issues, estimate = label_issues(cv, cv_probs, test, test_probs, samples, CLASSES, Thresholds(),
                                        dynamics.iloc[:300], vote)
        agreed = issues[issues["agreed"]]
        assert estimate["count"] == len(aum_flagged) and estimate["share"] == len(aum_flagged) / 300
        # the cv headline is as long as the estimate, the flips with the most evidence (AUM's three) first
        assert set(agreed.loc[agreed["split"] == "cv", "sample_id"]) == set(aum_flagged)
        # the test split (no AUM) gets the same share of its 200 images: 2 or 4 of its 4 flips
        in_test = agreed.loc[agreed["split"] == "test", "sample_id"]
        assert len(in_test) == round(estimate["share"] * 200) and set(in_test) <= test_flips
    # every listed flip the headline leaves out is still listed, below it
    assert cv_flips | test_flips <= set(issues["sample_id"])


def test_without_training_dynamics_cleanlabs_confident_joint_estimates_the_count():
    from cleanlab.count import num_label_issues
    cv, cv_probs, cv_flips, _ = clean_easy_part(300, 9, 0, seed=6, sure_flips=3)
    samples = pd.DataFrame({"sample_id": np.arange(300), "path": [f"img/{i}.jpg" for i in range(300)]})
    _, vote = detector_evidence(300, [], sorted(cv_flips))
    issues, estimate = label_issues(cv, cv_probs, cv.iloc[:0], cv_probs[:0], samples, CLASSES, Thresholds(),
                                    None, vote)
    expected = num_label_issues(cv["label"].to_numpy(), cv_probs / cv_probs.sum(axis=1, keepdims=True),
                                estimation_method="off_diagonal_calibrated")
    assert estimate["method"] == "cleanlab (confident joint)" and estimate["count"] == expected
    assert issues["agreed"].sum() == min(expected, (issues["detectors"] >= 2).sum())
    assert set(issues.loc[issues["agreed"], "sample_id"]) <= cv_flips
