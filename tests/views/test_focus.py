"""A focus (one class or a confused pair) picked out in colour, in tables and in the gallery's cell."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.views import focus
from core.views.figures import OTHER_CLASSES, OTHER_COLOR, class_colors

CLASSES = [f"c{i}" for i in range(30)]
PAIRS = pd.DataFrame({"true": ["c3", "c4", "c3", "c9"], "predicted": ["c4", "c3", "c7", "c3"]})


def test_options_offer_all_then_each_confused_pair_once_then_every_class() -> None:
    options = focus.focus_options(CLASSES, PAIRS)
    assert options[:4] == ["all", "c3 ↔ c4", "c3 ↔ c7", "c9 ↔ c3"] and options[4:] == CLASSES
    assert focus.focus_options(["a", "b"]) == ["all", "a", "b"]
    # a linked pair is offered even when it is not among the most confused
    assert focus.focus_options(CLASSES, PAIRS, "c1 ↔ c2")[:3] == ["all", "c1 ↔ c2", "c3 ↔ c4"]
    assert focus.focus_options(CLASSES, PAIRS, "c4 ↔ c3")[:3] == ["all", "c4 ↔ c3", "c3 ↔ c7"]
    assert focus.focus_options(CLASSES, PAIRS, "c1 ↔ gone") == focus.focus_options(CLASSES, PAIRS)


def test_a_focus_value_names_its_classes_and_an_unknown_one_none() -> None:
    assert focus.focused_classes("all", CLASSES) == [] and focus.focused_classes(None, CLASSES) == []
    assert focus.focused_classes("c5", CLASSES) == ["c5"]
    assert focus.focused_classes(focus.pair_value("c9", "c3"), CLASSES) == ["c9", "c3"]
    assert focus.focused_classes("c9 ↔ gone", CLASSES) == [] and focus.focused_classes("gone", CLASSES) == []
    assert focus.focused_classes("a ↔ b", ["a ↔ b", "a", "b"]) == ["a ↔ b"]   # a class's own name first


def test_focused_classes_keep_a_colour_and_the_rest_turn_grey() -> None:
    colors = focus.focus_colors(CLASSES, ["c20", "c21"])
    assert colors["c20"] != colors["c21"] and OTHER_COLOR not in (colors["c20"], colors["c21"])
    assert {colors[c] for c in CLASSES if c not in ("c20", "c21")} == {OTHER_COLOR}
    assert colors[OTHER_CLASSES] == OTHER_COLOR
    few = ["a", "b", "c"]   # a small run keeps each class's usual colour for the focused one
    assert focus.focus_colors(few, ["b"]) == {"a": OTHER_COLOR, "b": class_colors(few)["b"], "c": OTHER_COLOR,
                                              OTHER_CLASSES: OTHER_COLOR}
    assert focus.focus_colors(few, []) == class_colors(few)


def _points() -> pd.DataFrame:
    return pd.DataFrame({"sample_id": range(6), "x": np.arange(6.0), "y": np.arange(6.0),
                         "true_name": ["a", "b", "c", "a", "c", "b"], "pred_name": ["a", "c", "c", "b", "a", "b"],
                         "confidence": np.linspace(0.5, 1, 6), "correct": [True, False, True, False, False, True]})


def test_map_points_out_of_focus_turn_grey_and_come_first() -> None:
    points = _points().assign(color=lambda p: p["correct"].map({True: "correct", False: "wrong"}))
    marked = focus.focus_points(points, ["a"])
    assert marked["sample_id"].tolist() == [1, 2, 5, 0, 3, 4]   # out of focus first, order kept
    assert marked["color"].tolist() == [OTHER_CLASSES] * 3 + ["correct", "wrong", "wrong"]
    confidence = focus.focus_points(_points().assign(color=lambda p: p["confidence"]), ["a"])
    assert confidence["color"].dtype.kind == "f" and confidence["in_focus"].tolist() == [False] * 3 + [True] * 3
    assert focus.focus_points(points, []) is points


def test_every_focused_point_is_drawn_within_the_budget() -> None:
    points = _points().assign(color=lambda p: p["true_name"])
    drawn = focus.drawn_in_focus(points, ["a"], budget=4)
    assert len(drawn) == 4 and set(drawn.loc[drawn["in_focus"], "sample_id"]) == {0, 3, 4}
    assert len(focus.drawn_in_focus(points, [], budget=4)) == 4


def test_tables_keep_the_rows_about_the_focus() -> None:
    table = pd.DataFrame({"class": CLASSES[:5], "recall": range(5)})
    assert focus.focus_rows(table, ["c3", "c1"])["class"].tolist() == ["c1", "c3"]
    assert focus.focus_rows(table, []) is table
    assert focus.focus_rows(PAIRS, ["c3"], "true", "predicted").index.tolist() == [0, 1, 2, 3]
    assert focus.focus_rows(PAIRS, ["c4", "c3"], "true", "predicted").index.tolist() == [0, 1]
    assert focus.focus_rows(PAIRS, ["c7"], "true", "predicted").index.tolist() == [2]


def test_the_gallery_opens_on_the_focus_cell() -> None:
    assert focus.focus_cell([]) is None
    assert focus.focus_cell(["c9", "c3"]) == {"true": "c9", "predicted": "c3"}
    assert focus.focus_cell(["c3"], PAIRS) == {"true": "c3", "predicted": "c4"}
    assert focus.focus_cell(["c7"], PAIRS) == {"true": "c7", "predicted": None}
