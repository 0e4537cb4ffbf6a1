"""Overview, the Home page: headline metrics, the findings (each linking to where it shows), class counts, and the
run's configuration."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import links
import page_setup
import runs
import streamlit as st
from charts import chart
from formatting import percent, plain

from core.views import figures
from core.views import tables as views

SEVERITY_ICON = {"high": ":material/error:", "medium": ":material/warning:", "low": ":material/info:",
                 "info": ":material/lightbulb:"}


def report_builder(run: runs.Run) -> Callable[[], str]:
    """What the Download report button calls when clicked: the run's HTML report, linking back to here."""
    from core.delivery.report import build_report

    base = links.dashboard_base_url()
    return lambda: build_report(Path(run.path), base)


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

# Headline cards: validation (out-of-fold) mean ± std, with train, test and the gaps beside them.
headline = views.headline_table(metrics).set_index("metric")
has_test = views.has_test_split(metrics)
for column, key in zip(st.columns(3), views.HEADLINE):
    row = headline.loc[key]
    with column.container(border=True):
        st.metric(f"Validation {key.replace('_', ' ')}", f"{percent(row.val_mean)} ± {100 * row.val_std:.1f}",
                  help="Mean ± standard deviation over folds of each fold model on its own validation fold.")
        test = f"test **{percent(row.test_mean)}**" if has_test else "no test split"
        gaps = f"gap train−val **{100 * row.train_minus_val:+.1f}** pts"
        if has_test:
            gaps += f" · train−test **{100 * row.train_minus_test:+.1f}** pts"
        st.markdown(f"train **{percent(row.train_mean)}** · {test}  \n{gaps}")

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
                        f":gray[({severity})]  \n{plain(finding.get('evidence', ''))}")
            target = finding.get("target") or {}
            links.finding_link(target, run, f"Open {target.get('page', 'Home')}")

with right:
    st.subheader("Class counts")
    samples = run.table("samples")
    counts = views.class_counts(samples, run.classes)
    chart(figures.class_count_bars(counts, run.classes))
    smallest, largest = counts["total"].min(), counts["total"].max()
    st.caption(f"{len(samples)} images, {len(run.classes)} classes; largest/smallest class ratio "
               f"{largest / max(1, smallest):.1f}.")

configuration = st.expander("Configuration", key="configuration", on_change="rerun")
if configuration.open:   # drawn only when opened: a table's scripts are a sizeable part of a page load
    with configuration:
        st.dataframe(views.config_rows(run.info), hide_index=True, width="stretch")

links.share_link()
