"""One image under review, in a dialog: what the diagnostics say about it, adding it to the review list, and the
images most like it. The Embeddings and Slices pages show images like a whole selection the same way."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd
import review_list
import runs
import streamlit as st
import tiles
from formatting import plain

from core.config import default_cache_dir
from core.data import cleaning
from core.views import tables as views

if TYPE_CHECKING:
    from core.analysis.similar import NeighbourIndex

SIMILAR_K = 12


def review_button(run: runs.Run, sample_id: int, key: str) -> None:
    if st.button("Review", key=f"review-{key}", icon=":material/playlist_add:", type="tertiary",
                 help="Add this image to the review list, and find images like it"):
        image_dialog(run, int(sample_id))


@st.dialog("Review an image", width="large")
def image_dialog(run: runs.Run, sample_id: int) -> None:
    samples = run.table("samples").set_index("sample_id")
    relative, label = samples.at[sample_id, "path"], samples.at[sample_id, "label"]
    notes = cleaning.evidence([sample_id], run.table("label_issues"), run.table("duplicates"),
                              run.table("outliers"))[sample_id]
    left, right = st.columns([1, 2])
    with left:
        tiles.tile(run, relative, f"#{sample_id} · given **{label}**  \n`{relative}`")
    with right:
        st.markdown(notes or ":gray[The diagnostics say nothing special about this image.]")
        current = next((d for d in review_list.decisions(run) if d.sample_id == sample_id), None)
        if current:
            st.caption(f"On the review list: {current.action}{f' to {plain(current.label)}' if current.label else ''}.")
        issues = run.table("label_issues")
        own = None if issues is None else issues[issues["sample_id"] == sample_id]
        suggested = None if own is None else review_list.suggestions(own) or None
        review_list.action_controls(run, [sample_id], f"dialog-{sample_id}", "this image", suggested)
    dynamics_curve(run, sample_id)
    st.subheader("Similar images")
    similar_section(run, [sample_id], f"dialog-{sample_id}")


def dynamics_curve(run: runs.Run, sample_id: int) -> None:
    """The image's probability of its given label at every epoch of each fold that trained on it (none for a test
    image or a run that kept no dynamics)."""
    import plotly.graph_objects as go
    from charts import chart

    from core.views import dynamics as dynamics_views
    curves = dynamics_views.dynamics_curves(Path(run.path), run.info.get("folds_done", []), sample_id)
    if curves.empty:
        return
    figure = go.Figure([go.Scatter(x=part["epoch"], y=part["prob"], mode="lines+markers", name=f"fold {fold}",
                                   customdata=part["margin"],
                                   hovertemplate="epoch %{x}: probability %{y:.2f}, margin %{customdata:.2f}")
                        for fold, part in curves.groupby("fold")])
    figure.update_layout(title="Training dynamics: probability of the given label, epoch by epoch", height=260,
                         xaxis_title="epoch", yaxis={"title": "probability", "range": [0, 1.02]},
                         margin={"t": 40, "b": 30})
    chart(figure)
    st.caption("From the training passes of every fold that trained on the image. A label the model never comes to "
               "agree with (low all along) is often wrong; one it keeps forgetting is ambiguous.")


# ---------------------------------------------------------------- similar images

@st.cache_resource(max_entries=4, show_spinner="Building the similar-image index (once per space)…")
def _index(path: str, space: str, signature: tuple, cache_dir: str) -> NeighbourIndex:
    from core.analysis import similar  # faiss: only once someone asks for similar images
    return similar.load_index(Path(path), space, cache_dir)


def similar_rows(run: runs.Run, space: str, sample_ids: tuple[int, ...]) -> pd.DataFrame:
    """The nearest images to one image or to a selection, described for a gallery (cached per query)."""
    from core.analysis import similar

    index = _index(run.path, space, run.signature, default_cache_dir())
    found = (similar.like_image(index, sample_ids[0], SIMILAR_K) if len(sample_ids) == 1
             else similar.like_selection(index, list(sample_ids), SIMILAR_K))
    rows = views.space_rows(run.table("predictions"), run.table("samples"), run.classes, space)
    return similar.describe(found, rows, run.table("samples"))


def similar_caption(row: pd.Series) -> str:
    predicted = "" if pd.isna(row["pred_name"]) else f" → {plain(row['pred_name'])}"
    return (f"**{plain(row['true_name'])}**{predicted}  \n"
            f"distance {row['distance']:.3f} · {row['split']} · #{row['sample_id']}")


def similar_section(run: runs.Run, sample_ids: Sequence[int], key: str, default_space: str = "backbone") -> None:
    """Images like one image or a selection, in a chosen embedding space, with an add control for them."""
    spaces = list(run.info.get("spaces") or ["backbone"])
    space = st.selectbox("Embedding space", spaces, key=f"{key}-space",
                         index=spaces.index(default_space) if default_space in spaces else 0,
                         help="backbone = pretrained features; foldK = fold K's fine-tuned model. Exact cosine "
                              "nearest neighbours over every image of the run.")
    rows = runs.cached(similar_rows, run, space, tuple(int(i) for i in sample_ids))
    st.caption(f"The {len(rows)} nearest images in the {space} space (cosine distance, 0 = same direction), "
               f"{'the image' if len(sample_ids) == 1 else 'the selection'} left out.")
    review_list.add_many(run, rows["sample_id"], f"{key}-similar", what=f"these {len(rows)} similar images")
    tiles.plain_gallery(rows, run, similar_caption)
