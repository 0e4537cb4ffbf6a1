"""The least a dashboard page can cost in the browser, whatever the page does: a Streamlit page with a title
and nothing else (`?chart=none`), with one small Plotly bar chart (`bar`), or with one Plotly map of the
dashboard's point budget drawn as the Embeddings map draws it (`map`: Scattergl). bench_browser.py reloads
these beside the dashboard's pages, so its numbers show how much of a page's time is the page's own."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.map_views import MAP_POINT_BUDGET  # noqa: E402

chart = st.query_params.get("chart", "none")
st.title(f"floor: {chart}")
if chart == "bar":
    st.plotly_chart(go.Figure(go.Bar(x=[3, 1, 2], y=["a", "b", "c"], orientation="h")), width="stretch")
elif chart == "map":
    xy = np.random.default_rng(0).random((2, MAP_POINT_BUDGET), dtype=np.float32)
    figure = go.Figure(go.Scattergl(x=xy[0], y=xy[1], mode="markers", marker={"size": 4}))
    st.plotly_chart(figure.update_layout(height=620, dragmode="lasso"), width="stretch",
                    on_select="rerun", selection_mode=("box", "lasso"))
