"""Overfitting: learning curves of every fold with their mean, best epochs, and the train−validation gap
by fold and by class."""
from __future__ import annotations

import charts
import links
import page_setup
import streamlit as st
from charts import chart

from core.views import figures
from core.views import tables as views

run = page_setup.for_run("Overfitting")
history, metrics = run.table("history"), run.json("metrics")
folds = [str(k) for k in sorted(history["fold"].unique())]

left, right = st.columns(2)
metric = links.choice("Curve", "metric", ["loss", "accuracy", "balanced_accuracy"], "loss", kind="radio", where=left)
highlight = links.choice("Highlight fold", "fold", ["all", *folds], "all", where=right,
                         help="Draw one fold's curves bold; the others stay faint.")
chart(figures.learning_curves(history, [metric], highlight))
st.caption("A validation curve that turns up while training keeps improving means the model memorises the "
           "training folds; the kept weights are those of the star.")

left, right = st.columns(2, gap="large")
with left:
    score = links.choice("Gap metric", "gap_metric", list(views.HEADLINE), "balanced_accuracy", kind="radio")
    chart(figures.fold_bars(views.fold_gaps(metrics, score), score))
    # the same metric held out, with its intervals: a gap inside them is one chance alone can make
    card = next(c for c in views.headline_cards(metrics) if c["metric"] == score)
    st.caption(f"{card['title']} **{card['value']}**  \n" + "  \n".join(card["lines"]))
with right:
    gaps = views.class_gaps(metrics, run.classes)
    chart(figures.class_gap_bars(gaps.head(charts.shown_classes(len(gaps), "gap_all")), run.classes))
    st.caption("Classes with the largest gap are learnt by heart rather than generalised: usually the rare ones. "
               "A fold without images of a class on both sides is left out of that class's gap.")

links.share_link()
