"""Overview, the Home page: headline metrics, the findings (each linking to where it shows), class counts, and the
run's configuration."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import links
import page_setup
import plotly.graph_objects as go
import runs
import streamlit as st
from charts import chart, finished
from formatting import plain

from core.views import dropped, figures, superclasses
from core.views import tables as views

SEVERITY_ICON = {"high": ":material/error:", "medium": ":material/warning:", "low": ":material/info:",
                 "info": ":material/lightbulb:"}


def report_builder(run: runs.Run) -> Callable[[], str]:
    """What the Download report button calls when clicked: the run's HTML report, linking back to here."""
    from core.delivery.report import build_report

    base = links.dashboard_base_url()
    return lambda: build_report(Path(run.path), base)


def class_counts(run: runs.Run) -> tuple[go.Figure, int, int, int]:
    """(the class-count chart, images, smallest and largest class): once per run, shared by every session."""
    samples = run.table("samples")
    counts = views.class_counts(samples, run.classes)
    return (finished(figures.class_count_bars(counts, run.classes)), len(samples), int(counts["total"].min()),
            int(counts["total"].max()))


run = page_setup.for_run("Overview")
metrics = run.json("metrics")
caption, download = st.columns([4, 1], vertical_alignment="center")
caption.caption(f"Run **{run.run_id}** · {run.info.get('train_mode', '?')} mode · {run.info.get('device', '')} · "
                f"{len(run.info.get('folds_done', []))} folds done")
# Built only when clicked (a callable), the same file as `train_cli.py report RUN_ID --dashboard-url` here.
download.download_button("Download report", data=report_builder(run), file_name=f"report-{run.run_id}.html",
                         mime="text/html", on_click="ignore", icon=":material/download:",
                         help="One HTML file that opens offline: headline numbers, findings with their evidence, "
                              "classes, curves, the map, mistakes, label issues and leakage. Its sections link "
                              "back to this dashboard.")

# Headline cards: the test ensemble (what predict and serve use) with its interval and the fold mean beside it;
# validation, train and the gaps under it.
for column, card in zip(st.columns(3), views.headline_cards(metrics)):
    with column.container(border=True):
        st.metric(card["title"], card["value"], help=card["help"])
        st.markdown("  \n".join(card["lines"]))
# A run with a class hierarchy: the same predictions read a level up (a prediction's superclass is its class's).
super_cards = superclasses.superclass_cards(metrics)
if super_cards:
    for column, card in zip(st.columns(3), super_cards):
        column.metric(card["title"], card["value"], help=f"At the superclass level: {card['lines'][0]}. {card['help']}")
    st.caption(f"{superclasses.errors_within(metrics) or ''} Confusion between superclasses: on Classes.")

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Findings")
    findings = run.json("findings")
    if findings is None:
        page_setup.diagnostics_missing(run, "Findings appear once all folds are done and the diagnostics have run "
                                            f"(`python train_cli.py diagnose {run.run_id}`).",
                                       consequence="there are no findings")
    for finding in (findings or {}).get("findings", []):   # findings.json is ranked by severity already
        with st.container(border=True):
            severity = finding.get("severity", "info")
            st.markdown(f"{SEVERITY_ICON.get(severity, '')} **{plain(finding.get('title', ''))}** "
                        f":gray[({severity})]  \n{plain(finding.get('evidence', ''))}"
                        + (f"  \n:gray[How often this kind of finding is wrong: `{finding['more']}`]"
                           if finding.get("more") else ""))
            target = finding.get("target") or {}
            links.finding_link(target, run, f"Open {target.get('page', 'Home')}")

with right:
    st.subheader("Class counts")
    figure, images, smallest, largest = runs.cached(class_counts, run)
    chart(figure)
    st.caption(f"{images} images, {len(run.classes)} classes; largest/smallest class ratio "
               f"{largest / max(1, smallest):.1f}.")
    left_out = dropped.dropped_summary(run.info)
    if left_out:   # the model cannot predict these: say so where the classes are counted
        st.warning(plain(left_out), icon=":material/playlist_remove:")

configuration = st.expander("Configuration", key="configuration", on_change="rerun")
if configuration.open:   # drawn only when opened: a table's scripts are a sizeable part of a page load
    with configuration:
        st.dataframe(views.config_rows(run.info), hide_index=True, width="stretch")

links.share_link()
