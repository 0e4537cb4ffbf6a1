"""The latest drift result as the Data page's Drift tab and the report show it; the report's section."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.analysis.drift import compare, write_drift
from core.delivery import report
from core.store import run_store
from core.testing.synthetic import make_synthetic_run
from core.views.drift import drift_summary


@pytest.fixture(scope="module")
def darkened() -> dict:
    """A drift result of darker new images (no run needed: `compare` on made-up properties and features)."""
    rng = np.random.default_rng(0)

    def side(n, brightness, shift):
        properties = pd.DataFrame({"brightness": rng.normal(brightness, 0.08, n), "contrast": rng.normal(0.2, 0.04, n)})
        return properties, rng.normal(0, 1, (n, 32)) + shift
    (train_p, train_e), (new_p, new_e) = side(300, 0.5, 0.0), side(40, 0.25, 0.8)
    result = compare(train_p, new_p, train_e, new_e)
    return {**result, "created": "2026-12-03T12:00:00+00:00", "inputs": ["inbox/"],
            "unreadable": [{"path": "inbox/notes.jpg", "reason": "not an image (format not recognised)"}]}


def test_the_summary_puts_shifted_properties_first_in_words(darkened):
    summary = drift_summary(darkened)
    assert summary["drifted"] and summary["verdict"] == darkened["verdict"]
    first = summary["properties"].iloc[0]
    assert first["property"] == "brightness (mean luminance, 0–1)" and first["shifted"]
    assert not summary["properties"]["shifted"].iloc[1:].any()
    assert summary["classifier"].startswith("Classifier two-sample test (PCA(") and "AUC" in summary["classifier"]
    assert "Compared by look-alike group: " in summary["classifier"]
    assert summary["drivers"]["property"].iloc[0] == "brightness"
    assert summary["unreadable"].to_dict("records") == darkened["unreadable"] and summary["inputs"] == "inbox/"


def test_never_checked_is_none():
    assert drift_summary(None) is None


def test_the_report_shows_the_latest_drift_result_or_how_to_get_one(darkened, tmp_path):
    run = make_synthetic_run(tmp_path / "runs", "r1", n_samples=60, n_classes=3, diagnostics=False)
    html = report.render_report(report.report_context(run, None, cache_dir=str(tmp_path / "cache")))
    assert 'id="drift"' in html and "python train_cli.py drift\nr1 NEW_IMAGES_FOLDER" in html
    older = {**darkened, "created": "2026-12-01T12:00:00+00:00", "verdict": "No drift detected: an older check"}
    write_drift(run, older)
    write_drift(run, darkened)
    assert run_store.latest_drift(run)["verdict"] == darkened["verdict"]
    html = report.render_report(report.report_context(run, None, cache_dir=str(tmp_path / "cache")))
    assert "Shifted: brightness lower" in html and "an older check" not in html
    assert "inbox/notes.jpg" in html and "brightness (mean luminance, 0–1)" in html
