"""Embeddings: a 2-D map of an embedding space; lasso or box-select points to see their images."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import common
import review_list
from core import run_store, views

run = common.setup("Embeddings")


def space_points(run: common.Run, space: str, color: str) -> pd.DataFrame:
    """Map coordinates of `space` (UMAP, or a PCA stand-in until the diagnostics have run) with what to
    colour and hover."""
    maps = run.table("umap")
    if maps is not None and (maps["space"] == space).any():
        coords = maps[maps["space"] == space]
    else:
        coords = views.pca_2d(run_store.read_embedding(Path(run.path), space))
    rows = views.space_rows(run.table("predictions"), run.table("samples"), run.classes, space)
    points = views.embedding_points(coords, rows, color)
    points["hover"] = (points["path"] + "<br>label " + points["true_name"] + " → predicted " + points["pred_name"]
                       + " (" + (100 * points["confidence"]).round(1).astype(str) + "%)")
    return points


def map_spaces(run: common.Run) -> tuple[list[str], bool]:
    """(spaces to offer, whether they come from umap.parquet): a small cached answer, so a cached rerun
    never touches the 50k-row map table."""
    maps = run.table("umap")
    if maps is None:
        return list(run.info.get("spaces", ["backbone"])), False
    return sorted(set(maps["space"])), True


def map_figure(run: common.Run, space: str, color: str, only: str, projection: str) -> go.Figure:
    """The scatter (Scattergl: 50k points stay fluid), built once per view and cached."""
    points = space_points(run, space, color)
    if only != "all":
        points = points[(points["true_name"] == only) | (points["pred_name"] == only)]
    figure = go.Figure()
    size = 4 if len(points) > 5000 else 7
    if color == "confidence":
        figure.add_scattergl(x=points["x"], y=points["y"], mode="markers", customdata=points["sample_id"],
                             hovertext=points["hover"], hoverinfo="text", name="confidence",
                             marker={"size": size, "color": points["color"], "colorscale": "Viridis", "cmin": 0,
                                     "cmax": 1, "colorbar": {"title": {"text": "confidence"}}})
    else:
        colors = common.category_colors(color, run.classes)
        for value, group in points.groupby("color", sort=False):
            figure.add_scattergl(x=group["x"], y=group["y"], mode="markers", name=str(value),
                                 customdata=group["sample_id"], hovertext=group["hover"], hoverinfo="text",
                                 marker={"size": size, "color": colors.get(value, "#999"), "opacity": 0.8})
    figure.update_layout(title=f"{projection} of the {space} embedding, coloured by {color}: lasso or box-select "
                               f"to see the images ({len(points)} images)",
                         xaxis_title="map x", yaxis_title="map y", height=620, dragmode="lasso",
                         legend={"itemsizing": "constant"})
    return figure


spaces, from_umap = common.cached(map_spaces, run)
left, middle, right = st.columns([2, 3, 2])
space = common.choice("Space", "space", spaces, "backbone", where=left,
                      help="backbone = pretrained features before training; foldK = fold K's fine-tuned model.")
color = common.choice("Colour by", "color", list(views.COLOR_BY), "label", kind="radio", where=middle)
only = common.choice("Class", "class", ["all", *run.classes], "all", where=right,
                     help="Show only images whose label or prediction is this class.")
if not from_umap:
    common.diagnostics_missing(run, "The UMAP map is not computed yet (diagnostics run after the last fold), so "
                                    "this is a quick PCA projection of the same embedding.",
                               consequence="there is no UMAP map (this is a quick PCA projection of the same "
                                           "embedding instead)")

figure = common.cached(map_figure, run, space, color, only, "UMAP" if from_umap else "PCA")
event = common.chart(figure, on_select="rerun", selection_mode=("box", "lasso"), key="map")

selected = [int(p["customdata"]) for p in (event.selection.points if event else []) if "customdata" in p]
if selected:
    chosen = views.selected_rows(common.cached(space_points, run, space, color), selected)
    st.subheader(f"{len(chosen)} selected images")
    st.caption(f"{int((~chosen['correct']).sum())} of them are mistakes, shown first (most confident first).")
    common.paged_gallery(chosen, run, key="selection")
    like = st.expander("Images like this selection", key="like", on_change="rerun", icon=":material/search:")
    if like.open:   # the neighbour index is built only when asked for
        with like:
            review_list.similar_section(run, chosen["sample_id"].tolist(), "selection", default_space=space)
else:
    st.caption("Select a region with the lasso or box tool to see its images here.")

common.share_link()
