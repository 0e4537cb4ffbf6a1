"""Conformal prediction sets: the same sets as maintained libraries on the same inputs, and the coverage they
promise on exchangeable data."""
from __future__ import annotations

import math

import numpy as np
import pytest
from crepes import ConformalClassifier
from mapie.conformity_scores import APSConformityScore, RAPSConformityScore

from core.analysis import conformal
from core.config import SetSettings
from core.testing.synthetic import classifier_outputs

CLASSES = [f"c{i}" for i in range(5)]


def crepes_sets(cal_scores, cal_labels, test_scores, alpha, class_conditional):
    """crepes' non-smoothed conformal sets over the same scores (Mondrian: one bin per class, each candidate
    class scored against its own class's calibration scores)."""
    bins = cal_labels if class_conditional else None
    fitted = ConformalClassifier().fit(cal_scores, bins=bins)
    if not class_conditional:
        return fitted.predict_p(test_scores, smoothing=False) >= alpha
    columns = [fitted.predict_p(test_scores[:, [c]], bins=np.full(len(test_scores), c), smoothing=False)[:, 0]
               for c in range(test_scores.shape[1])]
    return np.stack(columns, axis=1) >= alpha


def test_scores_are_mapies_cumulative_probability_of_the_true_class_less_its_own():
    """MAPIE's APS score is that cumulative mass less U * p(true class), U uniform: ours is its U = 1 end."""
    probs, labels = classifier_outputs(400, seed=1)
    ours = np.take_along_axis(conformal.aps_scores(probs), labels[:, None], axis=1)[:, 0]
    cumulative, _ = APSConformityScore.get_true_label_cumsum_proba(labels, probs, np.arange(len(CLASSES)))
    theirs = cumulative.ravel() - probs[np.arange(400), labels]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)   # ours are rounded to 12 decimals
    assert (conformal.aps_scores(probs)[np.arange(400), probs.argmax(1)] == 0).all()


RAPS = SetSettings("raps", raps_lambda=0.1, raps_k_reg=2)


@pytest.mark.parametrize("lam, k_reg", [(0.1, 2), (0.01, 1), (0.5, 3)])
def test_raps_scores_are_mapies_regularised_scores_of_the_same_aps_end(lam, k_reg):
    """MAPIE's RAPS adds lambda * max(0, rank - k) (rank 1-based) to its APS score: ours adds the same to ours."""
    probs, labels = classifier_outputs(400, seed=4)
    settings = SetSettings("raps", raps_lambda=lam, raps_k_reg=k_reg)
    ours = np.take_along_axis(conformal.aps_scores(probs, settings), labels[:, None], axis=1)[:, 0]
    cumulative, rank = APSConformityScore.get_true_label_cumsum_proba(labels, probs, np.arange(len(CLASSES)))
    aps_end = cumulative - probs[np.arange(400), labels][:, None]
    theirs = RAPSConformityScore._regularize_conformity_score(np.array([k_reg]), lam, aps_end, rank)
    np.testing.assert_allclose(ours, theirs.ravel(), atol=1e-12)
    assert (rank > k_reg).any() and (rank <= k_reg).any()   # both sides of the penalty's corner are exercised
    assert (conformal.aps_scores(probs, settings)[np.arange(400), probs.argmax(1)] == 0).all()   # never empty


def test_raps_without_a_penalty_is_aps_and_a_penalty_keeps_unlikely_classes_out():
    probs, labels = classifier_outputs(3000, signal=1.5, seed=5)
    cal, new = slice(0, 1500), slice(1500, None)
    aps = conformal.prediction_sets(probs[new], conformal.thresholds(probs[cal], labels[cal], 0.1))
    zero = SetSettings("raps", raps_lambda=0.0, raps_k_reg=1)
    same = conformal.prediction_sets(probs[new], conformal.thresholds(probs[cal], labels[cal], 0.1, settings=zero),
                                     zero)
    assert (aps == same).all()
    raps = conformal.prediction_sets(probs[new], conformal.thresholds(probs[cal], labels[cal], 0.1, settings=RAPS),
                                     RAPS)
    assert raps.sum(1).max() < aps.sum(1).max()   # the long sets are cut
    ranks = np.argsort(np.argsort(-probs[new], axis=1, kind="stable"), axis=1)
    assert (raps == (ranks < raps.sum(1, keepdims=True))).all()   # still the top classes in order


@pytest.mark.parametrize("settings", [SetSettings(), RAPS], ids=["aps", "raps"])
@pytest.mark.parametrize("class_conditional", [False, True])
@pytest.mark.parametrize("alpha", [0.2, 0.1, 0.05])
def test_sets_are_crepes_sets_on_the_same_scores(class_conditional, alpha, settings):
    # class sizes chosen so that alpha * (n + 1) is never a whole number: there crepes keeps p = alpha
    # (one order statistic more conservative) while the ceil((n+1)(1-alpha)) rule drops it
    sizes = [83, 120, 57, 211, 96]
    probs, labels = classifier_outputs(2000, signal=2.5, seed=2)
    keep = np.concatenate([np.flatnonzero(labels == c)[:size] for c, size in enumerate(sizes)])
    probs, labels = probs[keep], labels[keep]
    test_probs, _ = classifier_outputs(300, signal=2.5, seed=3)
    cal_scores = conformal.aps_scores(probs, settings)[np.arange(len(labels)), labels]
    ours = conformal.prediction_sets(test_probs, conformal.thresholds(probs, labels, alpha, class_conditional,
                                                                      settings), settings)
    theirs = crepes_sets(cal_scores, labels, conformal.aps_scores(test_probs, settings), alpha, class_conditional)
    assert (ours == theirs).all()
    assert ours.sum(1).min() >= 1 and 1 < ours.sum(1).mean() < 5   # neither trivial nor everything


def test_the_quantile_has_the_finite_sample_correction_and_is_infinite_with_too_few_scores():
    scores = np.arange(1, 20) / 20.0                        # 19 scores: rank ceil(20 * 0.9) = 18
    assert conformal.conformal_quantile(scores, 0.1) == pytest.approx(18 / 20)
    assert conformal.conformal_quantile(scores[:8], 0.1) == math.inf   # rank ceil(9 * 0.9) = 9 > 8
    probs = np.array([[0.7, 0.2, 0.1]] * 4)
    thresholds = conformal.thresholds(probs, np.array([0, 0, 0, 1]), 0.1, class_conditional=True)
    assert (thresholds == math.inf).all()                  # a class with 1 or 3 images: every class stays in
    assert conformal.prediction_sets(probs, thresholds).all()


@pytest.mark.parametrize("settings", [SetSettings(), RAPS], ids=["aps", "raps"])
@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_coverage_holds_on_exchangeable_data_within_sampling_error(coverage, settings):
    n_cal, n_test = 2000, 20000
    probs, labels = classifier_outputs(n_cal + n_test, sharpness=3.0, seed=12)   # over-confident: still holds
    members = conformal.prediction_sets(probs[n_cal:], conformal.thresholds(
        probs[:n_cal], labels[:n_cal], 1 - coverage, settings=settings), settings)
    result = conformal.coverage_by_class(members, labels[n_cal:], CLASSES)
    # Over calibration sets, coverage is Beta distributed around k / (n+1), sd about sqrt(a(1-a)/n_cal); the
    # test split adds its own binomial error. Only a floor: without APS's random term, scores tie (every image
    # whose true class is on top scores 0), so coverage may exceed the target.
    spread = 3 * math.sqrt(coverage * (1 - coverage) * (1 / n_cal + 1 / n_test))
    assert result["coverage"] >= coverage - spread
    assert result["n"] == n_test and sum(row["n"] for row in result["per_class"]) == n_test


def test_class_conditional_sets_cover_a_rare_class_the_model_confuses_where_marginal_sets_do_not():
    shares, signal = [0.3, 0.3, 0.3, 0.07, 0.03], [3.0, 3.0, 3.0, 3.0, -1.0]   # class c4: rare and hard
    probs, labels = classifier_outputs(12000, shares=shares, signal=signal, seed=5)
    cal, test = slice(0, 6000), slice(6000, None)

    def per_class(class_conditional):
        members = conformal.prediction_sets(probs[test], conformal.thresholds(probs[cal], labels[cal], 0.1,
                                                                               class_conditional))
        return conformal.coverage_by_class(members, labels[test], CLASSES)["per_class"]

    marginal, mondrian = per_class(False), per_class(True)
    assert marginal[4]["coverage"] < 0.8                   # the marginal guarantee is an average over classes
    for row in mondrian:                                   # each class gets its own
        assert row["coverage"] >= 0.9 - 3 * math.sqrt(0.09 / row["n"]), row
    assert mondrian[4]["mean_set_size"] > marginal[4]["mean_set_size"]


def test_sets_shrink_as_the_model_gets_better():
    sizes = []
    for signal in (0.5, 1.5, 3.0, 5.0):
        probs, labels = classifier_outputs(4000, signal=signal, seed=6)
        members = conformal.prediction_sets(probs[2000:], conformal.thresholds(probs[:2000], labels[:2000], 0.1))
        sizes.append(members.sum(1).mean())
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 3 and sizes[-1] < 1.5, sizes
