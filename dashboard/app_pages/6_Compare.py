"""Compare: two or more runs side by side (headline metrics, per-class recall, confusion difference)."""
from __future__ import annotations

import links
import page_setup
import plotly.express as px
import plotly.graph_objects as go
import runs
import streamlit as st
import tiles
from charts import chart
from formatting import plain

from core.numbers import metric_name, points, spread
from core.store import run_store
from core.views import cleaned_compare
from core.views import tables as views

run = page_setup.for_run("Compare")
folder = runs.runs_dir()
candidates = [entry.run_id for entry in run_store.list_runs(folder)
              if entry.info and (entry.path / "metrics.json").exists()]
others = [run_id for run_id in candidates if run_id != run.run_id]
# A run cleaned from this one (or the run this one was cleaned from) is the natural thing to compare with.
partners = [entry.run_id for entry in run_store.list_runs(folder) if entry.run_id in others and (
    cleaned_compare.source_run(entry.info) == run.run_id or cleaned_compare.source_run(run.info) == entry.run_id)]
chosen = st.multiselect("Compare with", others, default=(partners or others)[:1], key="with", bind="query-params",
                        help="Runs with at least one finished fold. The run picked in the sidebar comes first.")
links.remember("with")
if not chosen:
    st.info("Pick at least one other run to compare with." if others else
            f"There is only one run with results. Train another (e.g. `{runs.NEW_RUN_HINT}` with other "
            "settings) to compare.", icon=":material/compare_arrows:")
    st.stop()

# Every compared run is looked up among the listed runs only.
entries = [run_store.find_run(folder, run_id) for run_id in [run.run_id, *chosen]]
metrics = {entry.run_id: run_store.read_json(entry.path / "metrics.json") for entry in entries if entry}
differences = views.setting_differences({entry.run_id: entry.info["config"] for entry in entries if entry})
if differences:
    st.info("These runs were trained with different settings, so their scores differ for that reason too:  \n"
            + "  \n".join(f"`{line}`" for line in differences), icon=":material/tune:")

pairs = cleaned_compare.cleaning_pairs({entry.run_id: entry.info for entry in entries if entry})
if pairs:
    source, cleaned = (runs.run_of(run_store.find_run(folder, run_id)) for run_id in pairs[0])
    st.subheader("What the cleaning did")
    sides = [(r.table("samples"), r.info["dataset"]["root"], r.classes) for r in (source, cleaned)]
    merges = cleaned_compare.class_merges(*sides[0], *sides[1])
    changes = cleaned_compare.image_changes(*sides[0][:2], *sides[1][:2], merges)
    counts = cleaned_compare.change_counts(changes)
    merged_into = {new: [old for old, into in merges.items() if into == new] for new in merges.values()}
    merged = (f"{counts['merged']} merged ("
              + "; ".join(f"{' and '.join(map(plain, olds))} into {plain(new)}" for new, olds in merged_into.items())
              + "), " if merges else "")
    st.markdown(f"**{cleaned.run_id}** was trained on a manifest cleaned from **{source.run_id}**: {merged}"
                f"{counts['relabelled']} images relabelled, {counts['dropped']} dropped, {counts['added']} added, "
                f"{counts['unchanged']} unchanged.  \n"
                + cleaned_compare.moves_sentence(cleaned_compare.split_moves(changes)))
    st.warning("Relabelling or dropping validation images changes what is measured: the cleaned run is scored "
               "against the new labels and without the dropped images, so its headline numbers can rise without "
               "the model getting better. The table below scores both runs on the same images, the ones neither "
               "run changed, each predicted by a fold model that did not train on it.", icon=":material/balance:")
    oof_source, oof_cleaned = source.rows("oof"), cleaned.rows("oof")
    scores = cleaned_compare.unchanged_scores(changes, oof_source, oof_cleaned, source.run_id, cleaned.run_id,
                                              merges)
    st.dataframe(views.as_percentages(scores, views.HEADLINE).set_index("run"), width="stretch")
    st.caption(cleaned_compare.denominator_caption(
        cleaned_compare.like_for_like_denominator(changes, oof_source, oof_cleaned)))
    left, right = st.columns([3, 2], gap="large")
    with left:
        per_class = cleaned_compare.per_class_side_by_side({r.run_id: r.json("metrics") for r in (source, cleaned)})
        per_class["recall"] = [spread(m, std) for m, std in zip(per_class["mean"], per_class["std"])]
        st.dataframe(per_class.pivot(index="class", columns="run", values="recall"), width="stretch")
        st.caption("Per-class validation recall, mean ± std over folds (each run on its own labels).")
    with right:
        changed = changes[changes["change"] != "unchanged"]
        st.dataframe(changed[["file", "change", "label_a", "label_b"]].rename(
            columns={"label_a": source.run_id, "label_b": cleaned.run_id}).astype(str), hide_index=True,
            width="stretch", height=300)
        st.caption(f"The {len(changed)} images whose label changed or that disappeared, matched by file path.")
    shown = changed.dropna(subset=["sample_id_a"]).head(12).assign(sample_id=lambda f: f["sample_id_a"].astype(int))
    shown = shown.merge(source.table("samples")[["sample_id", "path"]], on="sample_id")
    tiles.plain_gallery(shown, source, caption=lambda row: (
        f"**{row['change']}** · {plain(row['label_a'])}"
        + (f" → **{plain(row['label_b'])}**" if row["change"] in ("relabelled", "merged") else "")
        + f"  \n#{row['sample_id']} in {source.run_id}"))

headline = views.compare_headline(metrics)
st.subheader("Headline metrics")
st.dataframe(views.compare_headline_rows(metrics).set_index("run"), width="stretch")
long = headline.melt(id_vars="run", value_vars=[f"val {k}" for k in views.HEADLINE], var_name="metric")
errors = headline.melt(id_vars="run", value_vars=[f"val {k} std" for k in views.HEADLINE])["value"]
long["metric"] = long["metric"].str.removeprefix("val ").map(metric_name)
figure = px.bar(long.assign(std=errors.to_numpy()), x="metric", y="value", color="run", barmode="group",
                error_y="std", title="Validation (out-of-fold) metrics: mean ± std over folds",
                labels={"value": "score", "metric": ""})
figure.update_layout(yaxis_tickformat=".0%", yaxis_hoverformat=".1%", height=380)

left, right = st.columns(2, gap="large")
with left:
    chart(figure)
with right:
    recall = views.compare_recall(metrics)
    figure = px.bar(recall, x="class", y="recall", color="run", barmode="group", hover_data=["support"],
                    title="Per-class validation recall (pooled out-of-fold)")
    figure.update_layout(yaxis_tickformat=".0%", yaxis_hoverformat=".1%", height=380)
    chart(figure)

st.subheader("Confusion difference")
base, other = list(metrics)[0], list(metrics)[-1]
difference = views.confusion_difference(metrics[base], metrics[other])
merged_note, classes = "", metrics[base]["classes"]
if difference is None and pairs and merges and {base, other} == set(pairs[0]):
    # the source's matrix with its merged classes summed, so the two subtract class for class
    summed = {run_id: cleaned_compare.merged_metrics(metrics[run_id], merges, metrics[pairs[0][1]]["classes"])
              if run_id == pairs[0][0] else metrics[run_id] for run_id in (base, other)}
    if None not in summed.values():
        difference = views.confusion_difference(summed[base], summed[other])
        classes = metrics[pairs[0][1]]["classes"]
        merged_note = f" {source.run_id}'s merged classes are summed into their merged class."
if difference is None:
    st.info(f"{base} and {other} do not have the same classes, so their confusion matrices cannot be subtracted.")
else:
    figure = go.Figure(go.Heatmap(z=difference, x=classes, y=classes, colorscale="RdBu_r", zmid=0,
                                  text=[[points(v) for v in row] for row in difference], texttemplate="%{text}",
                                  hovertemplate="true %{y} → predicted %{x}: %{text}<extra></extra>",
                                  colorbar={"title": {"text": "Δ share"}}))
    # The run names go in the caption: in a title they would not fit beside the matrix.
    figure.update_layout(title="Row-normalised OOF confusion, difference",
                         xaxis_title="predicted class", yaxis_title="true class", yaxis={"autorange": "reversed"},
                         height=180 + 42 * len(classes))
    with st.columns([3, 2])[0]:
        chart(figure)
    st.caption(f"**{other}** minus **{base}**. On the diagonal, red means {other} predicts that class correctly "
               f"more often; off the diagonal, red means more of that confusion.{merged_note}")

links.share_link()
