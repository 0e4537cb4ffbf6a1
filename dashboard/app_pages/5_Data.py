"""Data: class balance, image sizes, skipped files, duplicates and leakage, label issues, outliers, drift of new
images."""
from __future__ import annotations

import gallery
import links
import page_setup
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import review_list
import runs
import streamlit as st
from charts import chart, finished
from formatting import plain

from core.store import run_store
from core.views import drift as drift_views
from core.views import dropped, figures
from core.views import images as explain_views
from core.views import tables as views

def class_balance(run: runs.Run) -> tuple[go.Figure, pd.DataFrame]:
    """The images-per-class chart and table: once per run, shared by every session."""
    counts = views.class_counts(run.table("samples"), run.classes)
    colors = figures.class_colors(run.classes)
    figure = go.Figure(go.Bar(x=counts["class"], y=counts["total"], marker_color=[colors[c] for c in counts["class"]],
                              text=[f"{n} ({s:.0%})" for n, s in zip(counts["total"], counts["share"])],
                              hovertemplate="%{x}: %{y} images<extra></extra>"))
    figure.update_layout(title="Images per class", xaxis_title="class", yaxis_title="images", height=400)
    return finished(figure), counts


run = page_setup.for_run("Data")
samples, classes = run.table("samples"), run.classes
colors = figures.class_colors(classes)
image_size = run.info["config"]["image_size"]   # the side images are resized to for the model


def diagnostics_table(name: str) -> pd.DataFrame | None:
    """A table the diagnostics write, or None (saying when it appears) before they have run."""
    table = run.table(name)
    if table is None:
        page_setup.diagnostics_missing(run, "This appears once the diagnostics have run (after the last fold).")
    return table


balance, sizes, skipped, duplicates, issues, outliers, properties, drift = links.tabs(
    ["Balance", "Sizes", "Skipped", "Duplicates", "Label issues", "Outliers", "Properties", "Drift"])

if balance.open:
    with balance:
        figure, counts = runs.cached(class_balance, run)
        left, right = st.columns([3, 2], gap="large")
        with left:
            chart(figure)
        with right:
            st.dataframe(counts, hide_index=True, width="stretch",
                         column_config={"share": st.column_config.NumberColumn(format="percent")})
            st.caption("cv = images in cross-validation folds; test = held-out test split.")
        left_out = dropped.dropped_classes(run.info)
        if len(left_out):
            st.subheader("Left out of the run")
            st.dataframe(left_out, hide_index=True, width="stretch", height=min(400, 38 + 35 * len(left_out)))
            st.caption(f"{len(left_out)} classes ({int(left_out['images'].sum())} images) left out by "
                       "--drop-small-classes. Units are what the splits move whole (a group, or identical files); a "
                       "class needs one in every fold and in the test split. The model never saw these classes and "
                       "cannot predict them.")

if sizes.open:
    with sizes:
        figure = px.scatter(views.image_sizes(samples), x="width", y="height", color="label",
                            color_discrete_map=colors, hover_data=["path"], opacity=0.6,
                            category_orders={"label": classes}, title="Decoded image size by class",
                            labels={"width": "width (px)", "height": "height (px)", "label": "class"})
        figure.update_layout(height=440)
        left, right = st.columns([3, 2], gap="large")
        with left:
            chart(figure)
        with right:
            st.dataframe(views.size_summary(samples), hide_index=True, width="stretch")
            st.caption(f"Images far smaller than the model input ({image_size} px) are upscaled and lose detail; "
                       "a class whose images all share one size can be recognised by its size alone.")

if skipped.open:
    with skipped:
        files = pd.DataFrame(run.info.get("skipped", []), columns=["path", "reason"])
        st.caption(f"**{len(files)}** files under the dataset root could not be used.")
        if len(files):
            st.dataframe(files, hide_index=True, width="stretch")

if duplicates.open:
    with duplicates:
        pairs = diagnostics_table("duplicates")
        if pairs is not None:
            pairs = views.duplicate_pairs(pairs)
            st.caption(f"**{len(pairs)}** exact or near-duplicate pairs, {int(pairs['leakage'].sum())} leaking "
                       "(one image trains the model that is scored on the other), leaking pairs first.")
            exact = pairs.loc[pairs["kind"] == "exact", "sample_id_b"]
            if len(exact):  # pairs have a < b: this keeps the lowest sample id of each set, like `clean`
                review_list.add_many(run, exact, "dup-exact", what=f"the second image of the {len(exact)} exact "
                                     "pairs", propose="drop")
            page = links.pager(views.page_count(len(pairs), 6))
            for index, pair in views.page_of(pairs, page, 6).iterrows():
                flags = [text for column, text in (("leakage", ":red-badge[leakage]"),
                                                   ("crosses_folds", ":orange-badge[crosses folds]"),
                                                   ("touches_test", ":orange-badge[touches test]")) if pair[column]]
                with st.container(border=True):
                    st.markdown(f"**{pair['kind']}** · similarity {pair['similarity']:.3f} " + " ".join(flags))
                    left, right, _ = st.columns([1, 1, 3])
                    for column, side in ((left, "a"), (right, "b")):
                        with column:
                            gallery.image(run, pair[f"path_{side}"], f"#{pair[f'sample_id_{side}']} "
                                          f"`{pair[f'path_{side}']}`", key=f"dup-{index}-{side}",
                                          sample_id=pair[f"sample_id_{side}"])

if issues.open:
    with issues:
        table = diagnostics_table("label_issues")
        if table is not None:
            table = views.label_issue_rows(table)
            st.caption(f"**{len(table)}** suspected label errors, lowest label quality first (also in the "
                       f"Misclassified page): cleanlab flags {int(table['flagged'].sum())}, the others have their "
                       f"label contradicted by a held-out model. **{int(table['affects_test_metric'].sum())}** are "
                       "in the test split, where they affect the test metric. Rank: the label quality's place among "
                       "all images of its part (cross-validation, judged out of fold; test, by the fold ensemble).")
            event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun",
                                 selection_mode="multi-row", key="issues-table", column_config={
                "quality": st.column_config.ProgressColumn("label quality", min_value=0, max_value=1),
                "suggested_confidence": st.column_config.NumberColumn("suggested", format="percent"),
                "flagged": st.column_config.CheckboxColumn("cleanlab flag"),
                "affects_test_metric": st.column_config.CheckboxColumn("affects test metric")})
            rows = event.selection.rows if event else []
            picked = table.iloc[rows] if rows else table
            st.caption(f"Select rows to add only those; otherwise the control adds all {len(table)}.")
            review_list.add_many(run, picked["sample_id"], "issues-add",
                                 what=f"the {len(picked)} {'selected' if rows else 'listed'} images",
                                 suggested=review_list.suggestions(picked))

if outliers.open:
    with outliers:
        ranked = diagnostics_table("outliers")
        if ranked is not None:
            flagged = ranked[ranked["is_outlier"]]
            st.caption(f"**{len(flagged)}** images are far from the rest of their class in the backbone space "
                       "(robust z of the distance to their nearest same-class neighbours), most isolated first. "
                       "Often wrong files, odd crops or a sub-type the class needs more of.")
            gallery.paged_gallery(flagged, run, per_page=12, key="outliers", caption=lambda row: (
                f"**{plain(row['label'])}** ({row['split']}) · z {row['z']:.1f}  \n#{row['sample_id']}"))

def property_frame(run: runs.Run) -> pd.DataFrame:
    """Image properties with each image's outcome (out of fold; test images by the ensemble)."""
    rows = views.space_rows(run.table("predictions"), run.table("samples"), run.classes, "backbone")
    return explain_views.property_outcomes(run.table("image_properties"), rows)


if properties.open:
    with properties:
        table = diagnostics_table("image_properties")
        if table is not None:
            frame = runs.cached(property_frame, run)
            names = explain_views.measured_properties(table)
            left, right = st.columns([2, 3])
            if not names:
                st.info("No image could be read to measure its properties (moved since the run?).",
                        icon=":material/hide_image:")
            else:
                name = links.choice("Property", "property", names, names[0], where=left,
                                    help="; ".join(explain_views.property_label(n) for n in names))
                split = links.choice("Split by", "by", ["class", "outcome"], "class", kind="radio", where=right,
                                     help="outcome = correct or wrong out of fold (test images: by the ensemble).")
                colour = "label" if split == "class" else "outcome"
                figure = px.box(frame, x="label", y=name, color=colour, points="outliers", hover_data=["path"],
                                category_orders={"label": classes, "outcome": ["correct", "wrong", "unscored"]},
                                color_discrete_map=colors if split == "class" else figures.OUTCOME_COLORS,
                                title=f"{explain_views.property_label(name)} per class"
                                      + (" and outcome" if split == "outcome" else ""),
                                labels={"label": "class", name: name.replace("_", " ")})
                figure.update_layout(height=420)
                chart(figure)
            block = (run.json("diagnostics") or {}).get("image_properties")
            st.markdown("**Shortcut check**: how well one property alone predicts the label, or the model's "
                        "error: balanced accuracy of a shallow tree trained and scored under the run's folds "
                        "(label: chance = 1 / classes; best class against the rest and error: chance 50%).")
            st.dataframe(explain_views.shortcut_table(block), hide_index=True, width="stretch", column_config={
                c: st.column_config.NumberColumn(format="percent") for c in
                ("label_balanced_accuracy", "chance", "class_balanced_accuracy", "error_balanced_accuracy")})
            marked = explain_views.flagged(table)
            st.markdown(f"**{len(marked)}** images flagged dark, blurry, tiny, with an odd aspect ratio or low "
                        "information.")
            gallery.paged_gallery(marked, run, per_page=12, key="flagged", caption=lambda row: (
                f"**{plain(row['label'])}** · {row['flags']}  \n#{row['sample_id']}"))

if drift.open:
    with drift:
        summary = drift_views.drift_summary(run_store.latest_drift(run.path))
        if summary is None:
            st.info("No new images have been compared with this run's training images yet. Run "
                    f"`{drift_views.COMMAND.format(run_id=run.run_id)}` (it writes the result into the run).",
                    icon=":material/compare:")
        else:
            (st.warning if summary["drifted"] else st.success)(summary["verdict"])
            st.caption(f"{summary['n_new']} new images ({summary['inputs']}) against {summary['n_train']} training "
                       f"images, checked {summary['created']}. Per property: two-sample Kolmogorov–Smirnov test, "
                       "Benjamini–Hochberg-adjusted; a shift also needs KS D ≥ 0.2.")
            st.dataframe(summary["properties"], hide_index=True, width="stretch", column_config={
                "training median": st.column_config.NumberColumn(format="%.3g"),
                "new median": st.column_config.NumberColumn(format="%.3g"),
                "KS D": st.column_config.NumberColumn(format="%.2f"),
                "p (BH-adjusted)": st.column_config.NumberColumn(format="%.2g")})
            st.markdown(summary["classifier"])
            if len(summary["drivers"]):
                st.dataframe(summary["drivers"], hide_index=True, column_config={
                    "Spearman ρ with the classifier's score": st.column_config.NumberColumn(format="%+.2f")})
            if len(summary["unreadable"]):
                count = len(summary["unreadable"])
                st.caption(f"{count} file{'' if count == 1 else 's'} could not be read:")
                st.dataframe(summary["unreadable"], hide_index=True, width="stretch")

links.share_link()
