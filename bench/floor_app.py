"""The least a dashboard page can cost in the browser, whatever the page does: a Streamlit page with a title
and nothing else (`?chart=none`), with one small Plotly bar chart (`bar`), or with one Plotly map of the
dashboard's point budget drawn as the Embeddings map draws it (`map`: Scattergl, lasso and box selection).
The same two charts in Vega-Lite (Altair, which Streamlit also draws: `vega-bar`, `vega-map` with box
selection; Vega-Lite has no lasso) show what the chart library costs. bench_browser.py reloads these beside the
dashboard's pages, so its numbers show how much of a page's time is the page's own."""
from __future__ import annotations

import sys
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.views.maps import MAP_POINT_BUDGET  # noqa: E402

chart = st.query_params.get("chart", "none")
st.title(f"floor: {chart}")
bars = pd.DataFrame({"count": [3, 1, 2], "class": ["a", "b", "c"]})
xy = pd.DataFrame(np.random.default_rng(0).random((MAP_POINT_BUDGET, 2), dtype=np.float32), columns=["x", "y"])
if chart == "bar":
    st.plotly_chart(go.Figure(go.Bar(x=bars["count"], y=bars["class"], orientation="h")), width="stretch")
elif chart == "map":
    figure = go.Figure(go.Scattergl(x=xy["x"], y=xy["y"], mode="markers", marker={"size": 4}))
    st.plotly_chart(figure.update_layout(height=620, dragmode="lasso"), width="stretch",
                    on_select="rerun", selection_mode=("box", "lasso"))
elif chart == "vega-bar":
    st.altair_chart(alt.Chart(bars).mark_bar().encode(x="count", y="class"), width="stretch")
elif chart == "vega-map":
    points = alt.Chart(xy).mark_circle(size=12).encode(x="x", y="y").properties(height=620)
    st.altair_chart(points.add_params(alt.selection_interval()), width="stretch", on_select="rerun")
