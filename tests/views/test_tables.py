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
    for bad in ("../../etc/passwd", "/etc/passwd", "", "class_a/../../x.png", "w" * 300 + ".png", "nul\x00.png"):
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
    assert (old["flagged_by"] == "cleanlab").all() and old["agreed"].all()


def test_label_issue_rows_put_what_detectors_agree_on_first_and_name_them():
    issues = pd.DataFrame({
        "sample_id": [7, 3, 9], "path": ["a/7.png", "b/3.png", "a/9.png"], "split": "cv", "label": "a",
        "suggested_label": "b", "quality": [0.01, 0.3, 0.5], "suggested_confidence": 0.6, "rank": [1, 2, 3],
        "part_size": 96, "flagged": [True, False, False], "affects_test_metric": False,
        "cleanlab": [True, False, False], "aum_flag": [False, True, True], "neighbours_flag": [False, True, False],
        "detectors": [1, 2, 1], "agreed": [False, True, False]})
    rows = views.label_issue_rows(issues)
    assert rows["sample_id"].tolist() == [3, 7, 9]
    assert rows["flagged_by"].tolist() == ["AUM, neighbours", "cleanlab", "AUM"]
    assert rows["agreed"].tolist() == [True, False, False]
    # with the combined evidence (newer files), the headline first, then the strongest evidence, not quality
    ranked = views.label_issue_rows(issues.assign(evidence=[0.6, 0.9, 0.95], agreed=[False, True, False]))
    assert ranked["sample_id"].tolist() == [3, 9, 7]


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


def _headline_metrics(test: bool) -> dict:
    """metrics.json's headline parts for two folds: train 95%, validation 70% ± 5, test fold mean 62%, ensemble
    58.3% (the issue's numbers: Home must headline what predict and serve use)."""
    def roles(val: float, test_value: float) -> dict:
        return {"train": 0.95, "val": val, **({"test": test_value} if test else {})}
    summary = {role: {key: {"mean": value, "std": 0.05 if role == "val" else 0.01} for key in views.HEADLINE}
               for role, value in roles(0.70, 0.62).items()}
    intervals = {key: [0.60, 0.79] for key in views.HEADLINE}
    metrics = {"summary": summary, "oof": {"val": {"intervals": intervals}},
               "gaps": {f"train_minus_{r}": {key: 0.95 - summary[r][key]["mean"] for key in views.HEADLINE}
                        for r in ("val", "test") if r in summary}}
    if test:
        metrics["ensemble"] = {"test": {"n": 60, **{key: 0.583 for key in views.HEADLINE},
                                        "intervals": {key: [0.45, 0.96] for key in views.HEADLINE}}}
    return metrics


def test_home_headlines_the_test_ensemble_with_its_interval_and_the_fold_mean_beside_it() -> None:
    card = views.headline_cards(_headline_metrics(test=True))[1]
    assert (card["title"], card["value"]) == ("Test balanced accuracy", "58.3%")
    assert card["lines"][0] == "95% interval 45.0–96.0% · fold models' mean 62.0%"
    assert card["lines"][1] == "validation **70.0% ± 5.0** (interval 60.0–79.0%) · train 95.0%"
    # train 95% is above validation's interval (a gap) but inside the wide test interval (not judged)
    assert card["lines"][2] == "gap train−val **+25.0 pts** · train−test **+33.0 pts (within the interval)**"


def test_without_a_test_split_home_headlines_validation_and_says_so() -> None:
    card = views.headline_cards(_headline_metrics(test=False))[0]
    assert (card["title"], card["value"]) == ("Validation accuracy", "70.0% ± 5.0")
    assert card["lines"][0] == "no test split · validation interval 60.0–79.0%"
    assert "nan" not in " ".join(card["lines"])


def test_a_run_from_before_intervals_shows_its_numbers_without_them() -> None:
    metrics = _headline_metrics(test=True)
    del metrics["oof"], metrics["ensemble"]["test"]["intervals"]
    card = views.headline_cards(metrics)[0]
    assert card["lines"][0] == "fold models' mean 62.0%"
    assert card["lines"][1] == "validation **70.0% ± 5.0** · train 95.0%"
    assert "within" not in card["lines"][2]


def test_compare_writes_every_run_in_one_metric_language() -> None:
    rows = views.compare_headline_rows({"a": _headline_metrics(test=True), "b": _headline_metrics(test=False)})
    a, b = rows.set_index("run").to_dict("index").values()
    assert a["validation balanced accuracy"] == "70.0% ± 5.0"
    assert a["test balanced accuracy (ensemble)"] == "58.3% (95% interval 45.0–96.0%)"
    assert a["gap train−val balanced accuracy"] == "+25.0 pts"
    assert b["test balanced accuracy (ensemble)"] == "–"   # no test split: a dash, not nan


def test_scores_as_percentages_are_named_in_words() -> None:
    frame = pd.DataFrame({"run": ["a"], "images": [12], "balanced_accuracy": [0.80444]})
    shown = views.as_percentages(frame, ["balanced_accuracy"])
    assert shown.to_dict("records") == [{"run": "a", "images": 12, "balanced accuracy": "80.4%"}]


def test_the_class_table_gives_test_recall_with_its_interval_and_dashes_for_what_is_undefined() -> None:
    metrics = missing_class_metrics()   # b has no test image; d is never in the folds
    table = views.per_class_table(metrics, ["a", "b", "c", "d"]).set_index("class")
    test = metrics["ensemble"]["test"]
    low, high = test["intervals"]["recall"]["a"]
    assert table.loc["a", "test recall"] == (f"{100 * test['per_class']['a']['recall']:.1f}% of "
                                             f"{test['per_class']['a']['support']} ({100 * low:.1f}–{100 * high:.1f}%)")
    assert table.loc["b", "test recall"] == "–"   # no test image: no recall, no interval
    assert table.loc["d", "recall"] == "–" and table.loc["a", "recall"] == "100.0% ± 0.0"


def test_prediction_set_rows_pair_each_class_marginal_and_class_conditional_numbers():
    from core.analysis.diagnostics.conformal_sets import conformal_sets
    from core.analysis.diagnostics.thresholds import Thresholds
    from core.testing.synthetic import classifier_outputs
    probs, labels = classifier_outputs(1600, n_classes=3, signal=[3.0, 1.0, 1.0], seed=3)
    conformal = conformal_sets(probs[:800], labels[:800], probs[800:], labels[800:], ["a", "b", "c"], Thresholds())
    rows = views.prediction_set_rows(conformal)
    assert rows["class"].tolist() == ["a", "b", "c"] and rows["test images"].sum() == 800
    assert rows.loc[0, "set size"] < rows.loc[1, "set size"]             # the well-separated class: small sets
    assert rows.loc[1, "coverage (per class)"] == conformal["class_conditional"]["test"]["per_class"][1]["coverage"]
    assert rows.loc[1, "most often with"].startswith(("a ", "c "))
    no_test = conformal_sets(probs[:800], labels[:800], probs[:0], labels[:0], ["a", "b", "c"], Thresholds())
    assert views.prediction_set_rows(no_test).empty


def test_classes_left_out_are_a_table_and_a_short_line_that_counts_past_the_first_few():
    from core.views.dropped import NAMED, dropped_classes, dropped_summary
    info = {"dataset": {"dropped_classes": [{"label": f"t{i}", "images": 2, "units": 1} for i in range(NAMED + 3)]}}
    assert dropped_classes(info).columns.tolist() == ["class", "images", "units"] and len(dropped_classes(info)) == 8
    text = dropped_summary(info)
    assert text.startswith("8 classes (16 images) left out") and "t0 (2), t1 (2)" in text and text.endswith(
        "and 3 more.")
    assert dropped_summary({"dataset": {}}) is None and dropped_classes({}).empty
