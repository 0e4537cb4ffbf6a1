"""Temperature scaling: fitted on held-out predictions, it removes over-confidence without changing a ranking."""
from __future__ import annotations

import numpy as np
import pytest

from core.analysis.diagnostics.calibration import calibration
from core.analysis.temperature import fit_temperature, scale
from core.testing.synthetic import classifier_outputs


@pytest.mark.parametrize("sharpness", [0.5, 3.0])
def test_the_fitted_temperature_undoes_a_sharpened_or_softened_model_and_lowers_ece(sharpness):
    probs, labels = classifier_outputs(6000, sharpness=sharpness, seed=7)
    temperature = fit_temperature(probs[:3000], labels[:3000])
    assert temperature == pytest.approx(sharpness, rel=0.1)   # logits were multiplied by `sharpness`
    before = calibration(probs[3000:], labels[3000:], 15)["ece"]
    after = calibration(scale(probs[3000:], temperature), labels[3000:], 15)["ece"]
    assert before > 0.05 and after < before / 2


def test_scaling_keeps_rows_summing_to_one_and_the_top_class_and_temperature_one_changes_nothing():
    probs, _ = classifier_outputs(50, seed=8)
    probs[0] = [1.0, 0, 0, 0, 0]                                # a stored exact 0 is no infinite logit
    scaled = scale(probs, 2.5)
    np.testing.assert_allclose(scaled.sum(1), 1)
    assert (scaled.argmax(1) == probs.argmax(1)).all() and np.isfinite(scaled).all()
    np.testing.assert_allclose(scale(probs[1:], 1.0), probs[1:], rtol=1e-9)
