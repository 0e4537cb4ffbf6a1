"""The focus picker: one class or a confused pair, typed into a searchable box and kept in the URL (`focus`), that
a page then picks out in colour on its charts, first in its tables and in its gallery."""
from __future__ import annotations

from typing import Any

import links
import pandas as pd
import runs
import streamlit as st

from core.views import confusion, focus

KEY = "focus"


def run_pairs(run: runs.Run) -> pd.DataFrame:
    return confusion.confused_pairs(run.table("predictions"), run.classes)


def focus_pairs(run: runs.Run, focused: tuple[str, ...]) -> pd.DataFrame:
    """The most confused pairs about the focus (both directions of a focused pair); every pair's top without one."""
    pairs = confusion.confused_pairs(run.table("predictions"), run.classes, among=focused)
    return focus.focus_rows(pairs, focused, "true", "predicted")


def focus_picker(run: runs.Run, where: Any = st) -> list[str]:
    """The picker (all, the most confused pairs, every class) and the classes it names; none for "all"."""
    options = focus.focus_options(run.classes, runs.cached(run_pairs, run), st.query_params.get(KEY))
    value = links.choice("Focus", KEY, options, focus.ALL, where=where,
                         help="Type to search. A class or a confused pair (A ↔ B) is shown in colour, everything "
                              "else in grey, and comes first in tables and galleries.")
    return focus.focused_classes(value, run.classes)
