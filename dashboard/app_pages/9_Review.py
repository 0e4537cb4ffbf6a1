"""Review: the images gathered on the other pages, the action proposed for each, and the cleaned manifest to
download; and the command that merges two classes (the run itself is never changed)."""
from __future__ import annotations

import base64
from pathlib import Path

import links
import page_setup
import review_list
import streamlit as st
from formatting import percent

from core.config import default_cache_dir
from core.data import cleaning
from core.data.thumbnails import image_path, thumbnail
from core.views import confusion

THUMBNAILS = 300   # rows shown with a thumbnail; a longer list still downloads whole
EDITOR_VERSION = "_review_editor_version"

run = page_setup.for_run("Review")
samples = run.table("samples")
decisions = review_list.decisions(run)


def merge_section() -> None:
    """Two classes made one: the `clean --merge-classes` command to copy (the dashboard never writes a run)."""
    st.subheader("Merge two classes")
    found = confusion.overlapping_pairs(run.json("diagnostics"))
    classes = run.classes
    first = found.iloc[0] if len(found) else {"class A": classes[0], "class B": classes[min(1, len(classes) - 1)]}
    left, middle, right = st.columns(3)
    a = links.choice("Class", "merge_a", classes, first["class A"], where=left)
    b = links.choice("and class", "merge_b", classes, first["class B"], where=middle)
    name = right.text_input("Merged class name", value="", placeholder=cleaning.MERGE_JOIN.join((a, b)),
                            help="Empty: the two names joined by +")
    if a == b:
        st.info("Pick two different classes.", icon=":material/merge:")
        return
    found_pair = found[((found["class A"] == a) & (found["class B"] == b))
                       | ((found["class A"] == b) & (found["class B"] == a))]
    if len(found_pair):
        row = found_pair.iloc[0]
        st.markdown(f"The diagnostics found that the data cannot separate these two: cleanlab puts "
                    f"{percent(row['overlap'])} of their out-of-fold images on the other side (per fold "
                    f"{percent(row['fold min'])} to {percent(row['fold max'])}).")
    st.markdown("Relabel every image of both as one class, in a new manifest (the run itself is not changed):")
    st.code(cleaning.merge_command(run.run_id, [(a, b)], name.strip() or None, runs_dir=Path(run.path).parent),
            language="bash", wrap_lines=True)
    st.caption("It writes merged.csv and its review.json and prints the command that trains on it with this run's "
               "settings and splits; the Compare page then scores the two runs on the merged classes. Add more "
               "`--merge-classes` for several merges, and `--drop-label-issues` or `--drop-exact-duplicates` to "
               "clean in the same step.")


if not decisions:
    st.info("The review list is empty. Add images from any gallery (Classes, Embeddings, Misclassified, Data) "
            "with **Add to review list**, or one image with its **Review** button.", icon=":material/checklist:")
    merge_section()
    links.share_link()
    st.stop()


def thumbnail_uri(relative: str) -> str | None:
    """A small PNG of the image as a data URI, for the table's image column."""
    path = image_path(run.info.get("dataset", {}).get("root", ""), relative)
    small = thumbnail(path, size=64, cache_dir=default_cache_dir()) if path else None
    return f"data:image/png;base64,{base64.b64encode(small.read_bytes()).decode()}" if small else None


reasons = cleaning.evidence([d.sample_id for d in decisions], run.table("label_issues"), run.table("duplicates"),
                            run.table("outliers"))
table = cleaning.review_table(decisions, samples, reasons)
table.insert(0, "image", [thumbnail_uri(p) if i < THUMBNAILS else None for i, p in enumerate(table["path"])])
counts = {action: sum(d.action == action for d in decisions) for action in cleaning.ACTIONS}
columns = st.columns(4)
columns[0].metric("Images on the list", len(decisions))
for column, action in zip(columns[1:], cleaning.ACTIONS):
    column.metric(action.capitalize(), counts[action])

st.subheader("Decisions")
st.caption("Change an action (or the new class of a relabel) in the table; tick **remove** to take an image off "
           "the list. *reason* is what the run's diagnostics say about the image.")
version = st.session_state.setdefault(EDITOR_VERSION, 0)
edited = st.data_editor(
    table, key=f"review-editor-{version}", hide_index=True, width="stretch", row_height=64,
    height=38 + 65 * min(len(table), 10),
    disabled=["image", "sample_id", "path", "split", "label", "reason"],
    column_config={
        "image": st.column_config.ImageColumn("image", width="small"),
        "action": st.column_config.SelectboxColumn("action", options=list(cleaning.ACTIONS), required=True),
        "new_label": st.column_config.SelectboxColumn("new class", options=run.classes,
                                                      help="The class a relabel gives the image"),
        "reason": st.column_config.TextColumn("reason", width="large"),
        "remove": st.column_config.CheckboxColumn("remove", help="Take the image off the review list")})
changed, problems = cleaning.decisions_from_table(edited)
for problem in problems:
    st.warning(problem, icon=":material/edit:")
if not problems and changed != decisions:
    review_list.save(run, changed)
    st.session_state[EDITOR_VERSION] = version + 1   # a fresh editor on the saved list, so edits apply once
    st.rerun()
if st.button("Clear the review list", icon=":material/delete_sweep:"):
    review_list.save(run, [])
    st.rerun()

st.subheader("Cleaned dataset")
csv_bytes, record = cleaning.build_cleaned(run.info, samples, decisions, reasons, runs_dir=Path(run.path).parent)
st.markdown(f"**{record['rows']['cleaned']}** of {record['rows']['source']} images stay, "
            f"{counts['relabel']} with a new label. The manifest lists every image of this run by absolute path, "
            "so it works wherever you save it; `review.json` records what changed, why, and this run's id.")
left, right, _ = st.columns([1, 1, 2])
left.download_button("Download cleaned.csv", csv_bytes, file_name="cleaned.csv", mime="text/csv",
                     icon=":material/download:", type="primary")
right.download_button("Download review.json", cleaning.review_json(record), file_name=cleaning.REVIEW_FILE,
                      mime="application/json", icon=":material/download:")
st.markdown("Save both files in one folder, then train on the manifest:")
st.code(record["command"], language="bash")
st.caption(f"The new run then records that it was cleaned from **{run.run_id}** (from the review.json beside the "
           "manifest), and the Compare page shows the two side by side. Equivalent from the command line: "
           f"`python train_cli.py clean {run.run_id} --drop-label-issues 0.05 --drop-exact-duplicates "
           "--out cleaned.csv` (rule-based, without a hand-made list).")

merge_section()
links.share_link()
