"""The prediction-set diagnostic (calibrated out-of-fold, measured on the test split) and its findings."""
from __future__ import annotations

import pytest

from core.analysis.diagnostics.conformal_sets import conformal_sets
from core.analysis.diagnostics.findings import prediction_set_findings
from core.analysis.diagnostics.thresholds import Thresholds
from core.testing.synthetic import classifier_outputs

CLASSES = ["a", "b", "c", "d"]
TH = Thresholds()


def diagnose(signal, n_test=3000, sharpness=2.5):
    probs, labels = classifier_outputs(3000 + n_test, n_classes=4, signal=signal, sharpness=sharpness, seed=9)
    return conformal_sets(probs[:3000], labels[:3000], probs[3000:], labels[3000:], CLASSES, TH)


def test_coverage_and_set_size_per_class_and_ece_before_and_after_temperature_on_the_test_split():
    result = diagnose([4.0, 4.0, 1.0, 1.0])
    assert result["coverage"] == TH.conformal_coverage == 0.9 and result["n_test"] == 3000
    for key in ("marginal", "class_conditional"):
        test = result[key]["test"]
        assert [row["class"] for row in test["per_class"]] == CLASSES
        assert test["coverage"] >= 0.9 - 2 * test["coverage_se"]
        assert sum(row["n"] for row in test["per_class"]) == 3000
    per_class = result["marginal"]["test"]["per_class"]
    assert per_class[2]["mean_set_size"] > 1.5 > per_class[0]["mean_set_size"]   # c, d: the model spreads its
    assert len(per_class[2]["shared_with"]) == 2                                   # belief over other classes
    calibration = result["test_calibration"]
    assert result["temperature"] > 1.5 and calibration["after"]["ece"] < calibration["before"]["ece"] / 2


def test_without_a_test_split_there_is_nothing_to_measure_and_no_finding():
    result = diagnose(2.0, n_test=0)
    assert result["marginal"]["test"] is None and result["test_calibration"] is None
    assert len(result["class_conditional"]["thresholds"]) == 4
    assert prediction_set_findings(result, TH) == [] and prediction_set_findings(None, TH) == []


def test_large_sets_are_a_finding_naming_the_classes_and_what_they_are_confused_with():
    [found] = prediction_set_findings(diagnose([4.0, 4.0, 0.5, 0.5]), TH)
    assert found["id"] == "large-sets" and found["severity"] == "medium"
    title, evidence = found["title"], found["evidence"]
    assert title.startswith("Large prediction sets: ") and " c " in title and " d " in title and " a " not in title
    assert "c with " in evidence and "d with " in evidence and "a with " not in evidence
    assert found["target"]["params"]["tab"] == "calibration"
    assert prediction_set_findings(diagnose(6.0), TH) == []                  # a good model: small sets, no finding


@pytest.mark.parametrize("coverage, fires", [(0.80, True), (0.89, False)])
def test_coverage_short_of_the_target_beyond_sampling_error_is_a_finding(coverage, fires):
    test = {"n": 400, "coverage": coverage, "coverage_se": (coverage * (1 - coverage) / 400) ** 0.5,
            "mean_set_size": 1.2, "per_class": []}
    found = prediction_set_findings({"coverage": 0.9, "marginal": {"test": test}}, TH)
    assert [f["id"] for f in found] == (["coverage-shortfall"] if fires else [])


@pytest.mark.parametrize("coverage, n, fires", [(0.64, 14, True), (0.80, 14, False), (1.0, 3, False),
                                                (0.0, 3, True)])
def test_a_class_whose_class_conditional_sets_fall_short_beyond_sampling_error_is_named(coverage, n, fires):
    """The error is that of a share at the target (at 0% the observed share's own error is 0 and passes anything)."""
    row = {"class": "rare", "n": n, "coverage": coverage, "mean_set_size": 1.5}
    good = {"class": "common", "n": 200, "coverage": 0.9, "mean_set_size": 1.2}
    overall = {"n": n + 200, "coverage": 0.9, "coverage_se": 0.02, "mean_set_size": 1.2, "per_class": [good, row]}
    found = prediction_set_findings({"coverage": 0.9, "marginal": {"test": overall},
                                     "class_conditional": {"test": overall}}, TH)
    assert [f["id"] for f in found] == (["class-coverage-shortfall"] if fires else [])
    if fires:
        assert found[0]["title"] == (f"Class-conditional prediction sets fall short for 1 class: rare "
                                     f"{coverage:.1%} of {n}")
        assert "common" not in found[0]["evidence"]
