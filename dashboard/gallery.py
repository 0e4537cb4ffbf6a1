"""Galleries of a run's images: each thumbnail with a full-size button and a button that opens its review dialog,
pages of them with an "add them all to the review list" control, and class activation maps beside predictions."""
from __future__ import annotations

from typing import Callable

import activation_maps
import links
import pandas as pd
import review_dialog
import review_list
import runs
import streamlit as st
import tiles
from formatting import percent, plain

from core.views import tables as views


def prediction_caption(row: pd.Series) -> str:
    """✓/✗, true → predicted class, confidence and sample id, plus badges when the row has them."""
    verdict = ":green[✓]" if row["true_name"] == row["pred_name"] else ":red[✗]"
    badges = [text for column, text in (("label_issue", ":orange-badge[suspected label issue]"),
                                        ("duplicate", ":violet-badge[duplicate]")) if row.get(column, False)]
    return (f"{verdict} **{plain(row['true_name'])}** → {plain(row['pred_name'])}  \n{percent(row['confidence'])} · "
            f"#{row['sample_id']}" + ("  \n" + " ".join(badges) if badges else ""))


def paged_gallery(rows: pd.DataFrame, run: runs.Run, *, per_page: int = 18, key: str = "gallery",
                  caption: Callable[[pd.Series], str] = prediction_caption, cam: str = "off") -> None:
    """A gallery with a URL-bound pager (`page`) above it, and an "add all of them to the review list" control."""
    if "sample_id" in rows and len(rows):
        review_list.add_many(run, rows["sample_id"], f"{key}-all", what=f"all {len(rows)} images",
                             suggested=review_list.suggestions(rows))
    page = links.pager(views.page_count(len(rows), per_page))
    gallery(views.page_of(rows, page, per_page), run, key=key, caption=caption, cam=cam)


def gallery(rows: pd.DataFrame, run: runs.Run, *, columns: int = 6, key: str = "gallery",
            caption: Callable[[pd.Series], str] = prediction_caption, cam: str = "off") -> None:
    """Thumbnails (`path` column) with a caption and buttons each (see `image`). With `cam` "predicted" or "true"
    (prediction rows only) each thumbnail has its class activation map beside it. The images are drawn at once;
    maps not computed yet are computed below them and the page is drawn again with them."""
    maps, missing = activation_maps.cached_overlays(run, rows, cam)
    columns = min(columns, 4) if maps or missing else columns   # image and map side by side need the room
    for position, row in tiles.grid(rows, columns):
        detail = (int(row["sample_id"]), str(row["model"]), int(row["pred"]), int(row["label"])) \
            if {"model", "pred", "label"} <= set(row.index) else None   # a prediction: maps on opening
        image(run, row["path"], caption(row), key=f"{key}-{position}", sample_id=row.get("sample_id"),
              cam=maps.get(position), detail=detail)
    if missing and activation_maps.compute(run, missing):
        st.rerun()   # cached now: the next pass draws them beside their images


def image(run: runs.Run, relative: str, caption: str, key: str, *, sample_id: int | None = None,
          cam: str | None = None, detail: tuple[int, str, int, int] | None = None) -> None:
    """One thumbnail with its caption, a full-size button and, for a sample of the run, a button that opens its
    review dialog; `cam`: a class activation map shown beside it; `detail` (sample_id, model, pred, label): the
    full-size view offers the maps of both classes."""
    path = tiles.tile(run, relative, caption, cam)
    if path and st.button("Full size", key=key, icon=":material/open_in_full:", type="tertiary"):
        _full_image(str(path), f"{relative} · {caption}", run, detail)
    if sample_id is not None:
        review_dialog.review_button(run, int(sample_id), key)


@st.dialog("Image", width="large")
def _full_image(path: str, caption: str, run: runs.Run, detail: tuple[int, str, int, int] | None) -> None:
    if detail is None:
        st.image(path)
    else:
        sample_id, model, pred, label = detail
        which = st.radio("Class activation map of the", ["predicted", "true"], horizontal=True, key="detail_cam",
                         format_func=lambda w: f"{w} class ({run.classes[pred if w == 'predicted' else label]})")
        rows = pd.DataFrame([{"sample_id": sample_id, "model": model, "pred": pred, "label": label}])
        maps = activation_maps.overlays(run, rows, which)
        left, right = st.columns(2)
        left.image(path, width="stretch")
        if maps:
            shown = run.classes[pred if which == "predicted" else label]
            right.image(maps[0], width="stretch",
                        caption=f"where {model} finds evidence for {shown} (in the centre crop it sees)")
    st.markdown(caption)
