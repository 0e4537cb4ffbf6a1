"""The figures the dashboard and the report share (core.views.figures), on the fixture runs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from dashboard_fixtures import COMPLETE, runs_dir  # noqa: F401  (session fixture)

from core.store import run_store
from core.views import figures
from core.views import tables as views


def test_a_class_keeps_its_colour_and_many_classes_still_get_distinct_ones() -> None:
    three = figures.class_colors(["a", "b", "c"])
    assert figures.class_colors(["a", "b"]) == {"a": three["a"], "b": three["b"]}   # by index in the class order
    for n in (4, 12):   # D3, Alphabet
        assert len(set(figures.class_colors([f"c{i}" for i in range(n)]).values())) == n
    assert figures.category_colors("correct", ["a"]) == figures.OUTCOME_COLORS
    assert figures.category_colors("role", ["a"]) == figures.ROLE_COLORS


def test_past_a_dozen_classes_only_the_focus_gets_colours_and_the_rest_is_one_grey_group() -> None:
    classes = [f"c{i}" for i in range(40)]
    focus = classes[::-1]   # e.g. the largest classes first
    colors = figures.class_colors(classes, focus)
    distinct = {name for name, colour in colors.items() if colour != figures.OTHER_COLOR}
    assert distinct == set(focus[:figures.DISTINCT_CLASSES])
    assert len({colors[name] for name in distinct}) == figures.DISTINCT_CLASSES
    assert set(figures.class_colors(classes).values()) - {figures.OTHER_COLOR}   # no focus: the first classes
    names = figures.legend_names(pd.Series(["c39", "c0", "c1"]), colors)
    assert names.tolist() == ["c39", figures.OTHER_CLASSES, figures.OTHER_CLASSES]


def test_many_class_charts_stay_bounded() -> None:
    classes = [f"c{i:03d}" for i in range(300)]
    counts = pd.DataFrame({"class": classes, "cv": range(300, 0, -1), "test": 1})
    counts["total"] = counts["cv"] + 1
    figure = figures.class_count_bars(counts.sample(frac=1, random_state=0), classes)
    assert figure.layout.height <= 400 and list(figure.data[0].x[:2]) == ["c000", "c001"]   # largest first
    points = pd.DataFrame({"x": 0.0, "y": 0.0, "path": "p", "true_name": classes, "pred_name": classes,
                           "correct": True})
    legend = {trace.name for trace in figures.embedding_map(points, classes, "UMAP", 300).data}
    assert len(legend) == figures.DISTINCT_CLASSES + 1 and figures.OTHER_CLASSES in legend


def test_the_confusion_matrix_takes_clicks_only_when_asked(runs_dir) -> None:  # noqa: F811
    metrics = run_store.read_json(runs_dir / COMPLETE / "metrics.json")
    classes = metrics["classes"]
    static = figures.confusion_heatmap(metrics, classes, "oof")
    assert [trace.type for trace in static.data] == ["heatmap"] and static.data[0].zmax == 1
    heatmap, cells = figures.confusion_heatmap(metrics, classes, "oof", share=False, clickable=True).data
    assert heatmap.hoverinfo == "skip" and len(cells.x) == len(classes) ** 2
    true, pred, images = np.asarray(cells.customdata).T
    assert list(true[:2]) == [0, 0] and list(pred[:2]) == [0, 1]   # row by row: [true, predicted, images]
    assert images.sum() == np.asarray(heatmap.z).sum()


def test_learning_curves_draw_a_panel_per_metric_and_one_fold_bold(runs_dir) -> None:  # noqa: F811
    history = run_store.read_table(runs_dir / COMPLETE, "history")
    both = figures.learning_curves(history, ["loss", "balanced_accuracy"])
    assert {trace.xaxis for trace in both.data} == {"x", "x2"}
    one = figures.learning_curves(history, ["loss"], highlight="1")
    widths = {trace.name: trace.line.width for trace in one.data if trace.name.endswith("fold 1")}
    assert widths == {"train fold 1": 3, "val fold 1": 3}


def test_the_report_look_changes_the_template_not_what_is_drawn(runs_dir) -> None:  # noqa: F811
    classes = ["class_a", "class_b", "class_c", "class_d"]
    samples = run_store.read_table(runs_dir / COMPLETE, "samples")
    figure = figures.class_count_bars(views.class_counts(samples, classes), classes)
    before = json.loads(figure.to_json())["data"]
    assert figures.static(figure).layout.template.layout.paper_bgcolor == "white"
    assert json.loads(figure.to_json())["data"] == before


def test_the_reliability_diagram_draws_before_and_after_temperature_scaling_when_given_both() -> None:
    from core.analysis.diagnostics.calibration import calibration
    from core.analysis.temperature import scale
    from core.testing.synthetic import classifier_outputs
    probs, labels = classifier_outputs(500, sharpness=3.0, seed=1)
    before, after = calibration(probs, labels, 10), calibration(scale(probs, 3.0), labels, 10)
    one = figures.reliability(before)
    assert [trace.name for trace in one.data] == ["perfect calibration", "model"]
    two = figures.reliability(before, after, "test confidence")
    assert [trace.name for trace in two.data] == ["perfect calibration", f"before (ECE {before['ece']:.3f})",
                                                  f"after temperature scaling (ECE {after['ece']:.3f})"]
    assert "test confidence, before and after" in two.layout.title.text and two.layout.legend.orientation == "h"


def test_class_counts_name_the_pale_test_part_only_when_there_is_a_test_split() -> None:
    samples = pd.DataFrame({"label": ["a", "a", "b", "b"], "split": ["cv", "test", "cv", "cv"]})
    with_test = figures.class_count_bars(views.class_counts(samples, ["a", "b"]), ["a", "b"])
    assert "pale = test split" in with_test.layout.title.text and [t.name for t in with_test.data] == ["cv", "test"]
    cv_only = figures.class_count_bars(views.class_counts(samples.assign(split="cv"), ["a", "b"]), ["a", "b"])
    assert cv_only.layout.title.text == "Images per class" and [t.name for t in cv_only.data] == ["cv"]


def test_a_confusion_matrix_of_many_classes_is_limited_to_those_most_involved_in_errors() -> None:
    classes = [f"c{i:03d}" for i in range(100)]
    matrix = np.diag(np.full(100, 9)) + np.eye(100, k=1, dtype=int)   # every class mistaken once for the next
    metrics = {"classes": classes, "oof": {"val": {"confusion": matrix.tolist()}}}   # the dense form of older runs
    figure = figures.limited_confusion_heatmap(metrics, classes, "oof")
    [heatmap] = figure.data
    assert len(heatmap.x) == 26 and heatmap.x[-1] == "other" and figure.layout.height < 900
    assert np.asarray(heatmap.customdata).sum() == matrix.sum()
    few = {"classes": ["a", "b"], "oof": {"val": {"confusion_cells": [[0, 0, 3], [0, 1, 1], [1, 1, 4]]}}}
    assert list(figures.limited_confusion_heatmap(few, ["a", "b"], "oof").data[0].x) == ["a", "b"]


def test_the_long_tail_chart_is_two_traces_on_a_log_axis_however_many_classes() -> None:
    from core.evaluate import compute_metrics
    from core.testing.synthetic import class_predictions
    counts = [int(c) for c in np.geomspace(60, 3, 300)]            # 300 classes, a long tail
    predictions, classes = class_predictions(counts, np.linspace(0.9, 0.2, 300).tolist())
    metrics = compute_metrics(predictions, classes)
    frame = views.scores_by_training_images(metrics, classes)
    assert len(frame) == 2 * 300 and set(frame["score"]) == {"recall", "precision"}
    row = frame[(frame["class"] == classes[0]) & (frame["score"] == "recall")].iloc[0]
    assert row["train_images"] == 40 and row["min"] <= row["mean"] <= row["max"]
    figure = figures.tail_scatter(frame, cut=20)
    assert [trace.name for trace in figure.data] == ["recall", "precision"]
    assert figure.layout.xaxis.type == "log" and len(figure.data[0].x) == 300
    assert figure.layout.shapes[0].x0 == 20                        # the tail's cut
    # each mark sits within a few percent of its class's count, and its hover names the class
    np.testing.assert_allclose(figure.data[0].x / frame[frame["score"] == "recall"]["train_images"], 1, atol=0.07)
    assert figure.data[0].customdata[0][0] == classes[0] and "%{customdata[0]}" in figure.data[0].hovertemplate
    assert views.tail_cut({"tail": {"cut": 20.0, "n_tail": 3}}) == 20 and views.tail_cut({}) is None
    assert views.tail_cut({"tail": {"cut": 20.0, "n_tail": 0}}) is None
