"""What every page shares: setup (password, run picker, status banner), URL-bound widgets, the link to
copy, class colours, cached loaders and the image gallery. Data shaping lives in `core.views.tables`."""
from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlencode, urlsplit

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `streamlit run dashboard/Home.py` puts only dashboard/ on the path
    sys.path.insert(0, str(REPO_ROOT))

from core.config import default_cache_dir  # noqa: E402
from core.data.thumbnails import image_path, thumbnail  # noqa: E402
from core.store import run_store  # noqa: E402
from core.views import images as explain_views  # noqa: E402
from core.views import tables as views  # noqa: E402

PAGE_FILES = {"Home": "Home.py", "Overfitting": "pages/1_Overfitting.py", "Classes": "pages/2_Classes.py",
              "Embeddings": "pages/3_Embeddings.py", "Misclassified": "pages/4_Misclassified.py",
              "Data": "pages/5_Data.py", "Compare": "pages/6_Compare.py", "Slices": "pages/7_Slices.py",
              "Experiments": "pages/8_Experiments.py", "Review": "pages/9_Review.py"}
SEVERITY_ICON = {"high": ":material/error:", "medium": ":material/warning:", "low": ":material/info:",
                 "info": ":material/lightbulb:"}
OUTCOME_COLORS = {"correct": "#2ca02c", "wrong": "#d62728"}
ROLE_COLORS = {"train": "#7f7f7f", "val": "#1f77b4", "test": "#ff7f0e"}
NEW_RUN_HINT = "python train_cli.py --folds 5"


# ---------------------------------------------------------------- where runs live

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
        rows, and every cached read of a table copies it)."""
        return (Path(self.path) / f"{name}.parquet").exists()

    def json(self, name: str) -> Any:
        return _json(self.path, self.signature, name)

    def rows(self, source: str, role: str = "val") -> pd.DataFrame:
        """Predictions of a source joined with samples (see `views.prediction_rows`)."""
        return _rows(self.path, self.signature, tuple(self.classes), source, role)


# ---------------------------------------------------------------- cached loaders (keyed by run_signature)

@st.cache_data(max_entries=32, show_spinner=False)
def _table(path: str, signature: tuple, name: str) -> pd.DataFrame | None:
    return run_store.read_table(Path(path), name)


@st.cache_data(max_entries=64, show_spinner=False)
def _json(path: str, signature: tuple, name: str) -> Any:
    return run_store.read_optional_json(Path(path), name)


@st.cache_data(max_entries=32, show_spinner=False)
def _rows(path: str, signature: tuple, classes: tuple[str, ...], source: str, role: str) -> pd.DataFrame:
    return views.prediction_rows(_table(path, signature, "predictions"), _table(path, signature, "samples"),
                                 list(classes), source, role)


def cached(function: Callable, run: Run, *args: Any) -> Any:
    """Cache a page's derived view (a function of the run's tables) by run and arguments, so a rerun that
    only changes unrelated widgets costs a dictionary lookup."""
    return _cached_call(function.__module__, function.__qualname__, run.path, run.signature, args, _fn=function,
                        _run=run)


@st.cache_data(max_entries=128, show_spinner=False)
def _cached_call(module: str, name: str, path: str, signature: tuple, args: tuple, _fn: Callable,
                 _run: Run) -> Any:
    return _fn(_run, *args)


# ---------------------------------------------------------------- page setup

def setup(title: str) -> Run:
    """Page config, password gate, run picker and status banner. Stops the page when there is nothing to
    show, so pages can assume a run with at least one finished fold."""
    st.set_page_config(page_title=f"{title} · foldlens", page_icon="🔬", layout="wide")
    st.session_state["_link_keys"] = ["run"]
    _password_gate()
    run = pick_run()
    if run is None:
        st.stop()
    st.title(title)
    if run.status == "running":
        st.info(f"**{run.run_id} is still training**: showing the {len(run.info.get('folds_done', []))} of "
                f"{run.folds_planned} folds done so far. Diagnostics appear when all folds are done.",
                icon=":material/hourglass_top:")
    elif run.status == "pruned":
        st.info(f"**This tuning trial was stopped early** ({run.error}): showing the "
                f"{len(run.info.get('folds_done', []))} of {run.folds_planned} folds it finished.",
                icon=":material/content_cut:")
    elif run.status == "failed":
        st.error(f"**This run failed**: {run.error or 'no error recorded'}. Showing whatever it finished.",
                 icon=":material/error:")
    import review_list  # noqa: PLC0415  (it imports this module)
    review_list.sidebar(run)
    if not run.has("predictions") or run.json("metrics") is None:
        st.info("No fold has finished yet, so there is nothing to show. This page updates when one does.")
        st.stop()
    return run


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
    remembered = st.session_state.get("_run")
    if requested is None and remembered in ids:
        # The sidebar's page links drop the URL's parameters: stay on the run the user was looking at.
        st.query_params["run"] = st.session_state["run"] = remembered
    elif st.session_state.get("run") not in ids:
        st.session_state["run"] = requested if requested in ids else ids[0]
    status = {entry.run_id: entry.status for entry in entries}
    chosen = st.sidebar.selectbox("Run", ids, index=None, key="run", bind="query-params",
                                  help="Runs in the runs folder, newest first.")
    st.session_state["_run"] = chosen
    if chosen is None:
        st.info("Pick a run in the sidebar.", icon=":material/arrow_back:")
        return None
    entry = next(entry for entry in entries if entry.run_id == chosen)
    st.sidebar.caption(f"{_STATUS_ICON.get(status[chosen], '')} {status[chosen]} · created {entry.created[:16]}")
    if entry.info is None:
        st.title(entry.run_id)
        st.error(f"**This run cannot be read**: {entry.error}. Other runs still work: pick one in the sidebar.",
                 icon=":material/broken_image:")
        return None
    return Run(entry.run_id, str(entry.path), entry.status, entry.error, entry.info,
               run_store.run_signature(entry.path))


def run_of(entry: run_store.RunEntry) -> Run:
    """A listed, readable run as a `Run`, for pages that read a second run (Compare)."""
    return Run(entry.run_id, str(entry.path), entry.status, entry.error, entry.info or {},
               run_store.run_signature(entry.path))


_STATUS_ICON = {"complete": ":material/check_circle:", "running": ":material/hourglass_top:",
                "failed": ":material/error:", "damaged": ":material/broken_image:", "pruned": ":material/content_cut:"}


def page_setup(title: str) -> None:
    """Page config and password gate for a page that is not about one run (Experiments)."""
    st.set_page_config(page_title=f"{title} · foldlens", page_icon="🔬", layout="wide")
    st.session_state["_link_keys"] = []
    _password_gate()


def _password_gate() -> None:
    """Stops the page until the password is entered (when secrets.toml sets one)."""
    expected = _expected_password()
    if not expected:
        _warn_when_served_beyond_loopback()
    elif not _password_ok(expected):
        st.stop()


def _expected_password() -> str | None:
    """The `password` in secrets.toml, or None when there is no secrets file at all. A secrets file that exists
    but cannot be read stops every page: serving without the password it may hold would fail open."""
    try:
        return st.secrets.get("password")
    except Exception as exc:  # StreamlitSecretNotFoundError (a FileNotFoundError) also means "cannot parse"
        present = [path for path in st.get_option("secrets.files") if os.path.exists(path)]
        if isinstance(exc, FileNotFoundError) and not present:
            return None
        st.error(f"**The secrets file cannot be read**, so the dashboard shows nothing: {literal(str(exc))}  \n"
                 f"Fix or remove {', '.join(literal(path) for path in present) or 'it'}, then reload this page.",
                 icon=":material/lock:")
        st.stop()


def _password_ok(expected: str) -> bool:
    """Streamlit's documented st.secrets password pattern; off unless `password` is set in secrets.toml."""
    if st.session_state.get("password_correct"):
        return True

    def entered() -> None:
        given = st.session_state.pop("password", "")
        st.session_state["password_correct"] = hmac.compare_digest(given.encode(), str(expected).encode())

    st.text_input("Password", type="password", on_change=entered, key="password")
    if st.session_state.get("password_correct") is False:
        st.error("Password incorrect.")
    return False


def serves_beyond_loopback(address: str | None) -> bool:
    """Whether Streamlit's server.address reaches other machines (unset: every interface, Streamlit's default)."""
    if not address:
        return True
    if address == "localhost" or address.startswith("unix://"):
        return False
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:  # a host name: it may name any interface of this machine
        return True
    return not (ip.is_loopback or getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def _warn_when_served_beyond_loopback() -> None:
    address = st.get_option("server.address")
    if serves_beyond_loopback(address):
        st.sidebar.warning(f"**Open to the network, no password**: served on {literal(address or 'every interface')}"
                           ", so anyone who can reach this machine sees every run. Set a password in "
                           "`.streamlit/secrets.toml` or serve on `127.0.0.1` (the project default).",
                           icon=":material/public:")


def literal(text: str) -> str:
    """`text` as inline code: shown as typed, never read as Markdown (links, emphasis, Streamlit's :color[...]).
    The fence is one backtick longer than any run of backticks inside it (CommonMark's rule)."""
    text = re.sub(r"[\r\n]+", " ", str(text))  # a blank line would end the code span
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def diagnostics_missing(run: Run, pending: str, *, caption: bool = False,
                        consequence: str = "this cannot be shown") -> None:
    """Why something the diagnostics write is not there: their recorded failure with the command that reruns
    them, or `pending` (they run after the last fold) as an info box or a caption."""
    error = run.info.get("diagnostics_error")
    if error:
        st.error(f"**The diagnostics failed**, so {consequence}: {literal(error)}  \nOnce the cause is fixed, rerun "
                 f"them without retraining: `python train_cli.py diagnose {run.run_id}`", icon=":material/error:")
    elif caption:
        st.caption(f":gray[{pending}]")
    else:
        st.info(pending, icon=":material/pending:")


# ---------------------------------------------------------------- URL-bound widgets and the link to copy

def choice(label: str, key: str, options: Sequence[str], default: str | None = None, *, kind: str = "selectbox",
           where: Any = st, help: str | None = None) -> str:
    """A single-choice widget whose value is the URL parameter `key` (Streamlit's query-param binding), so
    a copied link restores it. Options are the URL values themselves, which keeps links readable."""
    options = list(options)
    index = options.index(default) if default in options else 0
    remember(key)
    if kind == "radio":
        return where.radio(label, options, index=index, key=key, bind="query-params", horizontal=True, help=help)
    return where.selectbox(label, options, index=index, key=key, bind="query-params", help=help)


def tabs(labels: Sequence[str], key: str = "tab") -> list[Any]:
    """Lazy tabs bound to the URL parameter `key`. Findings name tabs in snake case ("label_issues"), so that
    spelling of a label opens it too."""
    requested = st.query_params.get(key)
    aliases = {label.lower().replace(" ", "_"): label for label in labels}
    if requested in aliases and key not in st.session_state:
        st.session_state[key] = aliases[requested]
    remember(key)
    return list(st.tabs(list(labels), key=key, bind="query-params"))


def pager(n_pages: int, key: str = "page") -> int:
    """The gallery page, also a URL parameter."""
    remember(key)
    if n_pages <= 1:
        return 1
    if st.session_state.get(key, 1) > n_pages:  # a page number kept from a longer list
        st.session_state[key] = 1
    return st.pagination(n_pages, key=key, bind="query-params")


def remember(key: str) -> None:
    """Include the widget `key` in the link to copy."""
    st.session_state.setdefault("_link_keys", [])
    if key not in st.session_state["_link_keys"]:
        st.session_state["_link_keys"].append(key)


def share_link() -> None:
    """The link to this exact view, in the sidebar. Built from the bound widgets' values (not from the browser's
    URL) so it is complete even before the URL bar has caught up. A plain link, one line however long a review
    list makes it: a code box with a copy button would load Streamlit's syntax highlighter, a fifth of a second
    of script on every page load."""
    values = {key: st.session_state.get(key) for key in st.session_state.get("_link_keys", [])}
    query = urlencode({key: value for key, value in values.items() if value not in (None, "", [])}, doseq=True,
                      safe=",")   # a review list's commas need no escaping in a query string
    base = st.context.url or ""
    st.sidebar.markdown(f":material/link: [Link to this view]({base}?{query})",
                        help="Right-click it and copy the link address (or open it in a new tab): it opens this "
                             "page with every choice made here, the review list included.")


def dashboard_base_url() -> str | None:
    """This dashboard's root URL (scheme, host and Streamlit's base path), for links into it from elsewhere."""
    parts = urlsplit(st.context.url or "")
    if not parts.scheme or not parts.netloc:
        return None
    base_path = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"{parts.scheme}://{parts.netloc}" + (f"/{base_path}" if base_path else "")


def report_builder(run: Run) -> Callable[[], str]:
    """What the Download report button calls when clicked: the run's HTML report, linking back to here."""
    from core.delivery.report import build_report

    base = dashboard_base_url()
    return lambda: build_report(Path(run.path), base)


def page_link(finding_target: dict, run: Run, label: str) -> None:
    """A link to a finding's target page with its parameters (class indices become class names)."""
    page = finding_target.get("page", "Home")
    if page not in PAGE_FILES:
        return
    params = {"run": run.run_id}
    for key, value in (finding_target.get("params") or {}).items():
        if value is None:
            continue
        if key in ("class", "true", "pred") and isinstance(value, int) and 0 <= value < len(run.classes):
            value = run.classes[value]
        params[key] = str(value)
    st.page_link(PAGE_FILES[page], label=label, icon=":material/arrow_forward:", query_params=params)


# ---------------------------------------------------------------- colours and charts

def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """The same colour for a class on every page: its index in the run's class order picks the colour."""
    palette = px.colors.qualitative.D3 if len(classes) <= 10 else px.colors.qualitative.Alphabet
    if len(classes) > len(palette):
        palette = px.colors.sample_colorscale("Turbo", list(np.linspace(0, 1, len(classes))))
    return {name: palette[i % len(palette)] for i, name in enumerate(classes)}


def category_colors(color_by: str, classes: Sequence[str]) -> dict[str, str]:
    """Colour map for an embedding colouring: classes for label/prediction, fixed ones otherwise."""
    if color_by in ("label", "prediction"):
        return class_colors(classes)
    return OUTCOME_COLORS if color_by == "correct" else ROLE_COLORS


def chart(figure: Any, **kwargs: Any) -> Any:
    """st.plotly_chart with the dashboard's defaults (full width, compact margins, no Plotly logo)."""
    figure.update_layout(margin={"l": 10, "r": 10, "t": 50, "b": 10}, title_x=0)
    return st.plotly_chart(figure, width="stretch", config={"displaylogo": False}, **kwargs)


def percent(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.1f}%"


# ---------------------------------------------------------------- gallery

def prediction_caption(row: pd.Series) -> str:
    """✓/✗, true → predicted class, confidence and sample id, plus badges when the row has them."""
    verdict = ":green[✓]" if row["true_name"] == row["pred_name"] else ":red[✗]"
    badges = [text for column, text in (("label_issue", ":orange-badge[suspected label issue]"),
                                        ("duplicate", ":violet-badge[duplicate]")) if row.get(column, False)]
    return (f"{verdict} **{row['true_name']}** → {row['pred_name']}  \n{percent(row['confidence'])} · "
            f"#{row['sample_id']}" + ("  \n" + " ".join(badges) if badges else ""))


def paged_gallery(rows: pd.DataFrame, run: Run, *, per_page: int = 18, key: str = "gallery",
                  caption: Callable[[pd.Series], str] = prediction_caption, cam: str = "off") -> None:
    """A gallery with a URL-bound pager (`page`) above it, and an "add all of them to the review list" control."""
    import review_list  # noqa: PLC0415  (it imports this module)
    if "sample_id" in rows and len(rows):
        review_list.add_many(run, rows["sample_id"], f"{key}-all", what=f"all {len(rows)} images",
                             suggested=review_list.suggestions(rows))
    page = pager(views.page_count(len(rows), per_page))
    gallery(views.page_of(rows, page, per_page), run, key=key, caption=caption, cam=cam)


def gallery(rows: pd.DataFrame, run: Run, *, columns: int = 6, key: str = "gallery",
            caption: Callable[[pd.Series], str] = prediction_caption, buttons: bool = True,
            cam: str = "off") -> None:
    """Thumbnails (`path` column) with a caption each; buttons open the full-size image and (with a `sample_id`
    column) the image's review dialog. Inside a dialog `buttons` is off: dialogs do not nest. With `cam`
    "predicted" or "true" (prediction rows only) each thumbnail has its class activation map beside it."""
    if rows.empty:
        st.caption("No images to show.")
        return
    maps = cam_overlays(run, rows, cam)
    columns = min(columns, 4) if maps else columns   # image and map side by side need the room
    for start in range(0, len(rows), columns):
        for column, (position, row) in zip(st.columns(columns), rows.iloc[start:start + columns].iterrows()):
            with column:
                detail = (int(row["sample_id"]), str(row["model"]), int(row["pred"]), int(row["label"])) \
                    if {"model", "pred", "label"} <= set(row.index) else None   # a prediction: maps on opening
                image(run, row["path"], caption(row), key=f"{key}-{position}", buttons=buttons,
                      sample_id=row.get("sample_id"), cam=maps.get(position), detail=detail)


def image(run: Run, relative: str, caption: str, key: str, *, buttons: bool = True,
          sample_id: int | None = None, cam: str | None = None,
          detail: tuple[int, str, int, int] | None = None) -> None:
    """One thumbnail from the dataset root (never outside it) with its caption, a full-size button and, for a
    sample of the run, a button that opens its review dialog; `cam`: a class activation map shown beside it;
    `detail` (sample_id, model, pred, label): the full-size view offers the maps of both classes."""
    path = image_path(run.info.get("dataset", {}).get("root", ""), relative)
    # The thumbnail cache of this machine, not the run's recorded one: the run may come from elsewhere.
    small = thumbnail(path, cache_dir=default_cache_dir()) if path else None
    if small and cam:
        picture, heat = st.columns(2, gap="small")
        picture.image(str(small), width="stretch")
        heat.image(cam, width="stretch")
    elif small:
        st.image(str(small), width="stretch")
    else:
        st.warning(f"image unavailable: {relative}", icon=":material/hide_image:")
    st.markdown(caption)
    if not buttons:
        return
    if small and st.button("Full size", key=key, icon=":material/open_in_full:", type="tertiary"):
        _full_image(str(path), f"{relative} · {caption}", run, detail)
    if sample_id is not None:
        import review_list  # noqa: PLC0415  (it imports this module)
        review_list.review_button(run, int(sample_id), key)


@st.dialog("Image", width="large")
def _full_image(path: str, caption: str, run: Run, detail: tuple[int, str, int, int] | None) -> None:
    if detail is None:
        st.image(path)
    else:
        sample_id, model, pred, label = detail
        which = st.radio("Class activation map of the", ["predicted", "true"], horizontal=True, key="detail_cam",
                         format_func=lambda w: f"{w} class ({run.classes[pred if w == 'predicted' else label]})")
        rows = pd.DataFrame([{"sample_id": sample_id, "model": model, "pred": pred, "label": label}])
        maps = cam_overlays(run, rows, which)
        left, right = st.columns(2)
        left.image(path, width="stretch")
        if maps:
            shown = run.classes[pred if which == "predicted" else label]
            right.image(maps[0], width="stretch",
                        caption=f"where {model} finds evidence for {shown} (in the centre crop it sees)")
    st.markdown(caption)


# ---------------------------------------------------------------- class activation maps

@st.cache_resource(max_entries=4, show_spinner=False)
def _overlay_cache(path: str, signature: tuple, cache_dir: str) -> Any:
    """Where one run's overlays are and which checkpoints exist: no torch, so maps computed before cost a file
    lookup."""
    from core.analysis.overlay_cache import OverlayCache
    return OverlayCache(Path(path), cache_dir)


@st.cache_resource(max_entries=4, show_spinner=False)
def _explainer(path: str, signature: tuple, cache_dir: str) -> Any:
    """One run's fold models (loaded on first use), shared by every session; torch is imported only here, when
    a map is missing."""
    from core.analysis.explain import Explainer
    return Explainer(Path(path), cache_dir)


def cam_overlays(run: Run, rows: pd.DataFrame, which: str) -> dict:
    """{row index: overlay PNG path} of the rows' predicted or true class maps, computing the missing ones (from
    the fold model that made each prediction) in one batch; empty when off or when the run has no checkpoints."""
    requests = explain_views.map_requests(rows, which)
    if not requests:
        return {}
    cache_dir = str(default_cache_dir())
    overlays = _overlay_cache(run.path, run.signature, cache_dir)
    usable = {index: request for index, request in requests.items() if overlays.available(request.model)}
    if len(usable) < len(requests):
        st.caption(":gray[Class activation maps need the fold checkpoints (folds/fold*/model.pt), which this run "
                   "does not have for every model.]")
    missing = [request for request in usable.values() if not overlays.path(request).exists()]
    try:
        if missing:
            with st.spinner(f"Computing {len(missing)} class activation maps (once; "
                            f"`python train_cli.py explain {run.run_id}` precomputes them)…"):
                _explainer(run.path, run.signature, cache_dir).overlays(missing)
    except Exception as exc:   # a moved image or a broken checkpoint: the gallery still shows the images
        st.warning(f"Class activation maps unavailable: {exc}", icon=":material/hide_image:")
        return {}
    return {index: str(overlays.path(request)) for index, request in usable.items()}


def cam_choice(where: Any = st, default: str = "predicted") -> str:
    """The URL-bound choice of which class's activation map the gallery shows beside each image."""
    return choice("Class activation map", "cam", explain_views.CAM_CLASSES, default, kind="radio", where=where,
                  help="Where the fold model that made the prediction found evidence for the predicted or the "
                       "true class (Grad-CAM; exact CAM for a linear head). Red = strong evidence.")
