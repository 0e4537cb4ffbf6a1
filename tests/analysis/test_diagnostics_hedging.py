"""Findings that rest on the model's probabilities say how strong the model is, and step down when it is weak."""
from core.analysis.diagnostics.findings import finding
from core.analysis.diagnostics.hedging import PROBABILITY_BASED, hedge, model_strength
from core.analysis.diagnostics.thresholds import Thresholds

TH = Thresholds()


def _diag(balanced_accuracy, n_classes=3, interval=None):
    return {"imbalance": {"balanced_accuracy": balanced_accuracy, "counts": {f"c{i}": 50 for i in range(n_classes)}},
            "overfitting": {"val_interval": interval}}


def _found():
    return [finding("label-issues", "medium", "Label issues", "cleanlab flags 89.", "Misclassified"),
            finding("calibration", "high", "Poor calibration", "ECE 0.2.", "Misclassified"),
            finding("slice:3", "medium", "Failing slice", "A cluster.", "Slices", slice="3"),
            finding("leakage", "high", "Leakage", "Pairs.", "Data")]


def test_strength_is_skill_over_chance_with_the_interval():
    s = model_strength(_diag(0.645, interval=[0.60, 0.69]), TH)
    assert abs(s["chance"] - 1 / 3) < 1e-9 and abs(s["skill"] - (0.645 - 1 / 3) / (2 / 3)) < 1e-9
    assert s["weak"] and s["interval"] == [0.60, 0.69]
    assert not model_strength(_diag(0.92), TH)["weak"]
    # the same 64.5% is strong on 20 classes (chance 5%)
    assert not model_strength(_diag(0.645, n_classes=20), TH)["weak"]
    assert model_strength(_diag(None), TH) is None


def test_a_weak_model_hedges_and_lowers_only_probability_based_findings():
    out = hedge(_found(), model_strength(_diag(0.645, interval=[0.60, 0.69]), TH))
    by_id = {f["id"]: f for f in out}
    assert by_id["label-issues"]["severity"] == "low" and by_id["label-issues"]["hedged"] == {"severity": "medium"}
    assert by_id["label-issues"]["evidence"].endswith(
        "The model is weak (out-of-fold balanced accuracy 64.5% (95% interval 60.0–69.0%), chance 33.3%): "
        "many of these flags are its own mistakes, not wrong labels.")
    assert by_id["calibration"]["severity"] == "medium"
    assert by_id["slice:3"]["severity"] == "low" and PROBABILITY_BASED["slice"] in by_id["slice:3"]["evidence"]
    assert by_id["leakage"] == _found()[3]   # not probability-based: untouched


def test_a_strong_model_keeps_severity_and_says_it_is_strong():
    out = hedge(_found(), model_strength(_diag(0.95), TH))
    assert [f["severity"] for f in out] == [f["severity"] for f in _found()]
    assert "The model is strong enough to judge by (out-of-fold balanced accuracy 95.0%, chance 33.3%)." in (
        out[0]["evidence"])
    assert "hedged" not in out[0]
