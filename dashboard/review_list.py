"""The review list: images the user wants to drop, relabel or keep, gathered from every page of one run.

It lives in the browser session (one list per run) and, while short, in the `review` URL parameter so a copied
link carries it (`core.data.cleaning.encode_review`). Nothing here writes into a run; the Review page turns the
list into downloads. Also the per-image dialog: evidence, add to the list, and similar images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import common
import pandas as pd
import streamlit as st

from core.analysis import similar
from core.config import default_cache_dir
from core.data import cleaning
from core.data.cleaning import Decision
from core.views import tables as views

LISTS = "_review_lists"        # session state: {run_id: [Decision, ...]}
URL_READ = "_review_url_read"  # the URL's list is taken once per session, for the run in that URL
PARAM = "review"
ACTION_LABELS = {"drop": "drop", "relabel": "relabel to…", "keep": "keep (reviewed, fine)",
                 "suggested": "relabel to the suggested class"}
SIMILAR_K = 12


# ---------------------------------------------------------------- the list in session state and the URL

def decisions(run: common.Run) -> list[Decision]:
    lists = st.session_state.setdefault(LISTS, {})
    if not st.session_state.get(URL_READ):
        st.session_state[URL_READ] = True
        lists.setdefault(run.run_id, cleaning.decode_review(st.query_params.get(PARAM), run.classes,
                                                            int(run.info.get("dataset", {}).get("n_images", 0))))
    return list(lists.get(run.run_id, []))


def save(run: common.Run, new: list[Decision]) -> None:
    st.session_state.setdefault(LISTS, {})[run.run_id] = new
    sync_url(run)


def sync_url(run: common.Run) -> None:
    """Mirror the list into the URL (and the link to copy) while it is short; otherwise keep it out."""
    text = cleaning.encode_review(decisions(run), run.classes) or None
    st.session_state[PARAM] = text
    common.remember(PARAM)
    if text:
        st.query_params[PARAM] = text
    elif PARAM in st.query_params:
        del st.query_params[PARAM]


def sidebar(run: common.Run) -> None:
    """How many images the list holds, with a link to the Review page; keeps the URL in step."""
    sync_url(run)
    count = len(decisions(run))
    if count:
        st.sidebar.page_link(common.PAGE_FILES["Review"], label=f"Review list: {count} image{'s' * (count != 1)}",
                             icon=":material/checklist:", query_params={"run": run.run_id})


def _add(run: common.Run, sample_ids: Sequence[int], key: str, suggested: dict[int, str] | None) -> None:
    action = st.session_state[f"{key}-action"]
    new = decisions(run)
    if action == "suggested":   # each image to its own suggested class (cleanlab's, on the label-issue lists)
        for sample_id in sample_ids:
            new = cleaning.add_decisions(new, [sample_id], "relabel", suggested[int(sample_id)])
    else:
        label = st.session_state.get(f"{key}-label") if action == "relabel" else None
        new = cleaning.add_decisions(new, [int(i) for i in sample_ids], action, label)
    save(run, new)
    st.session_state[f"{key}-added"] = len(sample_ids)


def action_controls(run: common.Run, sample_ids: Sequence[int], key: str, what: str,
                    suggested: dict[int, str] | None = None) -> None:
    """Proposed action (and class for a relabel) plus the add button, for one image or a whole selection.
    With `suggested` classes (label issues) the action can be "relabel each to its suggested class"."""
    actions = [a for a in ACTION_LABELS if a != "suggested" or suggested]
    left, right = st.columns(2)
    action = left.radio("Proposed action", actions, format_func=ACTION_LABELS.get, key=f"{key}-action")
    if action == "relabel":
        first = (suggested or {}).get(int(sample_ids[0])) if len(sample_ids) == 1 else None
        right.selectbox("New class", run.classes, index=run.classes.index(first) if first in run.classes else 0,
                        key=f"{key}-label")
    st.button(f"Add {what} to the review list", key=f"{key}-add", icon=":material/playlist_add:", type="primary",
              on_click=_add, args=(run, list(sample_ids), key, suggested))
    added = st.session_state.pop(f"{key}-added", None)
    if added:
        st.success(f"{added} image{'s' * (added != 1)} on the review list ({len(decisions(run))} in all).",
                   icon=":material/check:")


def add_many(run: common.Run, sample_ids: Sequence[int], key: str, what: str | None = None,
             suggested: dict[int, str] | None = None) -> None:
    """A compact "add these images" popover for a gallery, a selection or a table."""
    ids = list(dict.fromkeys(int(i) for i in sample_ids))
    if not ids:
        return
    what = what or f"{'this image' if len(ids) == 1 else f'these {len(ids)} images'}"
    with st.popover(f"Add to review list ({len(ids)})", icon=":material/playlist_add:"):
        action_controls(run, ids, key, what, suggested)


def suggestions(table: pd.DataFrame) -> dict[int, str] | None:
    """sample_id -> suggested class of a label-issue table (None for a table without suggestions)."""
    if "suggested_label" not in table:
        return None
    return dict(zip(table["sample_id"].astype(int), table["suggested_label"]))


# ---------------------------------------------------------------- one image: evidence, add, similar images

def review_button(run: common.Run, sample_id: int, key: str) -> None:
    if st.button("Review", key=f"review-{key}", icon=":material/playlist_add:", type="tertiary",
                 help="Add this image to the review list, and find images like it"):
        image_dialog(run, int(sample_id))


@st.cache_resource(max_entries=4, show_spinner="Building the similar-image index (once per space)…")
def _index(path: str, space: str, signature: tuple, cache_dir: str) -> similar.NeighbourIndex:
    return similar.load_index(Path(path), space, cache_dir)


def neighbour_index(run: common.Run, space: str) -> similar.NeighbourIndex:
    return _index(run.path, space, run.signature, default_cache_dir())


def similar_rows(run: common.Run, space: str, sample_ids: tuple[int, ...]) -> pd.DataFrame:
    """The nearest images to one image or to a selection, described for a gallery (cached per query)."""
    index = neighbour_index(run, space)
    found = (similar.like_image(index, sample_ids[0], SIMILAR_K) if len(sample_ids) == 1
             else similar.like_selection(index, list(sample_ids), SIMILAR_K))
    rows = views.space_rows(run.table("predictions"), run.table("samples"), run.classes, space)
    return similar.describe(found, rows, run.table("samples"))


def similar_caption(row: pd.Series) -> str:
    predicted = "" if pd.isna(row["pred_name"]) else f" → {row['pred_name']}"
    return (f"**{row['true_name']}**{predicted}  \n"
            f"distance {row['distance']:.3f} · {row['split']} · #{row['sample_id']}")


def similar_section(run: common.Run, sample_ids: Sequence[int], key: str, default_space: str = "backbone") -> None:
    """Images like one image or a selection, in a chosen embedding space, with an add control for them."""
    spaces = list(run.info.get("spaces") or ["backbone"])
    space = st.selectbox("Embedding space", spaces, key=f"{key}-space",
                         index=spaces.index(default_space) if default_space in spaces else 0,
                         help="backbone = pretrained features; foldK = fold K's fine-tuned model. Exact cosine "
                              "nearest neighbours over every image of the run.")
    rows = common.cached(similar_rows, run, space, tuple(int(i) for i in sample_ids))
    st.caption(f"The {len(rows)} nearest images in the {space} space (cosine distance, 0 = same direction), "
               f"{'the image' if len(sample_ids) == 1 else 'the selection'} left out.")
    add_many(run, rows["sample_id"], f"{key}-similar", what=f"these {len(rows)} similar images")
    common.gallery(rows, run, key=f"{key}-similar-gallery", caption=similar_caption, buttons=False)


@st.dialog("Review an image", width="large")
def image_dialog(run: common.Run, sample_id: int) -> None:
    samples = run.table("samples").set_index("sample_id")
    relative, label = samples.at[sample_id, "path"], samples.at[sample_id, "label"]
    notes = cleaning.evidence([sample_id], run.table("label_issues"), run.table("duplicates"),
                              run.table("outliers"))[sample_id]
    left, right = st.columns([1, 2])
    with left:
        common.image(run, relative, f"#{sample_id} · given **{label}**  \n`{relative}`", key="dialog",
                     buttons=False)
    with right:
        st.markdown(notes or ":gray[The diagnostics say nothing special about this image.]")
        current = next((d for d in decisions(run) if d.sample_id == sample_id), None)
        if current:
            st.caption(f"On the review list: {current.action}{f' to {current.label}' if current.label else ''}.")
        issues = run.table("label_issues")
        suggested = None if issues is None else suggestions(issues[issues["sample_id"] == sample_id]) or None
        action_controls(run, [sample_id], f"dialog-{sample_id}", "this image", suggested)
    st.subheader("Similar images")
    similar_section(run, [sample_id], f"dialog-{sample_id}")
