"""Metrics against values worked out by hand, and the ensemble as a mean of fold probabilities."""
import numpy as np
import pandas as pd
import pytest

from core.evaluate import classification_metrics, compute_metrics, ensemble_table, prediction_table

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
    assert m["confusion"] == [[2, 1], [0, 1]]


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
