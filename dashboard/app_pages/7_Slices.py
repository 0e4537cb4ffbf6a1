"""Slices: groups of similar images where the model fails far more than elsewhere, found by the diagnostics."""
from __future__ import annotations

from pathlib import Path

import activation_maps
import gallery
import links
import numpy as np
import page_setup
import pandas as pd
import plotly.graph_objects as go
import review_dialog
import runs
import streamlit as st
from charts import chart, finished
from formatting import plain

from core.views import figures
from core.views import images as explain_views
from core.views import maps as map_views

run = page_setup.for_run("Failing slices")


def slice_map(run: runs.Run, space: str, name: str) -> go.Figure:
    """The space's UMAP map (PCA until the diagnostics have run) with the slice's images drawn on top."""
    coords, _ = map_views.map_coords(Path(run.path), space, run.table("umap"))
    points = explain_views.slice_points(coords, run.table("slices"), name).merge(
        run.table("samples")[["sample_id", "path", "label"]], on="sample_id")
    figure = go.Figure()
    # The rest of the map, to the point budget, is only the backdrop: no hover text, which for 10,000 points is
    # most of the page's payload and of the browser's work. The slice's own images are all drawn, with hover.
    rest = map_views.drawn_points(points[~points["in_slice"]])
    figure.add_scattergl(x=rest["x"].to_numpy(np.float32), y=rest["y"].to_numpy(np.float32), mode="markers",
                         marker={"size": 5, "color": "#c7c7c7"}, name="other images", hoverinfo="skip")
    inside = points[points["in_slice"]]
    figure.add_scattergl(x=inside["x"].to_numpy(np.float32), y=inside["y"].to_numpy(np.float32), mode="markers",
                         marker={"size": 9, "color": figures.HIGHLIGHT}, name=name,
                         hovertext=inside["path"] + "<br>" + inside["label"], hoverinfo="text")
    figure.update_layout(title=f"{name} on the {space} map: its {int(points['in_slice'].sum())} images in red "
                               "(test split included)",
                         xaxis_title="map x", yaxis_title="map y", height=480, legend={"orientation": "h"})
    return finished(figure)


block = (run.json("diagnostics") or {}).get("slices")
if block is None or run.table("slices") is None:
    st.info("Failing slices appear once the diagnostics have run (after the last fold; "
            f"`python train_cli.py diagnose {run.run_id}` recomputes them).", icon=":material/pending:")
    links.share_link()
    st.stop()

table = explain_views.slice_table(block)
if table.empty:
    st.success(explain_views.no_slice_message(block), icon=":material/check_circle:")
    links.share_link()
    st.stop()

st.caption(f"Clusters of similar images (k-means in each embedding space) whose out-of-fold error is well above the "
           f"run's **{block['run_error']:.0%}**, not in one fold only, ranked by the errors they add. Pick one to see where "
           "it lies and what it holds.")
st.dataframe(table.drop(columns="description"), hide_index=True, width="stretch", column_config={
    **{c: st.column_config.NumberColumn(format="percent") for c in ("error", "run_error", "fold_min", "fold_max")},
    "fold_min": st.column_config.NumberColumn("lowest fold error", format="percent"),
    "fold_max": st.column_config.NumberColumn("highest fold error", format="percent")})
name = links.choice("Slice", "slice", list(table["slice"]), table["slice"].iloc[0])
found = next(row for row in block["found"] if row["slice"] == name)
st.markdown(f"**{plain(name)}.** {plain(found['description'])}")

left, right = st.columns([3, 2], gap="large")
with left:
    chart(runs.cached(slice_map, run, found["space"], name))
with right:
    mix = pd.DataFrame(found["class_mix"])
    figure = go.Figure(go.Bar(x=mix["count"], y=mix["class"], orientation="h",
                              marker_color=[figures.class_colors(run.classes)[c] for c in mix["class"]]))
    figure.update_layout(title="Labels in the slice", height=120 + 30 * len(mix), xaxis_title="images",
                         yaxis={"autorange": "reversed"})
    chart(figure)
    if found["confused_with"]:
        st.markdown("**Most common mistakes**  \n" + "  \n".join(
            f"{plain(pair['true'])} → {plain(pair['pred'])}: {pair['count']}" for pair in found["confused_with"]))
    if found["properties"]:
        st.markdown("**What sets its images apart**  \n" + "  \n".join(
            f"{p['property'].replace('_', ' ')}: median {p['slice_median']:.3g} vs {p['rest_median']:.3g} elsewhere "
            f"(AUC {p['auc']:.2f})" for p in found["properties"]))

st.subheader(f"Images of {plain(name)}")
rows = explain_views.slice_rows(run.rows("oof"), run.table("slices"), name, found["examples"])
st.caption(f"{len(rows)} validation images, the {len(found['examples'])} examples first (mistakes, most confident "
           "first).")
gallery.paged_gallery(rows, run, per_page=12, key="slice", cam=activation_maps.choice(default="off"))
like = st.expander("Images like this slice", key="like", on_change="rerun", icon=":material/search:")
if like.open:   # the neighbour index is built only when asked for
    with like:
        review_dialog.similar_section(run, rows["sample_id"].tolist(), "slice", default_space=found["space"])

links.share_link()
