"""Overfitting: learning curves of every fold with their mean, best epochs, and the train−validation gap
by fold and by class."""
from __future__ import annotations

import charts
import links
import page_setup
import plotly.graph_objects as go
import runs
import streamlit as st
from charts import chart, finished

from core.views import figures
from core.views import tables as views


def curves(run: runs.Run, metric: str, highlight: str) -> go.Figure:
    return finished(figures.learning_curves(run.table("history"), [metric], highlight))


def history_folds(run: runs.Run) -> list[str]:
    return [str(k) for k in sorted(run.table("history")["fold"].unique())]


def fold_gap_bars(run: runs.Run, score: str) -> go.Figure:
    return finished(figures.fold_bars(views.fold_gaps(run.json("metrics"), score), score))


def class_gap_bars(run: runs.Run, shown: int) -> go.Figure:
    """The recall gap of the `shown` classes with the largest (`class_gaps` has a row per class)."""
    gaps = views.class_gaps(run.json("metrics"), run.classes)
    return finished(figures.class_gap_bars(gaps.head(shown), run.classes))


run = page_setup.for_run("Overfitting")
metrics = run.json("metrics")
folds = runs.cached(history_folds, run)

left, right = st.columns(2)
metric = links.choice("Curve", "metric", ["loss", "accuracy", "balanced_accuracy"], "loss", kind="radio", where=left)
highlight = links.choice("Highlight fold", "fold", ["all", *folds], "all", where=right,
                         help="Draw one fold's curves bold; the others stay faint.")
chart(runs.cached(curves, run, metric, highlight))
st.caption("A validation curve that turns up while training keeps improving means the model memorises the "
           "training folds; the kept weights are those of the star.")

left, right = st.columns(2, gap="large")
with left:
    score = links.choice("Gap metric", "gap_metric", list(views.HEADLINE), "balanced_accuracy", kind="radio")
    chart(runs.cached(fold_gap_bars, run, score))
    # the same metric held out, with its intervals: a gap inside them is one chance alone can make
    card = next(c for c in views.headline_cards(metrics) if c["metric"] == score)
    st.caption(f"{card['title']} **{card['value']}**  \n" + "  \n".join(card["lines"]))
with right:
    shown = charts.shown_classes(len(run.classes), "gap_all")
    chart(runs.cached(class_gap_bars, run, shown))
    st.caption("Classes with the largest gap are learnt by heart rather than generalised: usually the rare ones. "
               "A fold without images of a class on both sides is left out of that class's gap.")

links.share_link()
