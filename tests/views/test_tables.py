"""Data shaping and image access behind the pages, without Streamlit."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dashboard_fixtures import COMPLETE, runs_dir  # noqa: F401
from diagnostics_fixtures import missing_class_metrics
from PIL import Image

from core.data.dataset import load_rgb
from core.data.thumbnails import image_path, thumbnail
from core.views import tables as views


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


def test_oof_roles_show_each_image_once(runs_dir: Path) -> None:  # noqa: F811
    info, _, predictions, samples = load(runs_dir)
    assert views.roles_for("oof", has_test=True) == ["val", "test"]
    assert views.roles_for("oof", has_test=False) == ["val"]
    assert views.roles_for("0", has_test=True) == ["val", "test", "train"]
    for role, split in (("val", "cv"), ("test", "test")):
        rows = views.prediction_rows(predictions, samples, info["classes"], views.source_for("oof", role), role)
        assert rows["sample_id"].is_unique and len(rows) == (samples["split"] == split).sum()


def test_undefined_per_class_scores_are_left_out_not_zero() -> None:
    metrics = missing_class_metrics()   # every prediction right; c is in fold 0 only, d in the test split only
    gaps = views.class_gaps(metrics, metrics["classes"]).set_index("class")
    assert (gaps.loc[["a", "b"], "gap"] == 0).all() and gaps.loc[["c", "d"], "gap"].isna().all()
    spread = views.per_class_spread(metrics, metrics["classes"]).set_index(["class", "score"])
    assert spread.loc[("c", "recall"), ["mean", "std", "min", "max"]].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert spread.loc["d", "mean"].isna().all()
    recall = views.compare_recall({"run": metrics}).set_index("class")["recall"]
    assert recall["c"] == 1.0 and np.isnan(recall["d"])


def test_pca_map_has_one_point_per_sample_widest_along_x() -> None:
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(500, 20)) * np.r_[5.0, 2.0, np.ones(18) * 0.1]
    coords = views.pca_2d(embedding, fit_rows=200)
    assert coords["sample_id"].tolist() == list(range(500))
    assert coords["x"].std() > coords["y"].std() > 1.0


def test_misclassified_are_wrong_and_sorted(runs_dir: Path) -> None:  # noqa: F811
    info, _, predictions, samples = load(runs_dir)
    rows = views.prediction_rows(predictions, samples, info["classes"], "oof")
    wrong = views.misclassified(rows, None, None, {1, 2}, set())
    assert not wrong["correct"].any() and wrong["confidence"].is_monotonic_decreasing
    assert len(views.page_of(wrong, 99, 10)) == len(wrong) - 10 * (views.page_count(len(wrong), 10) - 1)


def test_mistakes_of_a_true_class_are_counted_out_of_that_class() -> None:
    """"14 wrong of 408" for a class of 48 images read as a 3 % error rate; it is 29 % of that class."""
    rows = pd.DataFrame({"label": [0, 0, 0, 1, 1, 2], "pred": [0, 1, 2, 1, 0, 1]})
    assert views.mistakes_out_of(rows, None, None) == 6
    assert views.mistakes_out_of(rows, 0, None) == 3 and views.mistakes_out_of(rows, 0, 1) == 3   # class 0's images
    assert views.mistakes_out_of(rows, None, 1) == 3   # the predictions of class 1


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


def _exif_rotated_jpeg(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6   # orientation: rotate 90° when shown
    Image.new("RGB", (40, 20), (200, 30, 30)).save(path, "JPEG", exif=exif.tobytes())


def _transparent_png(path: Path) -> None:
    Image.new("RGBA", (30, 30), (0, 0, 255, 0)).save(path, "PNG")


def _sixteen_bit_png(path: Path) -> None:
    Image.fromarray(np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)).save(path, "PNG")


@pytest.mark.parametrize("make", [_exif_rotated_jpeg, _transparent_png, _sixteen_bit_png])
def test_thumbnails_show_images_as_training_decodes_them(tmp_path: Path, make) -> None:
    source = tmp_path / f"{make.__name__}.img"
    make(source)
    small = thumbnail(source, size=64, cache_dir=tmp_path / "cache")
    assert np.array_equal(np.asarray(Image.open(small)), np.asarray(load_rgb(source)))   # no resize below 64 px
    assert [p.name for p in small.parent.iterdir()] == [small.name]   # no temporary file left behind


def test_label_issue_rows_show_rank_within_its_part_the_flag_and_the_test_marker():
    issues = pd.DataFrame({
        "sample_id": [7, 3, 9], "path": ["a/7.png", "b/3.png", "a/9.png"], "split": ["cv", "test", "cv"],
        "label": ["a", "b", "a"], "suggested_label": ["b", "a", "b"], "quality": [0.08, 0.01, 0.2],
        "suggested_confidence": [0.86, 0.97, 0.7], "rank": [1, 1, 2], "part_size": [96, 24, 96],
        "flagged": [False, True, True], "affects_test_metric": [False, True, False]})
    rows = views.label_issue_rows(issues)
    assert rows["sample_id"].tolist() == [3, 7, 9]
    assert rows["rank"].tolist() == ["1 of 24", "1 of 96", "2 of 96"]
    assert rows["flagged"].tolist() == [True, False, True]
    assert rows["affects_test_metric"].tolist() == [True, False, False]
    before_ranking = issues[["sample_id", "path", "label", "suggested_label", "quality"]]   # older runs
    old = views.label_issue_rows(before_ranking)
    assert old["flagged"].all() and not old["affects_test_metric"].any() and (old["split"] == "cv").all()


def test_setting_differences_name_each_training_setting_that_differs_and_ignore_bookkeeping():
    a = {"folds": 5, "lr": 0.001, "seed": 0, "data": "a.csv", "name": "x", "runs_dir": "runs"}
    b = {"folds": 3, "lr": 0.001, "seed": 0, "data": "cleaned.csv", "name": "cleaned", "runs_dir": "elsewhere"}
    assert views.setting_differences({"A": a, "B": b}) == ["folds: 5 in A, 3 in B"]
    assert views.setting_differences({"A": a, "C": dict(a)}) == []


def test_an_experiments_runs_table_shows_each_runs_own_status_and_the_remedies_not_reached_yet():
    from core.experiments.remedies import remedy_named
    from core.views.experiments import experiment_runs
    experiment = {"baseline": "b", "planned": ["balance-weights", "drop-label-errors", "label-smoothing"],
                  "runs": [{"remedy": "balance-weights", "run_id": "r1", "status": "failed", "what": "weights",
                            "error": "interrupted"}],
                  "skipped": [{"remedy": "drop-label-errors", "reason": "no label errors flagged"}]}
    table = experiment_runs(experiment, {"b": "complete", "r1": "failed"})
    assert table[["remedy", "status"]].values.tolist() == [
        ["baseline", "complete"], ["balance-weights", "failed"], ["label-smoothing", "planned"]]
    assert table.run_id.iloc[:2].tolist() == ["b", "r1"] and pd.isna(table.run_id.iloc[2])
    assert table.what.iloc[1] == "weights — interrupted"
    assert table.what.iloc[2] == remedy_named("label-smoothing").what
    # a baseline that was created but did not finish reads as its run does; one not created yet is planned
    assert experiment_runs(experiment, {"b": "failed"}).status.iloc[0] == "failed"
    assert experiment_runs({**experiment, "baseline": None}, {}).status.iloc[0] == "planned"
