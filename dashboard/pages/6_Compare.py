"""Compare: two or more runs side by side (headline metrics, per-class recall, confusion difference)."""
from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

import common
from core import run_store, views

run = common.setup("Compare")
folder = common.runs_dir()
candidates = [entry.run_id for entry in run_store.list_runs(folder)
              if entry.info and (entry.path / "metrics.json").exists()]
others = [run_id for run_id in candidates if run_id != run.run_id]
chosen = st.multiselect("Compare with", others, default=others[:1], key="with", bind="query-params",
                        help="Runs with at least one finished fold. The run picked in the sidebar comes first.")
common.remember("with")
if not chosen:
    st.info("Pick at least one other run to compare with." if others else
            f"There is only one run with results. Train another (e.g. `{common.NEW_RUN_HINT}` with other "
            "settings) to compare.", icon=":material/compare_arrows:")
    st.stop()

# Every compared run is looked up among the listed runs only.
entries = [run_store.find_run(folder, run_id) for run_id in [run.run_id, *chosen]]
metrics = {entry.run_id: run_store.read_json(entry.path / "metrics.json") for entry in entries if entry}

headline = views.compare_headline(metrics)
st.subheader("Headline metrics")
shown = headline.set_index("run")
st.dataframe(shown, width="stretch", column_config={
    column: st.column_config.NumberColumn(format="percent") for column in shown.columns})
long = headline.melt(id_vars="run", value_vars=[f"val {k}" for k in views.HEADLINE], var_name="metric")
errors = headline.melt(id_vars="run", value_vars=[f"val {k} std" for k in views.HEADLINE])["value"]
figure = px.bar(long.assign(std=errors.to_numpy()), x="metric", y="value", color="run", barmode="group",
                error_y="std", title="Validation (out-of-fold) metrics: mean ± std over folds",
                labels={"value": "score", "metric": ""})
figure.update_layout(yaxis_tickformat=".0%", height=380)

left, right = st.columns(2, gap="large")
with left:
    common.chart(figure)
with right:
    recall = views.compare_recall(metrics)
    figure = px.bar(recall, x="class", y="recall", color="run", barmode="group", hover_data=["support"],
                    title="Per-class validation recall (pooled out-of-fold)")
    figure.update_layout(yaxis_tickformat=".0%", height=380)
    common.chart(figure)

st.subheader("Confusion difference")
base, other = list(metrics)[0], list(metrics)[-1]
difference = views.confusion_difference(metrics[base], metrics[other])
if difference is None:
    st.info(f"{base} and {other} do not have the same classes, so their confusion matrices cannot be subtracted.")
else:
    classes = metrics[base]["classes"]
    figure = go.Figure(go.Heatmap(z=difference, x=classes, y=classes, colorscale="RdBu_r", zmid=0,
                                  text=[[f"{v:+.0%}" for v in row] for row in difference], texttemplate="%{text}",
                                  hovertemplate="true %{y} → predicted %{x}: %{z:+.1%}<extra></extra>",
                                  colorbar={"title": {"text": "Δ share"}}))
    # The run names go in the caption: in a title they would not fit beside the matrix.
    figure.update_layout(title="Row-normalised OOF confusion, difference",
                         xaxis_title="predicted class", yaxis_title="true class", yaxis={"autorange": "reversed"},
                         height=180 + 42 * len(classes))
    with st.columns([3, 2])[0]:
        common.chart(figure)
    st.caption(f"**{other}** minus **{base}**. On the diagonal, red means {other} predicts that class correctly "
               "more often; off the diagonal, red means more of that confusion.")

common.share_link()
