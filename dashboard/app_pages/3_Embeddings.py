"""Embeddings: a 2-D map of an embedding space; lasso or box-select points to see their images. A run's unlabelled
pool (`train_cli.py pool`) is drawn on the backbone map, and its last picks shown below."""
from __future__ import annotations

from pathlib import Path

import gallery
import links
import numpy as np
import page_setup
import pandas as pd
import plotly.graph_objects as go
import review_dialog
import runs
import streamlit as st
import tiles
from charts import chart, finished
from focus_picker import focus_picker
from formatting import literal

from core.config import default_cache_dir
from core.data.thumbnails import thumbnail
from core.store import run_store

from core.views import figures
from core.views import focus as focus_views
from core.views import maps as map_views
from core.views import pool as pool_views
from core.views import tables as views

run = page_setup.for_run("Embeddings")


def space_points(run: runs.Run, space: str, color: str, only: str = "all") -> pd.DataFrame:
    """Map coordinates of `space` (UMAP, or a PCA stand-in until the diagnostics have run) with what to
    colour, restricted to images whose label or prediction is `only`: every point a selection can take."""
    coords, _ = map_views.map_coords(Path(run.path), space, run.table("umap"))
    rows = views.space_rows(run.table("predictions"), run.table("samples"), run.classes, space)
    points = views.embedding_points(coords, rows, color)
    if only != "all":
        points = points[(points["true_name"] == only) | (points["pred_name"] == only)]
    return points.reset_index(drop=True)


def pool_layer(run: runs.Run, space: str) -> pd.DataFrame | None:
    """The pool's points on the backbone map (None on other spaces, or without a pool)."""
    if space != "backbone":
        return None
    coords, _ = map_views.map_coords(Path(run.path), space, run.table("umap"))
    return pool_views.pool_points(Path(run.path), coords)


def pool_picks(run: runs.Run) -> tuple[str | None, pd.DataFrame | None]:
    """(the pool's one-line summary, its last picks with their files): (None, None) without a pool."""
    stored = run_store.read_pool(Path(run.path))
    if stored is None:
        return None, None
    return pool_views.pool_summary(stored.info), pool_views.picks_gallery(run_store.read_picks(Path(run.path)),
                                                                          stored.table)


def map_spaces(run: runs.Run) -> tuple[list[str], bool]:
    """(spaces to offer, whether they come from umap.parquet): a small cached answer, so a cached rerun
    never touches the 50k-row map table."""
    maps = run.table("umap")
    if maps is None:
        return list(run.info.get("spaces", ["backbone"])), False
    return sorted(set(maps["space"])), True


def map_figure(run: runs.Run, space: str, color: str, only: str, projection: str,
               focused: tuple[str, ...] = ()) -> go.Figure:
    """The scatter (Scattergl), built once per view and cached. Beyond `map_views.MAP_POINT_BUDGET` points it
    draws a fixed sample; a selection still takes every point in its region. Coordinates and hover values
    travel as typed arrays (float32), the hover text is put together in the browser by a template. With a focus
    (`focused` classes) every point of it is drawn in colour over the rest in grey."""
    points = runs.cached(space_points, run, space, color, only)
    drawn = focus_views.drawn_in_focus(points, focused)
    figure = go.Figure()
    size = 4 if len(drawn) > 5000 else 7
    hover = "%{text} (%{customdata[1]:.0%})<br>image %{customdata[0]}<extra>%{fullData.name}</extra>"

    def trace(part: pd.DataFrame, name: str, marker: dict) -> None:
        figure.add_scattergl(x=part["x"].to_numpy(np.float32), y=part["y"].to_numpy(np.float32), mode="markers",
                             name=name, marker=marker, hovertemplate=hover,
                             customdata=part[["sample_id", "confidence"]].to_numpy(np.float32),
                             text=(part["true_name"] + " → " + part["pred_name"]).tolist())

    if color == "confidence":
        if focused:   # the points out of focus in grey, under the coloured ones
            trace(drawn[~drawn["in_focus"]], figures.OTHER_CLASSES,
                  {"size": size, "color": figures.OTHER_COLOR, "opacity": 0.6})
            drawn = drawn[drawn["in_focus"]]
        trace(drawn, "confidence", {"size": size, "color": drawn["color"].to_numpy(np.float32),
                                    "colorscale": "Viridis", "cmin": 0, "cmax": 1,
                                    "colorbar": {"title": {"text": "confidence"}}})
    else:
        colors = {figures.OTHER_CLASSES: figures.OTHER_COLOR} | (
            focus_views.focus_colors(run.classes, focused) if focused and color in ("label", "prediction")
            else figures.category_colors(color, run.classes, focus=drawn["color"].value_counts().index))
        for value, group in drawn.groupby(figures.legend_names(drawn["color"], colors), sort=False):
            trace(group, str(value), {"size": size, "color": colors.get(value, "#999"), "opacity": 0.8})
    layer = runs.cached(pool_layer, run, space)
    if layer is not None:   # hover text only, no customdata: a click on a pool image selects no labelled image
        for name, part, marker in (
                (pool_views.POOL_NAME, layer[~layer["picked"]],
                 {"size": size + 1, "symbol": "circle-open", "color": pool_views.POOL_COLOR}),
                (pool_views.PICKED_NAME, layer[layer["picked"]],
                 {"size": size + 5, "symbol": "diamond-open", "color": pool_views.PICKED_COLOR, "line": {"width": 2}})):
            if len(part):
                figure.add_scattergl(x=part["x"].to_numpy(np.float32), y=part["y"].to_numpy(np.float32),
                                     mode="markers", name=name, marker=marker, text=part["hover"].tolist(),
                                     hovertemplate="%{text}<extra></extra>")
    figure.update_layout(title=f"{projection} of the {space} embedding, coloured by {color}: lasso or box-select "
                               f"to see the images ({len(points)} images)",
                         xaxis_title="map x", yaxis_title="map y", height=620, dragmode="lasso",
                         legend={"itemsizing": "constant"})
    return finished(figure)


spaces, from_umap = runs.cached(map_spaces, run)
left, middle, right, last = st.columns([2, 3, 2, 2])
space = links.choice("Space", "space", spaces, "backbone", where=left,
                     help="backbone = pretrained features before training; foldK = fold K's fine-tuned model.")
color = links.choice("Colour by", "color", list(views.COLOR_BY), "label", kind="radio", where=middle)
only = links.choice("Class", "class", ["all", *run.classes], "all", where=right,
                    help="Show only images whose label or prediction is this class.")
focused = focus_picker(run, where=last)
if not from_umap:
    page_setup.diagnostics_missing(run, "The UMAP map is not computed yet (diagnostics run after the last fold), "
                                        "so this is a quick PCA projection of the same embedding.",
                                   consequence="there is no UMAP map (this is a quick PCA projection of the same "
                                               "embedding instead)")

figure = runs.cached(map_figure, run, space, color, only, "UMAP" if from_umap else "PCA", tuple(focused))
event = chart(figure, on_select="rerun", selection_mode=("box", "lasso"), key="map")
points = runs.cached(space_points, run, space, color, only)   # every point, drawn or not
drawn = len(focus_views.drawn_in_focus(points, focused))
if drawn < len(points):
    st.caption(f"{drawn} of the {len(points)} images are drawn (a random sample, so the map stays quick); a "
               "selection takes every image inside it, drawn or not.")

# The selection's region applied to every point (the chart only knows the drawn ones).
selected = map_views.points_in_region(points, event.selection) if event else []
if selected:
    chosen = views.selected_rows(points, selected)
    st.subheader(f"{len(chosen)} selected images")
    st.caption(f"{int((~chosen['correct']).sum())} of them are mistakes, shown first (most confident first).")
    gallery.paged_gallery(chosen, run, key="selection")
    like = st.expander("Images like this selection", key="like", on_change="rerun", icon=":material/search:")
    if like.open:   # the neighbour index is built only when asked for
        with like:
            review_dialog.similar_section(run, chosen["sample_id"].tolist(), "selection", default_space=space)
else:
    st.caption("Select a region with the lasso or box tool to see its images here.")

summary, picks = runs.cached(pool_picks, run)
with st.expander("Unlabelled pool: which images to label next", icon=":material/label:"):
    if summary is None:
        st.caption(f"No unlabelled pool yet. Add a folder of unlabelled images with "
                   f"`{pool_views.ADD_COMMAND.format(run_id=run.run_id)}`; they are drawn on the backbone map.")
    else:
        st.caption(summary)
    if summary is not None and picks is None:
        st.caption(f"Rank which to label next with `{pool_views.PICK_COMMAND.format(run_id=run.run_id)}`.")
    if picks is not None:
        st.markdown(f"**{len(picks)} pool images to label next** ({picks['strategy'].iloc[0] if len(picks) else '-'}, "
                    f"best first), the diamonds on the backbone map.")
        st.download_button("Download to_label.csv", picks.drop(columns="file").to_csv(index=False).encode(),
                           file_name="to_label.csv", mime="text/csv", icon=":material/download:")
        for _, row in tiles.grid(picks, 6):
            listed = isinstance(row["file"], str)   # a file the pool lists, still there
            small = thumbnail(Path(row["file"]), cache_dir=default_cache_dir()) if listed else None
            if small:
                st.image(str(small), width="stretch")
            else:
                st.warning(f"image unavailable: {literal(row['path'])}", icon=":material/hide_image:")
            st.markdown(f"**#{row['rank']}** predicted {literal(row['prediction'])} ({row['confidence']:.0%})")
            st.caption(row["reason"])

links.share_link()
