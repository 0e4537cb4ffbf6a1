"""Experiments: what would fix it (remedies with fold-paired effects, learning curve), hyperparameter studies, and
repeated k-fold (the spread over draws of the folds)."""
from __future__ import annotations

from pathlib import Path

import links
import navigation
import page_setup
import plotly.express as px
import plotly.graph_objects as go
import runs
import streamlit as st
from charts import chart

from core.numbers import metric_name, percent
from core.store import run_store
from core.store.heartbeat import derived_status
from core.store.heartbeat import run_status as shown_status
from core.views import experiments as views

page_setup.without_run("Experiments")
folder = runs.runs_dir()
experiments = run_store.list_experiments(folder)
st.title("Experiments")
if not experiments:
    st.info(f"No experiments in `{folder}` yet. Start one, then reload this page:\n\n```\n"
            "python train_cli.py remedies\npython train_cli.py tune --trials 20\n```", icon=":material/science:")
    st.stop()

ids = [e["experiment_id"] for e in experiments]
requested = st.query_params.get("experiment")
if requested is not None and requested not in ids:
    st.warning(f"There is no experiment called `{requested[:80]}`, so the newest is shown.",
               icon=":material/search_off:")
experiment_id = links.choice("Experiment", "experiment", ids, default=requested if requested in ids else ids[0],
                             where=st.sidebar, help="Remedy experiments and tuning studies, newest first.")
experiment = run_store.find_experiment(folder, experiment_id)
run_status = {entry.run_id: shown_status(entry)[0] for entry in run_store.list_runs(folder)}   # every run.json once
where = Path(experiment["path"])
status, live = derived_status(experiment["status"], where, where / "experiment.json")   # stalled: its driver was killed
if status == "stalled":
    page_setup.stalled_warning(f"{experiment['kind']} {experiment_id}", live)


def run_link(run_id: str | None, label: str) -> None:
    if run_id in run_status:
        links.page_link(navigation.HOME, label, {"run": run_id})


def remedies_view() -> None:
    st.caption(f"Baseline and remedies on the same splits and seed ({experiment['train_mode']} mode). "
               f"Status: {status}.")
    if experiment.get("error"):
        st.warning(f"**This experiment stopped**: {experiment['error']}", icon=":material/pause_circle:")
    for skipped in experiment.get("skipped", []):
        st.caption(f"Skipped **{skipped['remedy']}**: {skipped['reason']}")
    effects_tab, curve_tab, runs_tab = links.tabs(["Effects", "Learning curve", "Runs"])
    with effects_tab:
        effects = views.read_experiment_table(experiment, "effects")
        if effects is None or effects.empty:
            st.info("No effects yet: they appear when the remedy runs and the learning curve are done.")
        else:
            metrics = views.effect_metrics(effects)
            metric = links.choice("Metric", "metric", metrics, kind="radio", help="Overall, or one class's recall.")
            rows = views.forest_rows(effects, metric)
            figure = px.scatter(rows, x="difference", y="remedy", color="scope", symbol="verdict",
                                error_x="plus", error_x_minus="minus", hover_data=["low", "high", "verdict"],
                                labels={"difference": f"{views.metric_label(metric)}: remedy − baseline (points)"},
                                title=f"Effect on {views.metric_label(metric)}, with 95% intervals")
            figure.add_vline(x=0, line_dash="dot", line_color="grey")
            figure.update_traces(marker_size=11)
            figure.update_layout(height=160 + 60 * rows.remedy.nunique(), legend={"orientation": "h", "y": -0.3},
                                 scattermode="group")  # validation and test side by side, not on top
            chart(figure)
            st.caption("An interval that contains 0 is *no measurable effect*. Validation differences are paired "
                       "fold by fold on the images both runs evaluate with the same label.")
            notes = (views.read_experiment_json(experiment, "effects") or {}).get("comparisons", [])
            for note in notes:
                if note["validation_images_left_out"]:
                    st.caption(f"**{note['remedy']}** compared on {note['compared_on']}.")
            st.dataframe(views.effects_view(effects), hide_index=True, width="stretch")
        costs = views.read_experiment_table(experiment, "costs")
        if costs is not None:
            st.markdown("**What each run cost**: its network's parameters (all, and those training updates) and "
                        "the mean time of a fold; in head mode the pretrained features are computed once per run.")
            st.dataframe(views.costs_view(costs), hide_index=True, width="stretch", column_config={
                column: st.column_config.NumberColumn(format="compact")
                for column in ("parameters", "trained parameters")})
        self_training = views.self_training_run(experiment, folder)
        if self_training is not None:
            run_id, per_class, record = self_training
            st.markdown(f"**Self-training's pseudo-labels** ({record['eligible']} of {record['pool_images']} pool "
                        f"images eligible; run `{run_id}`): {record['rule']}.")
            st.dataframe(views.pseudo_labels_view(per_class), hide_index=True, width="stretch")
    with curve_tab:
        table = views.read_experiment_table(experiment, "learning_curve")
        fit = views.read_experiment_json(experiment, "learning_curve_fit")
        if table is None or fit is None:
            st.info("The learning curve appears when it is done.")
        else:
            points = views.curve_points(table)
            lines = views.fitted_lines(fit["fits"], points)
            figure = px.scatter(points, x="n_train", y="mean", color="label", error_y="std",
                                labels={"n_train": "training images per fold", "mean": "validation score",
                                        "label": ""},
                                title="Validation score by training-set size (mean ± std over folds) "
                                      "and the fitted power law")
            for label, line in lines.groupby("label"):
                colour = next((t.marker.color for t in figure.data if t.name == label), None)
                figure.add_trace(go.Scatter(x=line.n_train, y=line.score, mode="lines", name=f"{label} (fit)",
                                            line={"dash": "dash", "color": colour}))
            figure.update_layout(yaxis_tickformat=".0%", yaxis_range=[0, 1.05], height=460)
            chart(figure)
            st.markdown("**Would more data help?** Estimated gain from doubling the training data:")
            st.dataframe(views.doubling_table(fit["fits"]), hide_index=True, width="stretch",
                         column_config={c: st.column_config.NumberColumn(format="%+.1f") for c in
                                        ("gain from doubling (points)", "interval low", "interval high")})
    with runs_tab:
        remedy_runs = views.experiment_runs(experiment, run_status)
        st.dataframe(remedy_runs, hide_index=True, width="stretch")
        for row in remedy_runs.itertuples():
            run_link(row.run_id, f"{row.remedy}: {row.run_id}")


def repeats_view() -> None:
    st.caption(f"The same settings {experiment['repeats']} times, the folds drawn anew each time and the test split "
               f"the same (repeated k-fold). Status: {experiment['status']}.")
    if experiment.get("error"):
        st.warning(f"**This experiment stopped**: {experiment['error']}", icon=":material/pause_circle:")
    spread = views.repeat_spread(experiment.get("spread"))
    percent_columns = {key: st.column_config.NumberColumn(format="percent") for key in ("mean", "std", "min", "max")}
    if spread.empty:
        st.info("The spread appears when every repeat is done.")
    else:
        st.dataframe(spread, hide_index=True, width="stretch", column_config=percent_columns)
        st.caption("Over the repeats: validation = pooled out-of-fold predictions of each repeat, test = each "
                   "repeat's test ensemble on the same test images. The std is how far one draw of the folds may "
                   "move the numbers on this dataset.")
    scores = views.read_experiment_table(experiment, "repeats")
    if scores is not None:
        st.dataframe(scores, hide_index=True, width="stretch", column_config={
            column: st.column_config.NumberColumn(format="percent") for column in scores.columns if column != "repeat"})
    for entry in experiment.get("runs", []):
        run_link(entry["run_id"], f"repeat {entry['repeat']}: {entry['run_id']} ({entry['status']})")


def tune_view() -> None:
    from optuna import visualization

    best = experiment.get("best")
    st.caption(f"Optuna study optimising mean validation {metric_name(experiment['metric'])} over folds "
               f"({experiment['train_mode']} mode); {experiment.get('trials', 0)} trials finished. "
               f"Status: {status}.")
    if best:
        metric = metric_name(experiment["metric"])
        st.markdown(f"**Best trial {best['trial']}**: validation {metric} {percent(best['value'])}. "
                    "This score is optimistic: it is the best of many tries on the same folds.")
        if best.get("test"):
            st.markdown(f"**{best['test']['label']}**: ensemble {metric} {percent(best['test']['ensemble'])}.")
        st.code(best["command"], language="bash", wrap_lines=True)
        run_link(best.get("trial_run_id"), f"best trial's run: {best.get('trial_run_id')}")
        run_link(best.get("test_run_id"), f"test evaluation run: {best.get('test_run_id')}")
    trials_tab, history_tab, importance_tab, parallel_tab = links.tabs(
        ["Trials", "History", "Importances", "Parallel coordinates"])
    with trials_tab:
        trials = views.trials_view(views.read_experiment_table(experiment, "trials"))
        if trials.empty:
            st.info("No trial has finished yet.")
        else:
            st.dataframe(trials.assign(link=trials.run_id.map(lambda r: f"./?run={r}" if r else None)),
                         hide_index=True, width="stretch",
                         column_config={"link": st.column_config.LinkColumn("run", display_text="open")})
    study = views.load_study(experiment)
    nothing_complete = trials.empty or not (trials.state == "COMPLETE").any()
    for tab, plot in ((history_tab, visualization.plot_optimization_history),
                      (importance_tab, visualization.plot_param_importances),
                      (parallel_tab, visualization.plot_parallel_coordinate)):
        with tab:
            if nothing_complete:
                st.info("Optuna's figures appear when a trial has completed.")
            else:
                chart(plot(study))


if experiment is None:
    st.error("That experiment cannot be read.")
elif experiment["kind"] == "remedies":
    st.subheader(f"Remedies: {experiment_id}")
    remedies_view()
elif experiment["kind"] == "repeats":
    st.subheader(f"Repeated k-fold: {experiment_id}")
    repeats_view()
else:
    st.subheader(f"Tuning study: {experiment_id}")
    tune_view()

links.share_link()
