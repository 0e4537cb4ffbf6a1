"""Data shaping and image access behind the pages, without Streamlit."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from core import views
from core.thumbnails import image_path, thumbnail
from dashboard_fixtures import COMPLETE, runs_dir  # noqa: F401


def load(runs_dir: Path) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame]:  # noqa: F811
    run = runs_dir / COMPLETE
    info = json.loads((run / "run.json").read_text())
    return (info, json.loads((run / "metrics.json").read_text()), pd.read_parquet(run / "predictions.parquet"),
            pd.read_parquet(run / "samples.parquet"))


def test_oof_rows_match_metrics(runs_dir: Path) -> None:  # noqa: F811
    info, metrics, predictions, samples = load(runs_dir)
    rows = views.prediction_rows(predictions, samples, info["classes"], "oof")
    assert len(rows) == (samples["split"] == "cv").sum() and rows["sample_id"].is_unique
    assert rows["correct"].mean() == metrics["oof"]["val"]["accuracy"]
    confusion = views.confusion(metrics, "oof", normalize=True)
    assert np.allclose(confusion.sum(axis=1), 1)


def test_misclassified_are_wrong_and_sorted(runs_dir: Path) -> None:  # noqa: F811
    info, _, predictions, samples = load(runs_dir)
    rows = views.prediction_rows(predictions, samples, info["classes"], "oof")
    wrong = views.misclassified(rows, None, None, {1, 2}, set())
    assert not wrong["correct"].any() and wrong["confidence"].is_monotonic_decreasing
    assert len(views.page_of(wrong, 99, 10)) == len(wrong) - 10 * (views.page_count(len(wrong), 10) - 1)


def test_image_paths_never_escape_the_root(runs_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    info, _, _, samples = load(runs_dir)
    root = info["dataset"]["root"]
    assert image_path(root, samples["path"].iat[0]) is not None
    for bad in ("../../etc/passwd", "/etc/passwd", "", "class_a/../../x.png"):
        assert image_path(root, bad) is None
    (Path(root) / "link.png").unlink(missing_ok=True)
    (Path(root) / "link.png").symlink_to("/etc/hostname")
    assert image_path(root, "link.png") is None


def test_thumbnails_are_cached_by_content(runs_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    info, _, _, samples = load(runs_dir)
    source = image_path(info["dataset"]["root"], samples["path"].iat[0])
    first = thumbnail(source, size=64, cache_dir=tmp_path)
    assert first and first.is_relative_to(tmp_path / "thumbnails") and thumbnail(source, 64, tmp_path) == first
