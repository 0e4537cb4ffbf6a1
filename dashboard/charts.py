"""Plotly figures on a page: core.views.figures draws the shared ones, this shows any figure the same way."""
from __future__ import annotations

from typing import Any

import runs  # noqa: F401  (puts the repository on the import path, for core below)
import streamlit as st

from core.views.figures import MARGINS


def chart(figure: Any, **kwargs: Any) -> Any:
    """st.plotly_chart with the dashboard's defaults (full width, compact margins, no Plotly logo)."""
    figure.update_layout(**MARGINS)
    return st.plotly_chart(figure, width="stretch", config={"displaylogo": False}, **kwargs)
