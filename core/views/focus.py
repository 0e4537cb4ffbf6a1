"""A focus: one class or a confused pair that a page picks out (in colour on the map, first in tables, in the
gallery), everything else grey. The URL parameter `focus` holds it: "all", a class name, or a pair "A ↔ B"."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.views.figures import OTHER_CLASSES, OTHER_COLOR, class_colors
from core.views.maps import MAP_POINT_BUDGET, drawn_points

ALL = "all"
PAIR = " ↔ "   # between the two classes of a pair (an arrow no class name of a real dataset is likely to hold)


def pair_value(a: str, b: str) -> str:
    """The focus value of a pair of classes."""
    return f"{a}{PAIR}{b}"


def focus_options(classes: Sequence[str], pairs: pd.DataFrame | None = None, requested: str | None = None
                  ) -> list[str]:
    """What a focus picker offers: all, then the most confused pairs (`confusion.confused_pairs`, each unordered
    pair once, most confused first), then every class. A selectbox searches them as the reader types. A
    `requested` pair of the run's classes (a link's) is offered too, first among the pairs."""
    seen: set[frozenset[str]] = set()
    pair_values = []
    if len(focused_classes(requested, classes)) == 2:
        seen.add(frozenset(focused_classes(requested, classes)))
        pair_values.append(requested)
    for true, pred in ([] if pairs is None else zip(pairs["true"], pairs["predicted"])):
        if frozenset((true, pred)) not in seen:
            seen.add(frozenset((true, pred)))
            pair_values.append(pair_value(true, pred))
    return [ALL, *pair_values, *classes]


def focused_classes(value: str | None, classes: Sequence[str]) -> list[str]:
    """The classes a focus value names, in its order: none for "all" or for a value naming an unknown class
    (a link from another run)."""
    if not value or value == ALL:
        return []
    if value in classes:   # a class whose name holds the pair arrow is still a class
        return [value]
    names = value.split(PAIR)
    return names if len(names) == 2 and all(name in classes for name in names) else []


def focus_colors(classes: Sequence[str], focused: Sequence[str]) -> dict[str, str]:
    """Colours of a chart by class: without a focus `class_colors`' usual ones; with one, the focused classes keep
    a distinct colour each (their usual one where the run is small enough to have one) and every other class is
    grey, under `OTHER_CLASSES`."""
    if not focused:
        return class_colors(classes)
    usual = class_colors(classes, focus=focused)
    return dict.fromkeys([*classes, OTHER_CLASSES], OTHER_COLOR) | {name: usual[name] for name in focused}


def focus_points(points: pd.DataFrame, focused: Sequence[str]) -> pd.DataFrame:
    """Map points (`tables.embedding_points`) with a focus: `in_focus` marks a point whose label or prediction is
    a focused class; a categorical colour value of any other point becomes `OTHER_CLASSES` (grey); the points out
    of focus come first so the focused ones are drawn on top. Unchanged without a focus."""
    if not focused:
        return points
    inside = points["true_name"].isin(focused) | points["pred_name"].isin(focused)
    points = points.assign(in_focus=inside)
    if points["color"].dtype.kind != "f":   # confidence stays a number: the page greys those points itself
        points["color"] = points["color"].astype(object).where(inside, OTHER_CLASSES)
    return points.sort_values("in_focus", kind="stable")


def focus_rows(table: pd.DataFrame, focused: Sequence[str], *columns: str) -> pd.DataFrame:
    """The rows of a table about the focus: with one focused class, those naming it in any of `columns` (default
    "class"); with a pair, those whose `columns` all name one of the two (a pair table's two directions, a class
    table's two rows). Every row without a focus."""
    if not focused:
        return table
    named = [table[column].isin(focused) for column in columns or ("class",)]
    keep = named[0]
    for one in named[1:]:
        keep = keep | one if len(focused) == 1 else keep & one
    return table[keep]


def focus_cell(focused: Sequence[str], pairs: pd.DataFrame | None = None) -> dict | None:
    """The confusion cell a focus opens the gallery on: a pair's (true A, predicted B); one class's most confused
    pair in `pairs` (`confusion.confused_pairs`) where it is the true class, else its own diagonal cell. None
    without a focus."""
    if len(focused) == 2:
        return {"true": focused[0], "predicted": focused[1]}
    if not focused:
        return None
    own = None if pairs is None else pairs[pairs["true"] == focused[0]]
    return {"true": focused[0], "predicted": own["predicted"].iloc[0] if own is not None and len(own) else None}


def drawn_in_focus(points: pd.DataFrame, focused: Sequence[str], budget: int = MAP_POINT_BUDGET) -> pd.DataFrame:
    """The map's drawn points with a focus (`focus_points`): every focused point (up to `budget`) and a fixed sample
    of the rest filling the budget, the rest first. Without a focus `maps.drawn_points`."""
    if not focused:
        return drawn_points(points, budget)
    marked = focus_points(points, focused)
    inside = drawn_points(marked[marked["in_focus"]], budget)
    return pd.concat([drawn_points(marked[~marked["in_focus"]], budget - len(inside)), inside])
