"""The runs the dashboard reads: where they live, the sidebar's run picker, and cached reads of a run's files
(keyed by the run's signature, so a run that changes is read again). Every dashboard module that imports `core`
imports this one first: it puts the repository on the import path."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `streamlit run dashboard/Home.py` puts only dashboard/ on the path
    sys.path.insert(0, str(REPO_ROOT))

from formatting import literal  # noqa: E402  (it imports core: after the path is set)

from core.store import run_check, run_store  # noqa: E402
from core.store.freshness import replaced_folds, stale_note  # noqa: E402
from core.store.heartbeat import Liveness, run_status  # noqa: E402
from core.views import tables as views  # noqa: E402

NEW_RUN_HINT = "python train_cli.py --folds 5"
STATUS_ICON = {"complete": ":material/check_circle:", "running": ":material/hourglass_top:",
               "failed": ":material/error:", "damaged": ":material/broken_image:", "pruned": ":material/content_cut:",
               "stalled": ":material/heart_broken:", "waiting": ":material/schedule:"}


def runs_dir() -> Path:
    """`streamlit run dashboard/Home.py -- --runs-dir DIR`, else $FOLDLENS_RUNS_DIR, else ./runs."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs-dir")
    given, _ = parser.parse_known_args(sys.argv[1:])
    return Path(given.runs_dir or os.environ.get("FOLDLENS_RUNS_DIR") or "runs")


@dataclass(frozen=True)
class Run:
    """A listed run plus the signature that keys every cached read of it."""
    run_id: str
    path: str
    status: str
    error: str | None
    info: dict
    signature: tuple
    live: Liveness | None = None   # what its heartbeats say (stalled: the killed writers' last signs of life)
    stale: str | None = None       # complete, but a fold was replaced after it was assembled

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    @property
    def folds_planned(self) -> int:
        return int(self.info.get("config", {}).get("folds", 0))

    def table(self, name: str) -> pd.DataFrame | None:
        return _table(self.path, self.signature, name)

    def has(self, name: str) -> bool:
        """Whether the run has this table yet, without reading it (predictions of 100k images: half a million
        rows)."""
        return (Path(self.path) / f"{name}.parquet").exists()

    def json(self, name: str) -> Any:
        return _json(self.path, self.signature, name)

    def rows(self, source: str, role: str = "val") -> pd.DataFrame:
        """Predictions of a source joined with samples (see `views.prediction_rows`)."""
        return _rows(self.path, self.signature, tuple(self.classes), source, role)


def run_of(entry: run_store.RunEntry) -> Run:
    """A listed, readable run as a `Run`, with its status as readers show it (`stalled` when its writer was
    killed, `waiting` for fold jobs; see core.store.heartbeat.run_status)."""
    status, live = run_status(entry)
    folds = replaced_folds(entry.path, int((entry.info or {}).get("config", {}).get("folds", 0)))
    stale = stale_note(entry.run_id, folds) if status == "complete" and folds else None
    return Run(entry.run_id, str(entry.path), status, entry.error, entry.info or {},
               run_store.run_signature(entry.path), live, stale)


# ---------------------------------------------------------------- cached reads (keyed by run_signature)
# A run's tables are read once and shared by every session (st.cache_resource): st.cache_data would hand each
# call its own unpickled copy, so 20 people on a 50,000-image run held 20 copies of its predictions. Each caller
# gets a shallow copy: pandas copies on write, so a column a page adds or a value it sets stays its own and the
# shared table never changes. Bounded by entries: a few runs' tables at once.

@st.cache_resource(max_entries=32, show_spinner=False)
def _shared_table(path: str, signature: tuple, name: str) -> pd.DataFrame | None:
    return run_store.read_table(Path(path), name)


def _table(path: str, signature: tuple, name: str) -> pd.DataFrame | None:
    table = _shared_table(path, signature, name)
    return None if table is None else table.copy(deep=False)


@st.cache_data(max_entries=64, show_spinner=False)
def _json(path: str, signature: tuple, name: str) -> Any:
    return run_store.read_optional_json(Path(path), name)


@st.cache_resource(max_entries=16, show_spinner=False)
def _shared_rows(path: str, signature: tuple, classes: tuple[str, ...], source: str, role: str) -> pd.DataFrame:
    return views.prediction_rows(_table(path, signature, "predictions"), _table(path, signature, "samples"),
                                 list(classes), source, role)


def _rows(path: str, signature: tuple, classes: tuple[str, ...], source: str, role: str) -> pd.DataFrame:
    return _shared_rows(path, signature, classes, source, role).copy(deep=False)


def cached(function: Callable, run: Run, *args: Any) -> Any:
    """A page's derived view (a function of the run's tables: a frame, a figure) computed once per run version
    and arguments and shared by every session, like the tables: a rerun of any session costs a dictionary lookup,
    not an unpickled copy (for a figure of 10,000 points, Plotly validates every value again on unpickling, most of
    a page's time). A frame comes as a shallow copy (pandas copies on write); anything else is read-only: a page
    that wants to change a figure builds its own."""
    result = _shared_call(function.__code__.co_filename, function.__qualname__, run.path, run.signature, args,
                          _fn=function, _run=run)
    return result.copy(deep=False) if isinstance(result, pd.DataFrame) else result


# Keyed by the defining file too: page scripts all run as __main__, and two pages may name a view alike.
@st.cache_resource(max_entries=64, show_spinner=False)
def _shared_call(file: str, name: str, path: str, signature: tuple, args: tuple, _fn: Callable, _run: Run) -> Any:
    return _fn(_run, *args)


# ---------------------------------------------------------------- the run picker

def _show_in_url(run_id: str) -> None:
    """Put the run in the address bar after a page link dropped it, so it stays a link to the view. Once the
    picker has drawn on this page it owns the parameter and keeps the URL itself; setting it is an error then."""
    try:
        st.query_params["run"] = run_id
    except StreamlitAPIException:
        pass


def pick_run() -> Run | None:
    """The sidebar run picker. The run is the `run` URL parameter, looked up among listed runs only."""
    folder = runs_dir()
    entries = run_store.list_runs(folder)
    if not entries:
        st.title("foldlens")
        st.info(f"No runs in `{folder}` yet. Train one, then reload this page:\n\n```\n{NEW_RUN_HINT}\n```\n"
                "Point the dashboard at another folder with `streamlit run dashboard/Home.py -- --runs-dir DIR` "
                "or the `FOLDLENS_RUNS_DIR` environment variable.", icon=":material/folder_open:")
        return None
    ids = [entry.run_id for entry in entries]
    requested = st.query_params.get("run")
    if requested is not None and run_store.find_run(folder, requested) is None:
        st.warning(f"There is no run called {literal(requested[:80])} in the runs folder, so the newest run is shown. "
                   "Pick another run in the sidebar.", icon=":material/search_off:")
    # The picker's value is set through its key. `run` is a URL parameter bound to the picker, and setting a bound
    # parameter directly is an error (it was, on any rerun of a page opened without `?run=`): see _show_in_url.
    remembered, current = st.session_state.get("_run"), st.session_state.get("run")
    if requested is None and remembered in ids and current in (None, remembered):
        # The run the user was looking at: the sidebar's page links drop the URL's parameters, and a page opened
        # without `?run=` keeps none in the URL. (A `current` that differs is the user picking another run.)
        st.session_state["run"] = remembered
        _show_in_url(remembered)
    elif current not in ids:
        st.session_state["run"] = requested if requested in ids else ids[0]
    status = {entry.run_id: run_status(entry)[0] for entry in entries}
    chosen = st.sidebar.selectbox("Run", ids, index=None, key="run", bind="query-params",
                                  help="Runs in the runs folder, newest first.")
    st.session_state["_run"] = chosen
    if chosen is None:
        st.info("Pick a run in the sidebar.", icon=":material/arrow_back:")
        return None
    entry = next(entry for entry in entries if entry.run_id == chosen)
    st.sidebar.caption(f"{STATUS_ICON.get(status[chosen], '')} {status[chosen]} · created {entry.created[:16]}")
    error = entry.error if entry.info is None else _damage(str(entry.path), _files_signature(entry.path))
    if entry.info is None or error:
        st.title(entry.run_id)
        st.error(f"**This run cannot be read**: {literal(error)}. Other runs still work: pick one in the sidebar.",
                 icon=":material/broken_image:")
        return None
    return run_of(entry)


def _files_signature(run_dir: Path) -> tuple:
    """Name, size and mtime of every file the damage check reads: it is checked again when one changes."""
    stats = []
    for pattern in ("*.parquet", "*.json", "folds/fold*/*.parquet", "folds/fold*/*.json", "embeddings/*.npy"):
        for path in sorted(Path(run_dir).glob(pattern)):
            try:
                stat = path.stat()
            except FileNotFoundError:  # replaced while we looked: the next rerun sees the new one
                continue
            stats.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(stats)


@st.cache_data(max_entries=64, show_spinner=False)
def _damage(path: str, signature: tuple) -> str | None:
    """Why the run's files cannot be read (see core.store.run_check), or None."""
    try:
        run_check.check_run_files(Path(path))
    except run_check.DamagedRunError as exc:
        return str(exc)
    return None
