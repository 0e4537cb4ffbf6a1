"""The URL is the view: widgets bound to URL parameters (so a copied link restores every choice), the sidebar's
link to this view, and links to other pages with their parameters."""
from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import urlencode, urlsplit

import navigation
import runs
import streamlit as st

from core.views.focus import ALL

LINK_KEYS = "_link_keys"   # session state: the widget keys the link to this view carries
FOCUS = "focus"            # the URL parameter of the class focus (focus_picker.py)
FOCUS_MEMORY = "_focus"    # session state: {"run", "value"} of the focus last shown, for pages opened without one
NAMES_CLASSES = ("focus", "class", "true", "pred")   # a link naming its own classes carries no focus


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


def reset_link(keys: Sequence[str] = ()) -> None:
    """The link to this view carries `keys` to begin with; the page's URL-bound widgets add theirs."""
    st.session_state[LINK_KEYS] = list(keys)


def remember(key: str) -> None:
    """Include the widget `key` in the link to copy."""
    st.session_state.setdefault(LINK_KEYS, [])
    if key not in st.session_state[LINK_KEYS]:
        st.session_state[LINK_KEYS].append(key)


def share_link() -> None:
    """The link to this exact view, in the sidebar. Built from the bound widgets' values (not from the browser's
    URL) so it is complete even before the URL bar has caught up. A plain link, one line however long a review
    list makes it: a code box with a copy button would load Streamlit's syntax highlighter, a fifth of a second
    of script on every page load."""
    values = {key: st.session_state.get(key) for key in st.session_state.get(LINK_KEYS, [])}
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


def remember_focus(run_id: str, value: str) -> None:
    """The focus a page shows, carried to the next page of the same run (links and the sidebar's menu)."""
    st.session_state[FOCUS_MEMORY] = {"run": run_id, "value": value}


def remembered_focus(run_id: str | None) -> str | None:
    """The focus last shown for `run_id`, if any."""
    memory = st.session_state.get(FOCUS_MEMORY) or {}
    return memory.get("value") if run_id is not None and memory.get("run") == run_id else None


def with_focus(params: dict[str, str]) -> dict[str, str]:
    """`params` plus the focus last shown for their run, unless they name classes themselves."""
    value = remembered_focus(params.get("run"))
    if not value or value == ALL or any(key in params for key in NAMES_CLASSES):
        return params
    return {**params, FOCUS: value}


def page_link(page: str, label: str, params: dict[str, str], *, where: Any = st,
              icon: str = ":material/arrow_forward:") -> None:
    """A link to one of `navigation.PAGES` that opens it with these URL parameters (and the current focus)."""
    where.page_link(navigation.PAGES[page], label=label, icon=icon, query_params=with_focus(params))


def page_url(page: str, params: dict[str, str]) -> str:
    """A relative URL of one of `navigation.PAGES` with these parameters (and the current focus), for a table's
    link column (pages sit side by side under the dashboard's root, so the URL works from any page and under any
    base path)."""
    path = "./" if page == navigation.HOME else f"./{page}"
    return f"{path}?{urlencode(with_focus(params))}"


def finding_link(target: dict, run: runs.Run, label: str) -> None:
    """A link to a finding's target page with its parameters (class indices become class names)."""
    page = target.get("page", navigation.HOME)
    if page not in navigation.PAGES:
        return
    params = {"run": run.run_id}
    for key, value in (target.get("params") or {}).items():
        if value is None:
            continue
        if key in ("class", "true", "pred") and isinstance(value, int) and 0 <= value < len(run.classes):
            value = run.classes[value]
        params[key] = str(value)
    page_link(page, label, params)
