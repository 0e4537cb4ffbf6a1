"""Overfitting: learning curves of every fold with their mean, best epochs, and the train−validation gap
by fold and by class."""
from __future__ import annotations

import common
import plotly.graph_objects as go
import streamlit as st

from core.views import tables as views

run = common.setup("Overfitting")
history, metrics = run.table("history"), run.json("metrics")
folds = [str(k) for k in sorted(history["fold"].unique())]

left, right = st.columns(2)
metric = common.choice("Curve", "metric", ["loss", "accuracy", "balanced_accuracy"], "loss", kind="radio",
                       where=left)
highlight = common.choice("Highlight fold", "fold", ["all", *folds], "all", where=right,
                          help="Draw one fold's curves bold; the others stay faint.")

per_fold, mean = views.learning_curves(history, metric)
best = views.best_epochs(history, metric)
phase_colors = {"train": common.ROLE_COLORS["train"], "val": common.ROLE_COLORS["val"]}
figure = go.Figure()
for (phase, fold), curve in per_fold.groupby(["phase", "fold"]):
    bold = highlight == str(fold)
    figure.add_scatter(x=curve["epoch"], y=curve[metric], mode="lines", name=f"{phase} fold {fold}",
                       line={"color": phase_colors[phase], "width": 3 if bold else 1},
                       opacity=1.0 if bold or highlight == "all" else 0.25, legendgroup=phase, showlegend=False,
                       hovertemplate=f"fold {fold} {phase}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>")
for phase, curve in mean.groupby("phase"):
    figure.add_scatter(x=curve["epoch"], y=curve[metric], mode="lines", name=f"{phase} (mean of folds)",
                       line={"color": phase_colors[phase], "width": 4, "dash": "dash"}, legendgroup=phase)
figure.add_scatter(x=best["epoch"], y=best[metric], mode="markers", name="best epoch (kept weights)",
                   marker={"symbol": "star", "size": 14, "color": "#d62728", "line": {"width": 1, "color": "white"}},
                   text=[f"fold {k}" for k in best["fold"]],
                   hovertemplate="%{text}: best epoch %{x}, val %{y:.3f}<extra></extra>")
figure.update_layout(title=f"{metric.replace('_', ' ').capitalize()} by epoch: thin lines are folds, dashed the mean",
                     xaxis_title="epoch", yaxis_title=metric.replace("_", " "), height=430,
                     legend={"orientation": "h", "y": -0.2})
common.chart(figure)
st.caption("A validation curve that turns up while training keeps improving means the model memorises the "
           "training folds; the kept weights are those of the star.")

left, right = st.columns(2, gap="large")
with left:
    score = common.choice("Gap metric", "gap_metric", list(views.HEADLINE), "balanced_accuracy", kind="radio")
    by_fold = views.fold_gaps(metrics, score)
    figure = go.Figure()
    for role in ("train", "val", "test"):
        if by_fold[role].notna().any():
            figure.add_bar(x=by_fold["fold"].astype(str), y=by_fold[role], name=role,
                           marker_color=common.ROLE_COLORS[role], hovertemplate=f"{role}: %{{y:.1%}}<extra></extra>")
    figure.update_layout(title=f"{score.replace('_', ' ').capitalize()} per fold: train vs val vs test",
                         xaxis_title="fold", yaxis_title=score.replace("_", " "), yaxis_tickformat=".0%",
                         barmode="group", height=380, legend={"orientation": "h", "y": -0.25})
    common.chart(figure)
with right:
    by_class = views.class_gaps(metrics, run.classes)
    colors = common.class_colors(run.classes)
    figure = go.Figure()
    figure.add_bar(x=by_class["gap"], y=by_class["class"], orientation="h",
                   marker_color=[colors[c] for c in by_class["class"]],
                   customdata=by_class[["train", "val"]],
                   hovertemplate="%{y}: train %{customdata[0]:.1%}, val %{customdata[1]:.1%}<extra></extra>")
    figure.update_layout(title="Recall gap by class (train − val, mean over folds)", xaxis_title="recall gap",
                         xaxis_tickformat=".0%", yaxis={"autorange": "reversed"}, height=380)
    common.chart(figure)
    st.caption("Classes with the largest gap are learnt by heart rather than generalised: usually the rare ones. "
               "A fold without images of a class on both sides is left out of that class's gap.")

common.share_link()
