"""The Data page's Drift tab: the latest `train_cli.py drift` result of a run, or the command that makes one."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from dashboard_fixtures import open_page, point_dashboard_at

from core.analysis.drift import write_drift
from core.testing.synthetic import make_synthetic_run

RESULT = {"created": "2026-12-03T12:00:00+00:00", "inputs": ["inbox/"], "n_new": 40, "n_train": 300,
          "drifted": True, "verdict": "Drift: the 40 new images differ from the training images. Shifted: brightness "
                                      "lower (median 0.25 vs 0.5 in training, KS D = 0.95).",
          "properties": [{"property": "brightness", "median_train": 0.5, "median_new": 0.25, "ks": 0.95,
                          "p_adjusted": 1e-20, "drifted": True},
                         {"property": "blur", "median_train": 120.0, "median_new": 118.0, "ks": 0.05,
                          "p_adjusted": 0.9, "drifted": False}],
          "classifier": {"auc": 0.93, "p": 1e-9, "folds": 5, "model": "PCA(32) + logistic regression"},
          "drivers": [{"property": "brightness", "spearman": -0.7}],
          "unreadable": [{"path": "inbox/notes.jpg", "reason": "not an image (format not recognised)"}]}


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runs = tmp_path / "runs"
    run = make_synthetic_run(runs, "20250103-120000-drift", 60, 3, 3, 16, diagnostics=False)
    point_dashboard_at(runs, tmp_path / "cache", monkeypatch)
    return run


def test_without_a_drift_result_the_tab_gives_the_command(env):
    app = open_page("Data", run=env.name, tab="drift")
    assert not app.exception
    assert any(f"python train_cli.py drift {env.name} NEW_IMAGES_FOLDER" in info.body for info in app.info)


def test_the_tab_shows_the_verdict_the_shifted_property_and_the_unreadable_files(env):
    write_drift(env, RESULT)
    app = open_page("Data", run=env.name, tab="drift")
    assert not app.exception
    assert [w.body for w in app.warning] == [RESULT["verdict"]]
    properties, drivers, unreadable = (frame.value for frame in app.dataframe)
    assert properties["property"].tolist() == ["brightness (mean luminance, 0–1)",
                                               "sharpness (variance of the Laplacian; low = blurry)"]
    assert properties["shifted"].tolist() == [True, False]
    assert "AUC 0.93" in " ".join(m.value for m in app.markdown)
    assert isinstance(drivers, pd.DataFrame) and unreadable["path"].tolist() == ["inbox/notes.jpg"]
