"""The focus picker: one class or a confused pair, typed into a searchable box and kept in the URL (`focus`), that
a page then picks out in colour on its charts, first in its tables and in its gallery. The focus follows the
reader to the run's other pages: a page opened without `?focus=` (the sidebar's menu drops it) shows the focus
last shown for the same run, and page links carry it (`links.with_focus`)."""
from __future__ import annotations

from typing import Any

import links
import pandas as pd
import runs
import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.views import confusion, focus

KEY = links.FOCUS


def run_pairs(run: runs.Run) -> pd.DataFrame:
    return confusion.confused_pairs(run.table("predictions"), run.classes)


def focus_pairs(run: runs.Run, focused: tuple[str, ...]) -> pd.DataFrame:
    """The most confused pairs about the focus (both directions of a focused pair); every pair's top without one."""
    pairs = confusion.confused_pairs(run.table("predictions"), run.classes, among=focused)
    return focus.focus_rows(pairs, focused, "true", "predicted")


def requested_focus(run: runs.Run) -> str | None:
    """The focus this page opens on: the URL's, else the one last shown for this run on another page."""
    return st.query_params.get(KEY) or links.remembered_focus(run.run_id)


def current_focus(run: runs.Run) -> list[str]:
    """The classes of the focus, for a page without a picker (none: no focus, or one naming unknown classes)."""
    return focus.focused_classes(requested_focus(run), run.classes)


def focus_picker(run: runs.Run, where: Any = st) -> list[str]:
    """The picker (all, the most confused pairs, every class) and the classes it names; none for "all"."""
    requested = requested_focus(run)
    options = focus.focus_options(run.classes, runs.cached(run_pairs, run), requested)
    if KEY not in st.query_params and requested in options and st.session_state.get(KEY, requested) == requested:
        # carried from another page (not a choice just made here): the picker's value, and the URL's (the picker
        # reads its bound parameter), as the run picker does with the run (runs._show_in_url)
        st.session_state[KEY] = requested
        try:
            st.query_params[KEY] = requested
        except StreamlitAPIException:   # the picker already drew on this page: it owns the parameter
            pass
    value = links.choice("Focus", KEY, options, focus.ALL, where=where,
                         help="Type to search. A class or a confused pair (A ↔ B) is shown in colour, everything "
                              "else in grey, and comes first in tables and galleries. It follows you to the run's "
                              "other pages.")
    links.remember_focus(run.run_id, value)
    return focus.focused_classes(value, run.classes)
