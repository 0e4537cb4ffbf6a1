"""The review list: images the user wants to drop, relabel or keep, gathered from every page of one run.

It lives in the browser session (one list per run) and, while short, in the `review` URL parameter so a copied
link carries it (`core.data.cleaning.encode_review`). Nothing here writes into a run; the Review page turns the
list into downloads. Also the controls that add images to it.
"""
from __future__ import annotations

from typing import Sequence

import links
import pandas as pd
import runs
import streamlit as st

from core.data import cleaning
from core.data.cleaning import Decision

LISTS = "_review_lists"        # session state: {run_id: [Decision, ...]}
URL_READ = "_review_url_read"  # the URL's list is taken once per session, for the run in that URL
PARAM = "review"
ACTION_LABELS = {"drop": "drop", "relabel": "relabel to…", "keep": "keep (reviewed, fine)",
                 "suggested": "relabel to the suggested class"}


# ---------------------------------------------------------------- the list in session state and the URL

def decisions(run: runs.Run) -> list[Decision]:
    lists = st.session_state.setdefault(LISTS, {})
    if not st.session_state.get(URL_READ):
        st.session_state[URL_READ] = True
        lists.setdefault(run.run_id, cleaning.decode_review(st.query_params.get(PARAM), run.classes,
                                                            int(run.info.get("dataset", {}).get("n_images", 0))))
    return list(lists.get(run.run_id, []))


def save(run: runs.Run, new: list[Decision]) -> None:
    st.session_state.setdefault(LISTS, {})[run.run_id] = new
    sync_url(run)


def sync_url(run: runs.Run) -> None:
    """Mirror the list into the URL (and the link to copy) while it is short; otherwise keep it out."""
    text = cleaning.encode_review(decisions(run), run.classes) or None
    st.session_state[PARAM] = text
    links.remember(PARAM)
    if text:
        st.query_params[PARAM] = text
    elif PARAM in st.query_params:
        del st.query_params[PARAM]


def sidebar(run: runs.Run) -> None:
    """How many images the list holds, with a link to the Review page; keeps the URL in step."""
    sync_url(run)
    count = len(decisions(run))
    if count:
        links.page_link("Review", f"Review list: {count} image{'s' * (count != 1)}", {"run": run.run_id},
                        where=st.sidebar, icon=":material/checklist:")


# ---------------------------------------------------------------- adding images

def _add(run: runs.Run, sample_ids: Sequence[int], key: str, suggested: dict[int, str] | None) -> None:
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


def action_controls(run: runs.Run, sample_ids: Sequence[int], key: str, what: str,
                    suggested: dict[int, str] | None = None, propose: str = "drop") -> None:
    """Proposed action (`propose` to begin with; a class for a relabel) plus the add button, for one image or a
    whole selection. With `suggested` classes (label issues) the action can be "relabel each to its suggested
    class"."""
    actions = [a for a in ACTION_LABELS if a != "suggested" or suggested]
    left, right = st.columns(2)
    action = left.radio("Proposed action", actions, format_func=ACTION_LABELS.get, key=f"{key}-action",
                        index=actions.index(propose) if propose in actions else 0)
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


def bulk_proposal(suggested: dict[int, str] | None) -> str:
    """What adding many images at once proposes: each to its suggested class where the diagnostics suggest one
    (a suspected label error), else no change. A mistake, a neighbour or a slice is not a wrong label, and
    dropping all of them would throw away the hard examples the model most needs; the Review page decides
    image by image."""
    return "suggested" if suggested else "keep"


def add_many(run: runs.Run, sample_ids: Sequence[int], key: str, what: str | None = None,
             suggested: dict[int, str] | None = None, propose: str | None = None) -> None:
    """A compact "add these images" popover for a gallery, a selection or a table; it proposes `propose`
    (exact duplicates: drop), else `bulk_proposal`."""
    ids = list(dict.fromkeys(int(i) for i in sample_ids))
    if not ids:
        return
    what = what or f"{'this image' if len(ids) == 1 else f'these {len(ids)} images'}"
    propose = propose or bulk_proposal(suggested)
    with st.popover(f"Add to review list ({len(ids)})", icon=":material/playlist_add:"):
        if propose == "keep":
            st.caption("Proposed: no change. A mistake is the model's, not necessarily a wrong label; decide "
                       "image by image on the Review page.")
        action_controls(run, ids, key, what, suggested, propose)


def suggestions(table: pd.DataFrame) -> dict[int, str] | None:
    """sample_id -> suggested class of a label-issue table (None for a table without suggestions)."""
    if "suggested_label" not in table:
        return None
    return dict(zip(table["sample_id"].astype(int), table["suggested_label"]))
