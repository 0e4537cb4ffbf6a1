"""Classes: confusion matrix (click a cell to see its images), per-class scores with their spread over folds.
A run of many classes opens on its most confused pairs and a matrix limited to the classes most involved in errors."""
from __future__ import annotations

import activation_maps
import charts
import gallery
import links
import page_setup
import pandas as pd
import plotly.graph_objects as go
import runs
import streamlit as st
from charts import chart, finished
from focus_picker import focus_pairs, focus_picker
from formatting import plain

from core.views import confusion, figures, focus, superclasses
from core.views import tables as views


def confusion_figure(run: runs.Run, source: str, share: bool, many: bool) -> go.Figure:
    metrics = run.json("metrics")
    if many:
        return finished(figures.limited_confusion_heatmap(metrics, run.classes, source, share=share))
    return finished(figures.confusion_heatmap(metrics, run.classes, source, share=share, clickable=True))


def cell_of(run: runs.Run, source: str, true: str, pred: str) -> pd.DataFrame:
    return views.cell_rows(run.rows(source, "test" if source == "ensemble" else "val"), run.classes.index(true),
                           run.classes.index(pred))


def scores(run: runs.Run, shown: int, focused: tuple[str, ...]) -> tuple[go.Figure, pd.DataFrame]:
    """Precision, recall and F1 of the `shown` classes of lowest recall (all when `shown` is every class, and the
    focused classes wherever they rank) with their spread over folds, and the per-class table."""
    metrics, classes = run.json("metrics"), run.classes
    spread = views.per_class_spread(metrics, classes)
    if shown < len(classes):   # the worst classes, worst first (and the focus, wherever it ranks)
        worst = list(dict.fromkeys([*views.worst_classes(spread, shown), *focused]))
        spread = spread.set_index("class").loc[worst].reset_index()
    colors = (focus.focus_colors(classes, list(focused)) if focused else
              figures.class_colors(classes, focus=views.worst_classes(spread, figures.DISTINCT_CLASSES)))
    figure = go.Figure()
    for score, symbol in (("precision", "circle"), ("recall", "diamond"), ("f1", "square")):
        part = spread[spread["score"] == score]
        figure.add_scatter(x=part["class"], y=part["mean"], mode="markers", name=score,
                           marker={"symbol": symbol, "size": 11, "color": [colors[c] for c in part["class"]],
                                   "line": {"width": 1, "color": "#333"}},
                           error_y={"type": "data", "array": part["std"], "thickness": 1.2},
                           customdata=part[["min", "max"]],
                           hovertemplate=f"%{{x}} {score}: %{{y:.1%}} (folds %{{customdata[0]:.0%}}–"
                                         f"%{{customdata[1]:.0%}})<extra></extra>")
    figure.update_layout(title="Precision ●, recall ◆, F1 ■ (mean ± std over folds)"
                               + ("" if shown == len(classes) else f": the {shown} classes of lowest recall"),
                         xaxis_title="class", yaxis_title="score", yaxis_tickformat=".0%", yaxis_range=[0, 1.05],
                         height=400, scattermode="group", legend={"orientation": "h", "y": -0.25})
    return finished(figure), views.per_class_table(metrics, classes)


run = page_setup.for_run("Classes")
metrics, classes = run.json("metrics"), run.classes
sources = views.confusion_sources(metrics)
# The `fold` parameter names the matrix: oof = pooled out-of-fold, a fold number, or test = the ensemble.
fold_values = {"oof": "oof", "test": "ensemble", **{s.removeprefix("fold"): s for s in sources if s.startswith("fold")}}
fold_values = {value: source for value, source in fold_values.items() if source in sources}

left, middle, right = st.columns([2, 2, 3])
fold = links.choice("Predictions", "fold", list(fold_values), "oof", where=left,
                    help="oof = every sample once, predicted by the fold model that did not train on it; "
                         "test = the held-out test set, predicted by the mean of the fold models.")
scale = links.choice("Cells", "scale", ["counts", "row %"], "counts", kind="radio", where=middle)
focused = focus_picker(run, where=right)
source = fold_values[fold]
many = len(classes) > confusion.MANY_CLASSES
if many:
    st.subheader("Most confused pairs" + (f" of {plain(' and '.join(focused))}" if focused else ""))
    pairs = runs.cached(focus_pairs, run, tuple(focused)).copy()
    pairs["images"] = [links.page_url("Misclassified", {"run": run.run_id, "fold": "oof", "role": "val",
                                                        "true": t, "pred": p})
                       for t, p in zip(pairs["true"], pairs["predicted"])]
    st.dataframe(views.as_percentages(pairs.drop(columns=["true_index", "pred_index"]),
                                      ["share", "fold min", "fold max"]),
                 hide_index=True, width="stretch", height=min(420, 38 + 35 * len(pairs)),
                 column_config={"images": st.column_config.LinkColumn("images", display_text="show")})
    st.caption("Out-of-fold mistakes, each direction on its own row: share = of the true class's validation "
               "images; fold min–max = the same share in each fold (a pair made by one fold alone is a fluke of "
               "the split). *show* opens the images in Misclassified."
               + (" Only the mistakes about the focus: set it to *all* for every pair." if focused else ""))
    chart(runs.cached(confusion_figure, run, source, scale == "row %", True))
    st.caption("Classes confused with each other sit together; the rest are summed in *other*. Drag to zoom, "
               "double-click to reset.")
    # made when clicked (a thousand classes make a million cells: no cost on every rerun)
    st.download_button("Full confusion matrix (CSV)",
                       lambda: confusion.confusion_csv(views.confusion(metrics, source, normalize=False), classes),
                       file_name=f"{run.run_id}-confusion-{fold}.csv", mime="text/csv", icon=":material/download:")
    event = None
else:
    with st.columns([3, 2])[0]:
        event = chart(runs.cached(confusion_figure, run, source, scale == "row %", False),
                      on_select="rerun", selection_mode="points", key="confusion")

# A clicked cell becomes the pair shown below (and in the URL); the pickers can also choose it directly.
points = event.selection.points if event else []
if points and st.session_state.get("_clicked") != points[0].get("customdata"):
    st.session_state["_clicked"] = points[0].get("customdata")
    st.session_state["true"], st.session_state["pred"] = (classes[int(i)] for i in points[0]["customdata"][:2])

overlapping = confusion.overlapping_pairs(run.json("diagnostics"))
if len(overlapping):
    st.subheader("Classes the data cannot separate")
    overlapping["images"] = [links.page_url("Classes", {"run": run.run_id, "true": a, "pred": b, "sides": "both"})
                             for a, b in zip(overlapping["class A"], overlapping["class B"])]
    overlapping["merge"] = [links.page_url("Review", {"run": run.run_id, "merge_a": a, "merge_b": b})
                            for a, b in zip(overlapping["class A"], overlapping["class B"])]
    st.dataframe(views.as_percentages(overlapping, ["overlap", "fold min", "fold max"]), hide_index=True,
                 width="stretch", column_config={
                     "images": st.column_config.LinkColumn("images", display_text="both sides"),
                     "merge": st.column_config.LinkColumn("merge", display_text="command")})
    st.caption("overlap = cleanlab's estimate of the share of the pair's out-of-fold images that belong on the other "
               "side (fold min–max: the same in each fold); confused = the model's out-of-fold mistakes between the "
               "two, against those expected if its errors went to every class in proportion to its size. Merge "
               "them, or relabel their images: *both sides* shows them, *command* gives the merge to copy.")

# A new focus opens its cell (the first visit leaves a linked cell alone).
opened = focus.focus_cell(focused, pairs if many else None)
if st.session_state.get("_focus_cell", focused) != focused and opened:
    st.session_state["true"] = opened["true"]
    st.session_state["pred"] = opened["predicted"] or next(c for c in classes if c != opened["true"])
st.session_state["_focus_cell"] = focused

st.subheader("Images of one cell")
left, right, other = st.columns([2, 2, 3])
# A finding about one class (`class` parameter) opens on that class's row.
# Many classes: the most confused pair to begin with.
top = focus.focus_cell(focused, pairs if many else None) or (
    pairs.iloc[0] if many and len(pairs) else {"true": classes[0], "predicted": None})
true = links.choice("True class", "true", classes, st.query_params.get("class", top["true"]), where=left)
off_diagonal = top["predicted"] if true == top["true"] and top["predicted"] else next(
    (c for c in classes if c != true), true)
pred = links.choice("Predicted class", "pred", classes, off_diagonal, where=right)
# both: the two sides of a pair the data may not separate (a finding about overlapping classes opens on it)
sides = links.choice("Sides", "sides", ["one", "both"], "one", kind="radio", where=other,
                     help="one = true → predicted only; both = also predicted → true: the pair's mistakes either way")
if sides == "both" and true != pred:
    cell = confusion.both_sides(run.rows(source, "test" if source == "ensemble" else "val"), classes.index(true),
                                classes.index(pred))
    st.caption(f"{len(cell)} image{'' if len(cell) == 1 else 's'} of **{plain(true)}** predicted as "
               f"**{plain(pred)}** and of **{plain(pred)}** predicted as **{plain(true)}**, most confident first. "
               "Many either way, at similar confidence: the two classes may be one kind of image (merge them on "
               "the Review page) or labelled inconsistently (relabel).")
    links.page_link("Review", f"Merge {plain(true)} and {plain(pred)}: the command",
                    {"run": run.run_id, "merge_a": true, "merge_b": pred}, icon=":material/merge:")
else:
    cell = runs.cached(cell_of, run, source, true, pred)
    st.caption(f"{len(cell)} image{'' if len(cell) == 1 else 's'} with true class **{plain(true)}** predicted as "
               f"**{plain(pred)}**, most confident first.")
gallery.paged_gallery(cell, run, per_page=12, key="cell", cam=activation_maps.choice())

st.subheader("Per-class scores")
figure, table = runs.cached(scores, run, charts.shown_classes(len(classes), "scores_all"), tuple(focused))
left, right = st.columns([2, 3], gap="large")   # the table carries test recall with its interval
with left:
    chart(figure)
with right:
    st.dataframe(focus.focus_rows(table, focused).set_index("class"), width="stretch")
    if focused:
        st.caption(f"The focused class{'es' if len(focused) > 1 else ''} only: set the focus to *all* for every "
                   "class.")
    st.caption("Support = validation images of the class over all folds. A wide spread means the score "
               "depends on which images landed in the fold: too few examples to trust it. A fold without "
               "validation images (or predictions) of a class leaves its recall (precision) out. Test recall is "
               "the ensemble's on the class's test images, with its 95% interval: a wide one says the test split "
               "holds too few of them to judge.")

super_names = superclasses.superclass_names(metrics)
if super_names:   # the manifest's superclass column: the same predictions a level up
    st.subheader("Superclasses", anchor="superclasses")
    block = superclasses.superclass_metrics(metrics)
    left, right = st.columns([3, 2], gap="large")
    with left:
        chart(figures.limited_confusion_heatmap(block, super_names, source, share=scale == "row %")
              if len(super_names) > confusion.MANY_CLASSES else
              figures.matrix_heatmap(views.confusion(block, source, normalize=False), super_names,
                                     f"Superclass confusion, {views.source_label(source)}", share=scale == "row %"))
    with right:
        st.dataframe(views.per_class_table(block, super_names).set_index("class").rename_axis("superclass"),
                     width="stretch")
        st.caption(f"{plain(superclasses.errors_within(metrics) or '')} A prediction's superclass is its predicted "
                   "class's; an error inside a superclass confuses close relatives, one across superclasses is "
                   "farther off.")
    with st.expander("Classes of each superclass"):
        st.dataframe(superclasses.members(metrics), hide_index=True, width="stretch")
st.subheader("Scores against training images")
chart(figures.tail_scatter(views.scores_by_training_images(metrics, classes), views.tail_cut(run.json("diagnostics"))))
st.caption("Every class at its number of training images per fold (log scale), recall ◆ and precision ○ as the "
           "mean over the folds' validation sets, the bars from the lowest fold to the highest; hover a mark for "
           "its class. Classes left of the dashed line are the long tail (fewer training images than the geometric "
           "mean of the largest and smallest class's, rounded down): when their recall sits well under the rest's, "
           "logit adjustment (`train_cli.py remedies --remedies logit-adjust-posthoc,logit-adjust-loss`) moves "
           "predictions toward them.")

links.share_link()
