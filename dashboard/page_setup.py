"""What every page does first (page config, the password gate, and for a page about one run: the run picker, the
run's status banner and the review list's count), and the banner that says why the diagnostics' output is missing.
"""
from __future__ import annotations

import access
import links
import review_list
import runs
import streamlit as st
from formatting import literal

from core.store import run_store
from core.store.heartbeat import Liveness


def without_run(title: str) -> None:
    """Page config and password gate for a page that is not about one run (Experiments)."""
    _open(title, link_keys=[])


def for_run(title: str) -> runs.Run:
    """Page config, password gate, run picker and status banner. Stops the page when there is nothing to
    show, so pages can assume a run with at least one finished fold."""
    _open(title, link_keys=["run"])
    run = runs.pick_run()
    if run is None:
        st.stop()
    st.title(title)
    _status_banner(run)
    review_list.sidebar(run)
    if not run.has("predictions") or run.json("metrics") is None:
        st.info("No fold has finished yet, so there is nothing to show. This page updates when one does.")
        st.stop()
    return run


def _open(title: str, link_keys: list[str]) -> None:
    st.set_page_config(page_title=f"{title} · foldlens", page_icon="🔬", layout="wide")
    links.reset_link(link_keys)
    access.gate()


def _status_banner(run: runs.Run) -> None:
    """What a run that is not complete shows: the folds done so far, and why it stopped."""
    done = len(run.info.get("folds_done", []))
    if run.status == "running":
        st.info(f"**{run.run_id} is still training**: showing the {done} of {run.folds_planned} folds done so far. "
                "Diagnostics appear when all folds are done.", icon=":material/hourglass_top:")
    elif run.status == "stalled":
        stalled_warning(run.run_id, run.live, f"python train_cli.py --resume {run.run_id}",
                        f"Showing the {done} of {run.folds_planned} folds done so far.")
    elif run.status == "waiting":
        st.info(f"**{run.run_id} waits for its fold jobs** (made with `--prepare-only`): showing the {done} of "
                f"{run.folds_planned} folds done so far. When all are done: "
                f"`python train_cli.py --resume {run.run_id} --assemble-only`", icon=":material/schedule:")
    elif run.stale:
        st.warning(f"**Stale**: {literal(run.stale)}", icon=":material/update:")
    elif run.status == "pruned":
        st.info(f"**This tuning trial was stopped early** ({run.error}): showing the {done} of {run.folds_planned} "
                "folds it finished.", icon=":material/content_cut:")
    elif run.status == "failed":
        st.error(f"**This run failed**: {run.error or 'no error recorded'}. Showing whatever it finished.",
                 icon=":material/error:")


def stalled_warning(what: str, live: Liveness | None, resume: str = "", more: str = "") -> None:
    """A run, experiment or study whose writer stopped giving signs of life: its last one (from `live`, its
    heartbeats) and the command that resumes it (the heartbeats', else `resume`)."""
    stalled = live.stalled if live else []
    last = "; ".join(beat.describe() for beat in stalled) or "no sign of life from its writer"
    resume = " or ".join(live.resume if live and live.resume else [resume] if resume else [])
    st.warning(f"**{what} stalled**: its writer stopped giving signs of life (killed, out of memory or a lost "
               f"machine?): {literal(last)}. {more}" + (f"  \nResume it with {literal(resume)}" if resume else ""),
               icon=":material/heart_broken:")


def diagnostics_missing(run: runs.Run, pending: str, *, caption: bool = False,
                        consequence: str = "this cannot be shown") -> None:
    """Why something the diagnostics write is not there: their recorded failure with the command that reruns
    them, or `pending` (they run after the last fold) as an info box or a caption."""
    error = run.info.get("diagnostics_error")
    if run_store.diagnostics_skipped(run.info):   # a tuning trial: left out on purpose, nothing failed
        skipped = (f"**This run was made without diagnostics** (tuning trials skip them to save time), so "
                   f"{consequence}. Compute them without retraining: `python train_cli.py diagnose {run.run_id}`")
        if caption:
            st.caption(f":gray[{skipped}]")
        else:
            st.info(skipped, icon=":material/info:")
    elif error:
        st.error(f"**The diagnostics failed**, so {consequence}: {literal(error)}  \nOnce the cause is fixed, rerun "
                 f"them without retraining: `python train_cli.py diagnose {run.run_id}`", icon=":material/error:")
    elif caption:
        st.caption(f":gray[{pending}]")
    else:
        st.info(pending, icon=":material/pending:")
