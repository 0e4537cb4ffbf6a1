"""Plotly figures on a page: core.views.figures draws the shared ones, this shows any figure the same way."""
from __future__ import annotations

from typing import Any

import runs  # noqa: F401  (puts the repository on the import path, for core below)
import streamlit as st

from core.views.figures import MARGINS, WORST_SHOWN


def finished(figure: Any) -> Any:
    """The figure with the dashboard's compact margins, marked so that `chart` draws it without changing it: what
    a view cached with `runs.cached` returns, since every session draws that same figure at once."""
    figure.update_layout(**MARGINS)
    figure._finished = True
    return figure


def chart(figure: Any, **kwargs: Any) -> Any:
    """st.plotly_chart with the dashboard's defaults (full width, compact margins, no Plotly logo)."""
    if not getattr(figure, "_finished", False):   # a shared figure is read-only: it came finished
        finished(figure)
    return st.plotly_chart(figure, width="stretch", config={"displaylogo": False}, **kwargs)


def shown_classes(n_classes: int, key: str) -> int:
    """How many classes a per-class chart shows: past `figures.WORST_SHOWN`, the worst ones unless the reader
    turns on the toggle (`key`) for all."""
    if n_classes <= WORST_SHOWN:
        return n_classes
    every = st.toggle(f"All {n_classes} classes", key=key,
                      help=f"Off: the {WORST_SHOWN} worst classes only, so the chart stays readable.")
    return n_classes if every else WORST_SHOWN
