"""Overfitting: learning curves of every fold with their mean, best epochs, and the train−validation gap
by fold and by class; and the training dynamics of every image (dataset cartography)."""
from __future__ import annotations

import charts
import gallery
import links
import page_setup
import pandas as pd
import plotly.graph_objects as go
import runs
import streamlit as st
from charts import chart, finished
from focus_picker import current_focus, focus_picker
from formatting import plain

from core.views import dynamics as dynamics_views
from core.views import figures
from core.views import focus as focus_views
from core.views import maps as map_views
from core.views import tables as views


def curves(run: runs.Run, metric: str, highlight: str) -> go.Figure:
    return finished(figures.learning_curves(run.table("history"), [metric], highlight))


def history_folds(run: runs.Run) -> list[str]:
    return [str(k) for k in sorted(run.table("history")["fold"].unique())]


def fold_gap_bars(run: runs.Run, score: str) -> go.Figure:
    return finished(figures.fold_bars(views.fold_gaps(run.json("metrics"), score), score))


def class_gap_bars(run: runs.Run, shown: int, focused: tuple[str, ...]) -> go.Figure:
    """The recall gap of the `shown` classes with the largest (`class_gaps` has a row per class), and of the
    focused classes wherever they rank, those in colour."""
    gaps = views.class_gaps(run.json("metrics"), run.classes)
    gaps = gaps[gaps.index < shown] if not focused else gaps[(gaps.index < shown) | gaps["class"].isin(focused)]
    colors = focus_views.focus_colors(run.classes, list(focused)) if focused else None
    return finished(figures.class_gap_bars(gaps, run.classes, colors))

def cartography_figure(points: pd.DataFrame, variability: float, confidence: float) -> go.Figure:
    """Variability (x) against confidence (y), one colour per band of epochs predicted right; agreed label
    issues ringed. The three regions are named where they lie."""
    figure = go.Figure()
    bands = sorted(points["band"].unique())
    colours = dict(zip(dynamics_views.correctness_band(pd.Series([0.1, 0.4, 0.6, 0.9])),
                       ["#d62728", "#ff7f0e", "#9ecae1", "#1f77b4"]))
    for band in bands:
        part = points[points["band"] == band]
        figure.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=f"right in {band} of epochs",
            marker={"color": colours.get(band, "#999"), "size": 7, "opacity": 0.8,
                    "line": {"width": [2 if a else 0 for a in part["agreed"]], "color": "black"}},
            customdata=part[["sample_id", "label", "forgetting"]].to_numpy(),
            hovertemplate="#%{customdata[0]} · %{customdata[1]}<br>confidence %{y:.2f} · variability %{x:.2f}"
                          "<br>forgetting events %{customdata[2]}<extra></extra>"))
    # the regions' borders as the diagnostics drew them (diagnostics.json's thresholds)
    figure.add_shape(type="line", x0=variability, x1=variability, y0=0, y1=1, line={"dash": "dot", "color": "#999"})
    figure.add_shape(type="line", x0=0, x1=variability, y0=confidence, y1=confidence,
                     line={"dash": "dot", "color": "#999"})
    for text, x, y in (("easy to learn", 0.01, 0.99), ("ambiguous", variability + 0.01, 0.99),
                       ("hard to learn", 0.01, 0.01)):
        figure.add_annotation(x=x, y=y, text=text, showarrow=False, xanchor="left", font={"color": "#666"})
    figure.update_layout(title="Dataset cartography: lasso or box-select to see the images",
                         xaxis_title="variability (std of the given label's probability over epochs)",
                         yaxis_title="confidence (mean probability of the given label)", height=560,
                         dragmode="lasso", xaxis={"range": [0, 0.5]}, yaxis={"range": [0, 1.02]})
    return figure


def dynamics_caption(row: pd.Series) -> str:
    badge = " :orange-badge[agreed label issue]" if row["agreed"] else ""
    return (f"**{plain(row['label'])}** · {row['region']}  \nconfidence {row['confidence']:.2f} · "
            f"forgotten {row['forgetting']}× · #{row['sample_id']}{badge}")


def show_dynamics() -> None:
    table = run.table("dynamics")
    if table is None or table.empty:
        page_setup.diagnostics_missing(
            run, "The training dynamics appear once the diagnostics have run on a run that kept them (runs "
                 "trained before foldlens kept them have none: train again).",
            consequence="there is no cartography map")
        return
    summary = (run.json("diagnostics") or {}).get("dynamics") or {}
    focused = current_focus(run)
    only = links.choice("Class", "class", ["all", *run.classes], focused[0] if len(focused) == 1 else "all",
                        help="The map of one class: its easy, ambiguous and hard-to-learn images.")
    points = dynamics_views.cartography_points(table, run.table("samples"), run.table("label_issues"), only)
    counts = dynamics_views.region_counts(points)
    # at scale a fixed random sample is drawn (as on Embeddings); a selection still takes every point in its region
    thresholds = (run.json("diagnostics") or {}).get("thresholds", {})
    borders = thresholds.get("cartography_variability", 0.2), thresholds.get("cartography_confidence", 0.5)
    event = chart(cartography_figure(map_views.drawn_points(points), *borders), on_select="rerun",
                  selection_mode=("box", "lasso"), key="cartography")
    threshold = summary.get("aum_threshold", {})
    st.caption(f"Each point is an image the folds trained on, measured at every epoch of every fold that trained "
               f"on it: {counts['easy']} easy, {counts['ambiguous']} ambiguous, {counts['hard']} hard to learn. "
               "Hard-to-learn images (low confidence, low variability) are often mislabelled; ambiguous ones "
               "swing between classes. Ringed: likely wrong labels (the label-issue headline). AUM threshold "
               f"{threshold.get('value', 0):.2f} ({threshold.get('method', 'not set')}).")
    selected = map_views.points_in_region(points, event.selection) if event else []
    if selected:
        chosen = dynamics_views.selected_images(points, selected)
        st.subheader(f"{len(chosen)} selected images")
        gallery.paged_gallery(chosen, run, key="cartography-selection", caption=dynamics_caption)
    else:
        st.caption("Select a region with the lasso or box tool to see its images here.")


run = page_setup.for_run("Overfitting")
metrics = run.json("metrics")
folds = runs.cached(history_folds, run)

curves_tab, dynamics_tab = links.tabs(["Learning curves", "Dynamics"])
if curves_tab.open:
    with curves_tab:
        left, right = st.columns(2)
        metric = links.choice("Curve", "metric", ["loss", "accuracy", "balanced_accuracy"], "loss", kind="radio",
                              where=left)
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
            focused = focus_picker(run)
            shown = charts.shown_classes(len(run.classes), "gap_all")
            chart(runs.cached(class_gap_bars, run, shown, tuple(focused)))
            st.caption("Classes with the largest gap are learnt by heart rather than generalised: usually the rare "
                       "ones. A fold without images of a class on both sides is left out of that class's gap.")

if dynamics_tab.open:
    with dynamics_tab:
        show_dynamics()

links.share_link()
