"""Metrics against values worked out by hand, and the ensemble as a mean of fold probabilities."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from core.evaluate import (
    IntervalSettings,
    _bootstrap_draws,
    classification_metrics,
    compute_metrics,
    dense_confusion,
    ensemble_table,
    metric_intervals,
    prediction_table,
    proportion_interval,
    resample_scores,
)

CLASSES = ["cat", "dog"]


def test_hand_computed_example():
    # true: cat cat cat dog; predicted: cat cat dog dog
    m = classification_metrics(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), CLASSES)
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["per_class"]["cat"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["dog"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["dog"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["confusion_cells"] == [[0, 0, 2], [0, 1, 1], [1, 1, 1]]


def test_a_class_never_predicted_has_recall_zero_and_undefined_precision():
    m = classification_metrics(np.array([0, 1]), np.array([0, 0]), CLASSES)
    assert m["per_class"]["dog"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}


def test_a_class_absent_from_a_fold_is_undefined_not_a_failure():
    three = ["cat", "dog", "eel"]
    m = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 1]), three)
    assert m["per_class"]["eel"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert m["macro_f1"] == 1.0 and m["balanced_accuracy"] == 1.0


def rows(model, fold, role, labels, probs_dog):
    probs = np.column_stack([1 - np.array(probs_dog), probs_dog])
    return prediction_table(np.arange(len(labels)), np.array(labels), probs, model, fold, role, CLASSES)


def test_ensemble_is_the_mean_probability_over_fold_models():
    table = pd.concat([rows("fold0", 0, "test", [0, 1], [0.2, 0.4]), rows("fold1", 1, "test", [0, 1], [0.6, 0.8])])
    ensemble = ensemble_table(table, CLASSES)
    assert ensemble.prob_dog.tolist() == pytest.approx([0.4, 0.6])
    assert ensemble.pred.tolist() == [0, 1] and set(ensemble.model) == {"ensemble"}


def test_summary_is_mean_and_population_std_over_folds_and_gaps_are_differences_of_means():
    table = pd.concat([
        rows("fold0", 0, "train", [0, 1], [0.1, 0.9]), rows("fold0", 0, "val", [0, 1], [0.9, 0.9]),
        rows("fold1", 1, "train", [0, 1], [0.1, 0.9]), rows("fold1", 1, "val", [0, 1], [0.1, 0.9])])
    metrics = compute_metrics(table, CLASSES)
    assert metrics["summary"]["val"]["accuracy"] == {"mean": 0.75, "std": 0.25}
    assert metrics["gaps"]["train_minus_val"]["accuracy"] == pytest.approx(0.25)
    assert metrics["oof"]["val"]["n"] == 4 and "test" not in metrics["summary"]


def test_per_sample_loss_is_minus_log_probability_of_the_given_label():
    table = rows("fold0", 0, "val", [1], [0.25])
    assert table.loss.iloc[0] == pytest.approx(np.log(4))
    assert table.confidence.iloc[0] == pytest.approx(0.75)


def test_a_proportion_gets_the_exact_clopper_pearson_interval():
    # 0 of 10: the upper bound solves (1 - p)^10 = 0.025; 10 of 10 mirrors it; 2 of 12 from published tables
    assert proportion_interval(0, 10) == pytest.approx([0.0, 1 - 0.025 ** (1 / 10)])
    assert proportion_interval(10, 10) == pytest.approx([0.025 ** (1 / 10), 1.0])
    assert proportion_interval(2, 12) == pytest.approx([0.0209, 0.4841], abs=5e-5)
    assert proportion_interval(0, 0) is None


def test_each_resample_of_confusion_counts_scores_balanced_accuracy_and_macro_f1_as_scikit_learn_does():
    rng = np.random.default_rng(3)
    true_of, pred_of = np.array([0, 0, 1, 1, 2, 2, 0]), np.array([0, 1, 1, 3, 2, 0, 3])   # class 3 only predicted
    counts = rng.integers(0, 5, (6, len(true_of)))
    counts[0, true_of == 2] = 0                     # a resample without any image of class 2
    scores = resample_scores(counts, true_of, pred_of, 4)
    for row, draw in enumerate(counts):
        truth, predicted = np.repeat(true_of, draw), np.repeat(pred_of, draw)
        assert scores["balanced_accuracy"][row] == pytest.approx(balanced_accuracy_score(truth, predicted))
        assert scores["macro_f1"][row] == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))


def test_the_bootstrap_draws_as_many_images_as_it_was_given_and_is_seeded():
    truth, predicted = np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 1, 2, 2])
    first = _bootstrap_draws(truth, predicted, 3, IntervalSettings(resamples=40, seed=1))
    again = _bootstrap_draws(truth, predicted, 3, IntervalSettings(resamples=40, seed=1))
    assert len(first["balanced_accuracy"]) == 40
    np.testing.assert_array_equal(first["macro_f1"], again["macro_f1"])


def test_a_small_chunk_gives_the_same_resamples_as_one_large_one():
    truth = np.array([0, 0, 1, 1, 1, 2, 2, 0, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2, 1, 0, 1, 2])
    whole = metric_intervals(truth, predicted, ["a", "b", "c"], IntervalSettings(resamples=50))
    chunked = metric_intervals(truth, predicted, ["a", "b", "c"], IntervalSettings(resamples=50, chunk_cells=30))
    assert whole["balanced_accuracy"] == chunked["balanced_accuracy"]


def test_intervals_hold_the_point_estimate_and_shrink_with_more_images():
    truth = np.tile([0, 0, 0, 1], 25)
    predicted = np.where(np.arange(100) % 5 == 0, 1 - truth, truth)   # 80% right in each class
    small = metric_intervals(truth[:20], predicted[:20], CLASSES)
    large = metric_intervals(truth, predicted, CLASSES)
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        low, high = large[key]
        assert low < classification_metrics(truth, predicted, CLASSES)[key] < high
        assert high - low < small[key][1] - small[key][0]
    assert large["recall"]["dog"] == proportion_interval(20, 25)
    perfect = metric_intervals(truth, truth, CLASSES)
    assert perfect["balanced_accuracy"] == [1.0, 1.0] and perfect["accuracy"][1] == 1.0


def test_held_out_metrics_carry_their_intervals_and_fold_metrics_do_not():
    table = pd.concat([rows("fold0", 0, "train", [0, 1], [0.1, 0.9]), rows("fold0", 0, "val", [0, 1], [0.9, 0.9]),
                       rows("fold0", 0, "test", [0, 1, 1], [0.2, 0.7, 0.3])])
    metrics = compute_metrics(pd.concat([table, ensemble_table(table, CLASSES)]), CLASSES)
    test = metrics["ensemble"]["test"]["intervals"]
    assert test["accuracy"] == proportion_interval(2, 3)
    assert test["recall"] == {"cat": proportion_interval(1, 1), "dog": proportion_interval(1, 2)}
    assert metrics["oof"]["val"]["intervals"]["confidence"] == 0.95
    assert "intervals" not in metrics["folds"]["0"]["test"]


def test_superclass_metrics_read_the_same_predictions_a_level_up_and_count_errors_inside_a_superclass():
    """a, b are pets and c, d farm animals: a->b and d->c are wrong classes but the right superclass."""
    classes = ["a", "b", "c", "d"]
    superclasses = {"a": "pets", "b": "pets", "c": "farm", "d": "farm"}
    labels, preds = np.array([0, 0, 0, 1, 2, 3, 3, 3]), np.array([0, 1, 2, 1, 2, 3, 2, 0])
    rows = []
    for fold in (0, 1):
        for role in ("train", "val"):
            probs = np.eye(4)[preds]
            rows.append(prediction_table(np.arange(8) + 8 * fold, labels, probs, f"fold{fold}", fold, role, classes))
    predictions = pd.concat(rows, ignore_index=True)
    metrics = compute_metrics(predictions, classes, superclasses)
    top = metrics["superclass"]
    assert top["classes"] == ["farm", "pets"] and top["of_class"] == superclasses
    oof = top["oof"]["val"]
    # superclass truth: pets pets pets pets farm farm farm farm; predicted: pets pets farm pets farm farm farm pets
    assert oof["accuracy"] == pytest.approx(6 / 8) and dense_confusion(oof, 2).tolist() == [[6, 2], [2, 6]]
    assert oof["class_errors"] == 2 * 4 and oof["errors_within_superclass"] == 2 * 2
    assert oof["intervals"]["accuracy"] is not None and top["summary"]["val"]["accuracy"]["mean"] == 0.75
    assert "superclass" not in compute_metrics(predictions, classes)


def test_a_stored_confusion_reads_back_dense_from_its_cells_and_from_an_older_runs_dense_rows() -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 7, 200), rng.integers(0, 7, 200)
    block = classification_metrics(y_true, y_pred, list("abcdefg"))
    from sklearn.metrics import confusion_matrix
    expected = confusion_matrix(y_true, y_pred, labels=range(7))
    assert "confusion" not in block and len(block["confusion_cells"]) == np.count_nonzero(expected)
    assert (dense_confusion(block, 7) == expected).all()
    assert (dense_confusion({"confusion": expected.tolist()}, 7) == expected).all()
