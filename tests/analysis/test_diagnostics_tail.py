"""The long tail: classes with few training images that fail where the others do not, beyond chance."""
import pytest

from core.analysis.diagnostics.findings import tail_findings
from core.analysis.diagnostics.tail import round_down, tail
from core.analysis.diagnostics.thresholds import Thresholds
from core.evaluate import compute_metrics, training_counts
from core.testing.synthetic import class_predictions

TH = Thresholds()


def diagnose(counts, recalls, seed=0):
    predictions, classes = class_predictions(counts, recalls, n_folds=3, seed=seed)
    return tail(compute_metrics(predictions, classes), classes, TH), classes


def test_the_cut_is_a_round_number_at_or_below_the_value():
    assert [round_down(v) for v in (0.4, 1, 3.9, 12.6, 37, 50, 999)] == [1, 1, 2, 10, 20, 50, 500]


def test_training_images_are_the_mean_over_folds_of_the_training_part():
    predictions, classes = class_predictions([30, 6], [0.9, 0.9])
    assert training_counts(compute_metrics(predictions, classes), classes) == {classes[0]: 20.0, classes[1]: 4.0}


def test_a_failing_tail_is_one_finding_naming_it_and_the_remedy():
    # 20 classes of 60 images (40 per training part, recall 85%), 12 of 6 (4 per training part, recall 10%)
    result, classes = diagnose([60] * 20 + [6] * 12, [0.85] * 20 + [0.1] * 12)
    assert result["cut"] == 10 and result["n_tail"] == 12 and result["n_head"] == 20 and result["fails"]
    assert result["tail_pooled"]["interval"][1] < result["head_pooled"]["interval"][0]
    [f] = tail_findings(result, TH)
    assert f["id"] == "long-tail" and f["severity"] == "high"
    assert f["title"].startswith("12 classes with under 10 training images: mean recall ")
    assert f"against {100 * result['head_mean_recall']:.1f}%" in f["title"]
    assert "and 7 more" in f["evidence"] and "logit-adjust-posthoc" in f["evidence"]
    assert f["target"] == {"page": "Classes", "params": {"fold": "oof", "class": result["tail_classes"][0]["class"]}}


def test_balanced_data_has_no_tail_and_no_finding():
    result, _ = diagnose([30] * 12, [0.8] * 6 + [0.3] * 6)
    assert result["n_tail"] == 0 and not result["fails"] and tail_findings(result, TH) == []


def test_small_classes_that_do_as_well_as_the_rest_are_no_finding():
    result, _ = diagnose([60] * 20 + [6] * 12, [0.8] * 32)
    assert result["n_tail"] == 12 and not result["fails"] and tail_findings(result, TH) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_tail_too_small_to_tell_from_chance_is_no_finding(seed):
    # two tail classes of 6 images (2 held out per fold): a lower recall there is within chance of the rest's
    result, _ = diagnose([60] * 10 + [6] * 2, [0.7] * 10 + [0.5] * 2, seed=seed)
    assert result["n_tail"] == 2 and not result["fails"]
