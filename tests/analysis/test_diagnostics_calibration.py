import numpy as np

from core.analysis.diagnostics.calibration import calibration, reliability


def test_perfectly_calibrated_confidence_has_ece_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 20_000)
    correct = rng.uniform(size=confidence.size) < confidence   # right exactly as often as it claims
    assert reliability(confidence, correct, 15)["ece"] < 0.02


def test_over_confident_predictions_have_large_ece_and_positive_overconfidence():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.9, 1.0, 5_000)
    correct = rng.uniform(size=confidence.size) < 0.6
    result = reliability(confidence, correct, 15)
    assert result["ece"] > 0.3
    assert result["overconfidence"] > 0.3


def test_bins_cover_every_sample_and_ece_uses_the_top_class():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.5, 0.5]])
    result = calibration(probs, np.array([0, 0, 0, 1]), n_bins=10)
    assert len(result["bins"]) == 10
    assert sum(b["count"] for b in result["bins"]) == 4
    assert result["accuracy"] == 0.5           # argmax 0,1,0,0 against labels 0,0,0,1
