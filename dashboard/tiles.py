"""A run's dataset images on a page: thumbnails with their captions in a grid, nothing clickable (the gallery adds
the buttons). Images are read from the run's dataset root only, their thumbnails from this machine's cache."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Hashable, Iterator

import pandas as pd
import runs
import streamlit as st
from formatting import literal

from core.config import default_cache_dir
from core.data.thumbnails import image_path, thumbnail


def tile(run: runs.Run, relative: str, caption: str, cam: str | None = None) -> Path | None:
    """One image's thumbnail and its caption; `cam`: a class activation map (a PNG) shown beside it. Returns the
    full-size image's path, or None when the image is unavailable."""
    path = image_path(run.info.get("dataset", {}).get("root", ""), relative)
    # The thumbnail cache of this machine, not the run's recorded one: the run may come from elsewhere.
    small = thumbnail(path, cache_dir=default_cache_dir()) if path else None
    if small and cam:
        picture, heat = st.columns(2, gap="small")
        picture.image(str(small), width="stretch")
        heat.image(cam, width="stretch")
    elif small:
        st.image(str(small), width="stretch")
    else:
        st.warning(f"image unavailable: {literal(relative)}", icon=":material/hide_image:")
    st.markdown(caption)
    return path if small else None


def grid(rows: pd.DataFrame, columns: int) -> Iterator[tuple[Hashable, pd.Series]]:
    """The rows `columns` to a line, each (index, row) yielded inside its cell; says so when there are none."""
    if rows.empty:
        st.caption("No images to show.")
        return
    for start in range(0, len(rows), columns):
        for column, (position, row) in zip(st.columns(columns), rows.iloc[start:start + columns].iterrows()):
            with column:
                yield position, row


def plain_gallery(rows: pd.DataFrame, run: runs.Run, caption: Callable[[pd.Series], str], columns: int = 6) -> None:
    """Thumbnails (`path` column) with a caption each, nothing to click: inside a dialog (dialogs do not nest),
    or for images of another run than the one picked in the sidebar."""
    for _, row in grid(rows, columns):
        tile(run, row["path"], caption(row))
