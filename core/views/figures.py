"""The colours of every chart, and the plotly figures the dashboard and the HTML report both draw, each from a frame
shaped by core.views.tables. The dashboard shows them in Streamlit's theme, the report in its own (`static`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.colors as pc
import plotly.graph_objects as go

from core.views import confusion
from core.views import tables as views

ROLE_COLORS = {"train": "#7f7f7f", "val": "#1f77b4", "test": "#ff7f0e"}
OUTCOME_COLORS = {"correct": "#2ca02c", "wrong": "#d62728"}
# A chart coloured by class gives this many classes a colour of their own, the others grey.
DISTINCT_CLASSES = 12
OTHER_COLOR, OTHER_CLASSES = "#c7c7c7", "other classes"
FOCUS_PALETTE = [c for c in pc.qualitative.Alphabet if c not in ("#565656", "#E2E2E2")]   # no grey but the rest's
# A per-class chart of more classes shows this many (the worst or largest) unless asked for all.
WORST_SHOWN = 20
HIGHLIGHT = "#d62728"  # what a chart points out: each fold's best epoch, a failing slice's images
MARGINS = {"margin": {"l": 10, "r": 10, "t": 50, "b": 10}, "title_x": 0}
# The report opens offline, maybe printed: plotly's white template instead of the dashboard's Streamlit theme.
STATIC_LOOK = {"template": "plotly_white", "font": {"size": 12}}


# ---------------------------------------------------------------- colours

def class_colors(classes: Sequence[str], focus: Sequence[str] = ()) -> dict[str, str]:
    """The same colour for a class everywhere: its index in the run's class order picks the colour. Past
    `DISTINCT_CLASSES` classes no eye tells the colours apart, so only the first `DISTINCT_CLASSES` of `focus` (the
    largest or worst classes of the chart; by default the first in class order) get one, and every other class is
    grey, under the name `OTHER_CLASSES` too (one legend entry for them all, see `legend_names`)."""
    if len(classes) <= DISTINCT_CLASSES:
        palette = pc.qualitative.D3 if len(classes) <= 10 else pc.qualitative.Alphabet
        return {name: palette[i] for i, name in enumerate(classes)}
    named = [name for name in dict.fromkeys(focus) if name in classes][:DISTINCT_CLASSES]
    named = named or list(classes[:DISTINCT_CLASSES])
    colors = dict.fromkeys([*classes, OTHER_CLASSES], OTHER_COLOR)
    return colors | {name: FOCUS_PALETTE[i] for i, name in enumerate(named)}


def legend_names(values: pd.Series, colors: dict[str, str]) -> pd.Series:
    """Class names with the grey ones (`class_colors`) called `OTHER_CLASSES`, to draw them as one trace."""
    grey = values.map(colors).eq(OTHER_COLOR) & values.ne(OTHER_CLASSES)
    return values.where(~grey, OTHER_CLASSES)


def category_colors(color_by: str, classes: Sequence[str], focus: Sequence[str] = ()) -> dict[str, str]:
    """Colour map of an embedding colouring (`tables.COLOR_BY`): classes for label/prediction, fixed ones otherwise."""
    if color_by in ("label", "prediction"):
        return class_colors(classes, focus)
    return OUTCOME_COLORS if color_by == "correct" else ROLE_COLORS


def static(figure: go.Figure) -> go.Figure:
    """The report's look of a figure."""
    return figure.update_layout(**STATIC_LOOK)


def _finish(figure: go.Figure, **layout) -> go.Figure:
    return figure.update_layout(**MARGINS, **layout)


# ---------------------------------------------------------------- overfitting

def learning_curves(history: pd.DataFrame, metrics: Sequence[str], highlight: str = "all") -> go.Figure:
    """Each metric by epoch in a panel of its own: thin lines are the folds (`highlight` names one to draw bold),
    dashed their mean, a star each fold's best epoch (the weights it kept)."""
    from plotly.subplots import make_subplots

    labels = [metric.replace("_", " ") for metric in metrics]
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=labels if len(metrics) > 1 else None,
                           horizontal_spacing=0.08)
    for column, metric in enumerate(metrics, start=1):
        per_fold, mean = views.learning_curves(history, metric)
        for (phase, fold), curve in per_fold.groupby(["phase", "fold"]):
            bold = highlight == str(fold)
            figure.add_scatter(x=curve["epoch"], y=curve[metric], mode="lines", name=f"{phase} fold {fold}",
                               line={"color": ROLE_COLORS[phase], "width": 3 if bold else 1},
                               opacity=1.0 if bold else 0.35 if highlight == "all" else 0.2, legendgroup=phase,
                               showlegend=False, row=1, col=column,
                               hovertemplate=f"fold {fold} {phase}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>")
        for phase, curve in mean.groupby("phase"):
            figure.add_scatter(x=curve["epoch"], y=curve[metric], mode="lines", name=f"{phase} (mean of folds)",
                               line={"color": ROLE_COLORS[phase], "width": 4, "dash": "dash"}, legendgroup=phase,
                               showlegend=column == 1, row=1, col=column)
        best = views.best_epochs(history, metric)
        figure.add_scatter(x=best["epoch"], y=best[metric], mode="markers", name="best epoch (kept weights)",
                           marker={"symbol": "star", "size": 14, "color": HIGHLIGHT,
                                   "line": {"width": 1, "color": "white"}},
                           text=[f"fold {k}" for k in best["fold"]], showlegend=column == 1, row=1, col=column,
                           hovertemplate="%{text}: best epoch %{x}, val %{y:.3f}<extra></extra>")
    figure.update_xaxes(title_text="epoch")
    if len(metrics) == 1:
        figure.update_yaxes(title_text=labels[0])
    what = f"{labels[0].capitalize()} by epoch" if len(metrics) == 1 else "Learning curves"
    _finish(figure, title=f"{what}: thin lines are folds, dashed their mean (grey = train, blue = validation)",
            height=430, legend={"orientation": "h", "y": -0.2})
    if len(metrics) > 1:
        figure.update_layout(margin_t=90)  # room for the panel titles under the title
    return figure


def fold_bars(by_fold: pd.DataFrame, metric: str) -> go.Figure:
    """A score of every fold model on its train, validation and test images (`tables.fold_gaps`)."""
    figure = go.Figure()
    for role in views.ROLES:
        if role in by_fold and by_fold[role].notna().any():
            figure.add_bar(x=by_fold["fold"].astype(str), y=by_fold[role], name=role, marker_color=ROLE_COLORS[role],
                           hovertemplate=f"fold %{{x}} {role}: %{{y:.1%}}<extra></extra>")
    label = metric.replace("_", " ")
    return _finish(figure, title=f"{label.capitalize()} per fold: train vs val vs test",
                   xaxis_title="fold", yaxis_title=label, yaxis_tickformat=".0%", yaxis_range=[0, 1],
                   barmode="group", height=380, legend={"orientation": "h", "y": -0.25})


def class_gap_bars(gaps: pd.DataFrame, classes: Sequence[str], colors: dict[str, str] | None = None) -> go.Figure:
    """Train minus validation recall of every class (`tables.class_gaps`), coloured by `colors` (class -> colour;
    default: the largest gaps in colour)."""
    colors = colors or class_colors(classes, focus=gaps["class"])   # the largest gaps first
    figure = go.Figure(go.Bar(x=gaps["gap"], y=gaps["class"], orientation="h",
                              marker_color=[colors[c] for c in gaps["class"]], customdata=gaps[["train", "val"]],
                              hovertemplate="%{y}: train %{customdata[0]:.1%}, val %{customdata[1]:.1%}"
                                            "<extra></extra>"))
    return _finish(figure, title="Recall gap by class (train − validation, mean over folds)", xaxis_title="recall gap",
                   xaxis_tickformat=".0%", yaxis_autorange="reversed", height=max(380, 160 + 26 * len(gaps)))


# ---------------------------------------------------------------- classes and calibration

def class_count_bars(counts: pd.DataFrame, classes: Sequence[str]) -> go.Figure:
    """Images per class (`tables.class_counts`), the test split's part pale (and named only when there is one): a
    bar per named class, or past `WORST_SHOWN` classes the long tail from the largest class to the smallest,
    unnamed (the hover names it) so the chart keeps its height."""
    many = len(counts) > WORST_SHOWN
    if many:
        counts = counts.sort_values("total", ascending=False, kind="stable")
    colors = class_colors(classes, focus=counts.sort_values("total", ascending=False, kind="stable")["class"])
    figure = go.Figure()
    has_test = bool(counts["test"].sum())
    title = "Images per class" + (" (pale = test split)" if has_test else "")
    for split, opacity in (("cv", 1.0), ("test", 0.45))[:1 + has_test]:
        names, sizes = counts["class"], counts[split]
        figure.add_bar(**({"x": names, "y": sizes} if many else {"y": names, "x": sizes, "orientation": "h"}),
                       name=split, opacity=opacity, marker_color=[colors[c] for c in counts["class"]],
                       hovertemplate=("%{x}: %{y}" if many else "%{y}: %{x}")
                       + " images (" + split + ")<extra></extra>")
    if many:
        return _finish(figure, barmode="stack", showlegend=False, height=380, xaxis_showticklabels=False,
                       xaxis_title=f"{len(counts)} classes, largest to smallest (hover for the name)",
                       yaxis_title="images", title=title)
    return _finish(figure, barmode="stack", title=title, xaxis_title="images",
                   yaxis_title=None, showlegend=False, height=140 + 28 * len(counts), yaxis_autorange="reversed")


SCORE_MARKS = {"recall": ("diamond", "#1f77b4"), "precision": ("circle-open", "#ff7f0e")}


def tail_scatter(frame: pd.DataFrame, cut: float | None = None) -> go.Figure:
    """Recall and precision of every class against its training images (`tables.scores_by_training_images`), log
    x, the fold min–max as error bars: two traces whatever the class count (the hover names the class), each class
    nudged sideways by a fixed few percent so classes of equal size do not hide each other; `cut` (the long-tail
    diagnostic's) drawn as a line."""
    frame = frame[frame["train_images"] > 0]
    classes = frame["class"].unique()
    nudge = dict(zip(classes, np.exp(np.random.default_rng(0).uniform(-0.06, 0.06, len(classes)))))
    figure = go.Figure()
    for score, (symbol, color) in SCORE_MARKS.items():
        part = frame[frame["score"] == score]
        figure.add_scatter(
            x=part["train_images"] * part["class"].map(nudge), y=part["mean"], mode="markers", name=score,
            marker={"symbol": symbol, "size": 7 if len(classes) > WORST_SHOWN else 10, "color": color,
                    "opacity": 0.8},
            error_y={"type": "data", "symmetric": False, "array": part["max"] - part["mean"],
                     "arrayminus": part["mean"] - part["min"], "thickness": 0.8, "width": 0, "color": color},
            customdata=np.column_stack([part["class"], part["train_images"], part["min"], part["max"],
                                        part["support"]]),
            hovertemplate=f"%{{customdata[0]}}: {score} %{{y:.1%}} (folds %{{customdata[2]:.0%}}–"
                          f"%{{customdata[3]:.0%}}), %{{customdata[1]:.3g}} training images per fold, "
                          f"%{{customdata[4]}} validation images<extra></extra>")
    if cut:
        figure.add_vline(x=cut, line_dash="dash", line_color="#7f7f7f")
        # an annotation on a log axis takes log10 of its position (a shape takes the value itself)
        figure.add_annotation(x=np.log10(cut), y=1, yref="paper", text=f"tail: under {cut:g}", showarrow=False,
                              xanchor="right", yanchor="bottom", font={"color": "#7f7f7f"})
    return _finish(figure, title="Recall ◆ and precision ○ against training images (mean over folds, bars: fold "
                                 "min–max)", xaxis_type="log", xaxis_title="training images per fold (log scale)",
                   yaxis_title="score", yaxis_tickformat=".0%", yaxis_range=[-0.03, 1.05], height=420,
                   legend={"orientation": "h", "y": -0.2})


def confusion_heatmap(metrics: dict, classes: list[str], source: str, *, share: bool = True,
                      clickable: bool = False) -> go.Figure:
    """The confusion matrix of one source (`matrix_heatmap`)."""
    return matrix_heatmap(views.confusion(metrics, source, normalize=False), classes,
                          f"Confusion matrix, {views.source_label(source)}", share=share, clickable=clickable)


def limited_confusion_heatmap(metrics: dict, classes: list[str], source: str, *, share: bool = True) -> go.Figure:
    """The confusion matrix of one source at any class count: past `confusion.MANY_CLASSES` classes, the classes
    most involved in errors, clustered, the rest summed in "other" (`confusion.clustered_confusion`)."""
    if len(classes) <= confusion.MANY_CLASSES:
        return confusion_heatmap(metrics, classes, source, share=share)
    limited, names = confusion.clustered_confusion(views.confusion(metrics, source, normalize=False), classes)
    title = f"Confusion of the {len(names) - 1} classes most involved in errors, {views.source_label(source)}"
    return matrix_heatmap(limited, names, title, share=share, cell=26)


def matrix_heatmap(counts: np.ndarray, names: list[str], title: str, *, share: bool = True,
                   clickable: bool = False, cell: int = 42) -> go.Figure:
    """A confusion matrix of counts, shown by row share (the count beneath) or by count, `cell` pixels a row.
    `clickable` lays an invisible marker on every cell, since heatmaps emit no selection events and markers do: a
    clicked point's customdata is [true index, predicted index, images]."""
    counts = np.asarray(counts, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) if share else counts
    text = [[f"{value:.0%}<br>({int(count)})" if share else f"{int(count)}" for value, count in zip(row, row_counts)]
            for row, row_counts in zip(values, counts)]
    hover = "true %{y} → predicted %{x}: " + ("%{z:.1%} (%{customdata} images)" if share else "%{customdata} images")
    shares_range = {"zmin": 0, "zmax": 1} if share else {}
    figure = go.Figure(go.Heatmap(z=values, x=names, y=names, colorscale="Blues", text=text,
                                  texttemplate="%{text}", showscale=False, customdata=counts.astype(int),
                                  hovertemplate=hover + "<extra></extra>", hoverinfo="skip" if clickable else None,
                                  **shares_range))
    n = len(names)
    if clickable:
        true_index, pred_index = np.divmod(np.arange(n * n), n)
        figure.add_scatter(x=[names[p] for p in pred_index], y=[names[t] for t in true_index], mode="markers",
                           marker={"size": max(12, 360 // n), "symbol": "square", "opacity": 0.01},
                           customdata=np.column_stack([true_index, pred_index, counts.ravel()]), showlegend=False,
                           hovertemplate="true %{y} → predicted %{x}: %{customdata[2]} images"
                                         "<extra>click to show</extra>")
    return _finish(figure, title=title + (": row % (count)" if share else ""), xaxis_title="predicted class",
                   yaxis_title="true class", height=180 + cell * n,
                   xaxis_range=[-0.5, n - 0.5], yaxis_range=[n - 0.5, -0.5],  # no padding around the markers
                   xaxis_tickangle=-30 if n > 4 else 0, clickmode="event+select" if clickable else None)


def reliability(calibration: dict, after: dict | None = None, what: str = "out-of-fold confidence") -> go.Figure:
    """Accuracy against confidence by confidence bin (a calibration report of the diagnostics); marker size =
    images. With `after`: the same images' report after temperature scaling, as a second line."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                       line={"dash": "dot", "color": "#999"})
    lines = [("model", calibration)] if after is None else [
        (f"before (ECE {calibration['ece']:.3f})", calibration), (f"after temperature scaling (ECE {after['ece']:.3f})",
                                                                   after)]
    for name, report in lines:
        bins = pd.DataFrame(report["bins"]).dropna(subset=["confidence"])
        figure.add_scatter(x=bins["confidence"], y=bins["accuracy"], mode="lines+markers", name=name,
                           marker={"size": 6 + 24 * bins["count"] / max(1, bins["count"].max())},
                           customdata=bins["count"],
                           hovertemplate="confidence %{x:.0%}: accuracy %{y:.0%} (%{customdata} images)<extra></extra>")
    if after is None:
        return _finish(figure, title=f"Reliability of {what} (ECE {calibration['ece']:.3f})",
                       xaxis_title="mean confidence in bin", yaxis_title="accuracy in bin", xaxis_tickformat=".0%",
                       yaxis_tickformat=".0%", height=420)
    return _finish(figure, title=f"Reliability of {what}, before and after temperature scaling",
                   xaxis_title="mean confidence in bin", yaxis_title="accuracy in bin", xaxis_tickformat=".0%",
                   yaxis_tickformat=".0%", height=460,
                   legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})   # under it: a narrow column


# ---------------------------------------------------------------- the report's map

def embedding_map(points: pd.DataFrame, classes: list[str], projection: str, total: int) -> go.Figure:
    """Backbone map coloured by given label; mistakes drawn as crosses. SVG scatter (no WebGL needed)."""
    colors = class_colors(classes, focus=points["true_name"].value_counts().index)   # the largest classes
    names = legend_names(points["true_name"], colors)
    figure = go.Figure()
    hover = points["path"] + "<br>" + points["true_name"] + " → " + points["pred_name"]
    for name in [*classes, OTHER_CLASSES]:
        for correct, symbol in ((True, "circle"), (False, "x")):
            mask = (names == name) & (points["correct"] == correct)
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
