"""Training dynamics per image: cartography, AUM with its threshold samples, forgetting events."""
import numpy as np
import pytest

from core.analysis.diagnostics.dynamics import (FoldDynamics, aum_threshold, forgetting_events, image_curves,
                                                image_dynamics, load_dynamics, summary)
from core.analysis.diagnostics.thresholds import Thresholds
from core.store import run_store

TH = Thresholds()
NAN = np.nan


def _fold(fold, ids, prob, margin, threshold=()):
    return FoldDynamics(fold, np.asarray(ids), np.asarray(prob, np.float32), np.asarray(margin, np.float32),
                        np.asarray(threshold, np.float32))


def test_forgetting_counts_right_then_wrong_between_epochs_that_showed_the_image():
    correct = np.array([[1, 0, 1], [0, 0, NAN], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    assert forgetting_events(correct).tolist() == [2, 0, 1]   # the NaN epoch is skipped, not a change


def test_cartography_regions_aum_and_forgetting_averaged_over_the_folds_that_trained_each_image():
    easy = [0.9, 0.95, 0.97, 0.99]
    swings = [0.2, 0.9, 0.1, 0.8]
    hard = [0.1, 0.1, 0.15, 0.1]
    fold0 = _fold(0, [0, 1, 2], np.array([easy, swings, hard]).T,
                  np.array([[3, 4, 5, 6], [-1, 2, -2, 1], [-3, -3, -2, -3]]).T, threshold=[-5, -4, -1])
    fold1 = _fold(1, [0, 2], np.array([easy, hard]).T, np.array([[5, 5, 5, 5], [-1, -1, -1, -1]]).T,
                  threshold=[-6, -2])
    table, threshold = image_dynamics([fold0, fold1], TH)
    assert table["sample_id"].tolist() == [0, 1, 2] and table["folds"].tolist() == [2, 1, 2]
    assert table["region"].tolist() == ["easy", "ambiguous", "hard"]
    assert table.loc[0, "confidence"] == pytest.approx(np.mean(easy))
    assert table.loc[1, "variability"] == pytest.approx(np.std(swings))
    assert table.loc[1, "correctness"] == pytest.approx(0.5) and table.loc[1, "forgetting"] == 1
    assert table.loc[2, "aum"] == pytest.approx((-11 / 4 - 1) / 2) and table.loc[2, "never_learned"]
    assert threshold["method"] == "threshold samples" and threshold["threshold_samples"] == 5
    assert threshold["value"] == pytest.approx(np.percentile([-5, -4, -1, -6, -2], 99))
    assert table["aum_flag"].tolist() == [False, False, True]
    stats = summary(table, threshold, 2)
    assert stats["regions"] == {"easy": 1, "ambiguous": 1, "hard": 1} and stats["aum_flagged"] == 1
    assert stats["never_learned"] == 1 and stats["forgotten"] == 1


def test_threshold_samples_learnt_by_heart_never_lift_the_aum_threshold_above_zero():
    threshold = aum_threshold([_fold(0, [0], [[0.5]], [[1.0]], threshold=[1.0, 2.0, 3.0])], TH)
    assert threshold["value"] == 0.0 and threshold["percentile_value"] == pytest.approx(np.percentile([1, 2, 3], 99))


def test_without_threshold_samples_the_aum_threshold_is_zero_and_says_why():
    threshold = aum_threshold([_fold(0, [0], [[0.5]], [[1.0]])], TH)
    assert threshold["value"] == 0.0 and "finetune" in threshold["method"]


def test_fold_files_are_read_back_and_give_one_images_curves(tmp_path):
    for fold, ids in ((0, [1, 2]), (1, [0, 2])):
        run_store.write_npz(run_store.fold_dir(tmp_path, fold) / run_store.DYNAMICS_FILE,
                            sample_id=np.array(ids), prob=np.full((3, 2), 0.5, np.float16),
                            margin=np.arange(6, dtype=np.float16).reshape(3, 2), threshold_aum=np.zeros(1, np.float16))
    folds = load_dynamics(tmp_path, [0, 1, 2])   # fold 2 kept nothing: left out
    assert [d.fold for d in folds] == [0, 1]
    curves = image_curves(folds, 2)
    assert curves["fold"].tolist() == [0, 0, 0, 1, 1, 1] and curves["margin"].tolist() == [1, 3, 5, 1, 3, 5]
    assert image_curves(folds, 9).empty
