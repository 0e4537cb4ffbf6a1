"""The report's plotly figures, each from a frame shaped by core.views.tables (static: no selection, no WebGL)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.colors as pc
import plotly.graph_objects as go

from core.views import tables as views

ROLE_COLORS = {"train": "#7f7f7f", "val": "#1f77b4", "test": "#ff7f0e"}
LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 50, "b": 10}, "title_x": 0,
          "font": {"size": 12}}


def class_colors(classes: list[str]) -> dict[str, str]:
    """The dashboard's class colours (dashboard/common.py): the class index picks the colour."""
    palette = pc.qualitative.D3 if len(classes) <= 10 else pc.qualitative.Alphabet
    if len(classes) > len(palette):
        palette = pc.sample_colorscale("Turbo", list(np.linspace(0, 1, len(classes))))
    return {name: palette[i % len(palette)] for i, name in enumerate(classes)}


def _finish(figure: go.Figure, **layout) -> go.Figure:
    figure.update_layout(**LAYOUT, **layout)
    return figure


def fold_bars(by_fold: pd.DataFrame) -> go.Figure:
    """Balanced accuracy of every fold model on train, validation and test."""
    figure = go.Figure()
    for role in views.ROLES:
        if role in by_fold and by_fold[role].notna().any():
            figure.add_bar(x=by_fold["fold"].astype(str), y=by_fold[role], name=role, marker_color=ROLE_COLORS[role],
                           hovertemplate=f"fold %{{x}} {role}: %{{y:.1%}}<extra></extra>")
    return _finish(figure, title="Balanced accuracy of each fold model: train vs validation vs test",
                   xaxis_title="fold", yaxis_tickformat=".0%", yaxis_range=[0, 1], barmode="group", height=340,
                   legend={"orientation": "h", "y": -0.25})


def confusion_heatmap(metrics: dict, classes: list[str], source: str) -> go.Figure:
    """Row-normalised confusion (share of each true class) with the counts written in the cells."""
    shares = views.confusion(metrics, source, normalize=True)
    counts = views.confusion(metrics, source, normalize=False).astype(int)
    text = [[f"{share:.0%}<br>({count})" for share, count in zip(r1, r2)] for r1, r2 in zip(shares, counts)]
    figure = go.Figure(go.Heatmap(z=shares, x=classes, y=classes, colorscale="Blues", zmin=0, zmax=1, text=text,
                                  texttemplate="%{text}", showscale=False,
                                  hovertemplate="true %{y} → predicted %{x}: %{z:.1%}<extra></extra>"))
    n = len(classes)
    return _finish(figure, title=f"Confusion matrix, {views.source_label(source)} (row %, counts)",
                   xaxis_title="predicted class", yaxis_title="true class", yaxis_autorange="reversed",
                   height=200 + 40 * n, xaxis_tickangle=-30 if n > 4 else 0)


def learning_curves(history: pd.DataFrame) -> go.Figure:
    """Loss and balanced accuracy by epoch side by side: thin lines are folds, dashed the mean of folds."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "balanced accuracy"), horizontal_spacing=0.08)
    for column, metric in enumerate(("loss", "balanced_accuracy"), start=1):
        per_fold, mean = views.learning_curves(history, metric)
        for (phase, fold), curve in per_fold.groupby(["phase", "fold"]):
            figure.add_scatter(x=curve["epoch"], y=curve[metric], mode="lines", line={"color": ROLE_COLORS[phase],
                               "width": 1}, opacity=0.35, showlegend=False, row=1, col=column,
                               hovertemplate=f"fold {fold} {phase}, epoch %{{x}}: %{{y:.3f}}<extra></extra>")
        for phase, curve in mean.groupby("phase"):
            figure.add_scatter(x=curve["epoch"], y=curve[metric], mode="lines", name=f"{phase} (mean of folds)",
                               line={"color": ROLE_COLORS[phase], "width": 3, "dash": "dash"},
                               showlegend=column == 1, row=1, col=column)
        best = views.best_epochs(history, metric)
        figure.add_scatter(x=best["epoch"], y=best[metric], mode="markers", name="kept epoch",
                           marker={"symbol": "star", "size": 12, "color": "#d62728"}, showlegend=column == 1,
                           text=[f"fold {k}" for k in best["fold"]], row=1, col=column,
                           hovertemplate="%{text}: kept epoch %{x}, val %{y:.3f}<extra></extra>")
    figure.update_xaxes(title_text="epoch")
    figure = _finish(figure, title="Learning curves (grey = train, blue = validation)", height=400,
                     legend={"orientation": "h", "y": -0.2})
    figure.update_layout(margin_t=90)  # room for the subplot titles under the title
    return figure


def class_gap_bars(gaps: pd.DataFrame, classes: list[str]) -> go.Figure:
    colors = class_colors(classes)
    figure = go.Figure(go.Bar(x=gaps["gap"], y=gaps["class"], orientation="h",
                              marker_color=[colors[c] for c in gaps["class"]], customdata=gaps[["train", "val"]],
                              hovertemplate="%{y}: train %{customdata[0]:.1%}, val %{customdata[1]:.1%}"
                                            "<extra></extra>"))
    return _finish(figure, title="Recall gap by class (train − validation, mean over folds)",
                   xaxis_tickformat=".0%", yaxis_autorange="reversed", height=160 + 26 * len(classes))


def class_count_bars(counts: pd.DataFrame, classes: list[str]) -> go.Figure:
    colors = class_colors(classes)
    figure = go.Figure()
    for split, opacity in (("cv", 1.0), ("test", 0.45)):
        figure.add_bar(y=counts["class"], x=counts[split], name=split, orientation="h", opacity=opacity,
                       marker_color=[colors[c] for c in counts["class"]],
                       hovertemplate="%{y}: %{x} images (" + split + ")<extra></extra>")
    return _finish(figure, barmode="stack", title="Images per class (pale = test split)", xaxis_title="images",
                   showlegend=False, height=140 + 26 * len(counts), yaxis_autorange="reversed")


def reliability(calibration: dict) -> go.Figure:
    bins = pd.DataFrame(calibration["bins"]).dropna(subset=["confidence"])
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                       line={"dash": "dot", "color": "#999"})
    figure.add_scatter(x=bins["confidence"], y=bins["accuracy"], mode="lines+markers", name="model",
                       marker={"size": 6 + 20 * bins["count"] / max(1, bins["count"].max())}, customdata=bins["count"],
                       hovertemplate="confidence %{x:.0%}: accuracy %{y:.0%} (%{customdata} images)<extra></extra>")
    return _finish(figure, title=f"Reliability of out-of-fold confidence (ECE {calibration['ece']:.3f})",
                   xaxis_title="mean confidence in bin", yaxis_title="accuracy in bin", xaxis_tickformat=".0%",
                   yaxis_tickformat=".0%", height=380)


def embedding_map(points: pd.DataFrame, classes: list[str], projection: str, total: int) -> go.Figure:
    """Backbone map coloured by given label; mistakes drawn as crosses. SVG scatter (no WebGL needed)."""
    colors = class_colors(classes)
    figure = go.Figure()
    hover = points["path"] + "<br>" + points["true_name"] + " → " + points["pred_name"]
    for name in classes:
        for correct, symbol in ((True, "circle"), (False, "x")):
            mask = (points["true_name"] == name) & (points["correct"] == correct)
            if mask.any():
                figure.add_scatter(x=points.loc[mask, "x"], y=points.loc[mask, "y"], mode="markers",
                                   name=name if correct else f"{name} (mistake)", legendgroup=name,
                                   hovertext=hover[mask], hoverinfo="text",
                                   marker={"color": colors[name], "symbol": symbol, "size": 6 if correct else 8,
                                           "opacity": 0.7 if correct else 1.0})
    shown = f"{len(points)} of {total} images (random sample)" if len(points) < total else f"{total} images"
    return _finish(figure, title=f"{projection} of the pretrained backbone's embedding by given label; × = mistake "
                                 f"({shown})", xaxis_title="map x", yaxis_title="map y", height=560,
                   legend={"itemsizing": "constant"})
