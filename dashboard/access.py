"""Who may see the dashboard: the password gate (when secrets.toml sets a password), and a warning in the sidebar
when the dashboard is open to the network without one."""
from __future__ import annotations

import hmac
import ipaddress
import os

import streamlit as st
from formatting import literal


def gate() -> None:
    """Stops the page until the password is entered (when secrets.toml sets one)."""
    expected = _expected_password()
    if not expected:
        _warn_when_served_beyond_loopback()
    elif not _password_ok(expected):
        st.stop()


def _expected_password() -> str | None:
    """The `password` in secrets.toml, or None when there is no secrets file at all. A secrets file that exists
    but cannot be read, or gives no usable password (a misspelt key, an empty one, one inside a [section]),
    stops every page: serving without the password it was meant to hold would fail open."""
    present = [path for path in st.get_option("secrets.files") if os.path.exists(path)]
    try:
        secrets = st.secrets.to_dict()
    except Exception as exc:  # StreamlitSecretNotFoundError (a FileNotFoundError) also means "cannot parse"
        if isinstance(exc, FileNotFoundError) and not present:
            return None
        _stop("The secrets file cannot be read", literal(str(exc)), present)
    password = secrets.get("password")
    if isinstance(password, str) and password.strip():
        return password
    if not present and "password" not in secrets:
        return None
    _stop("No usable password in the secrets file", _why_unusable(secrets), present)


def _why_unusable(secrets: dict) -> str:
    """What the secrets hold instead of a top-level, non-empty `password` string."""
    if "password" in secrets:
        return "`password` is empty" if isinstance(secrets["password"], str) else "`password` must be a quoted string"
    nested = [name for name, value in secrets.items() if isinstance(value, dict) and "password" in value]
    if nested:
        return (f"`password` is inside the [{literal(nested[0])}] section; it must come before any [section], "
                "at the top of the file")
    keys = ", ".join(literal(key) for key in list(secrets)[:5]) or "nothing"
    return f"there is no `password` key (found: {keys})"


def _stop(title: str, why: str, present: list[str]) -> None:
    files = ", ".join(literal(path) for path in present) or "the secrets file"
    st.error(f"**{title}**, so the dashboard shows nothing: {why}.  \nThe dashboard expects a top-level line "
             f'`password = "choose-a-long-one"` in {files}; fix it (or remove the file to serve without a '
             "password), then reload this page.", icon=":material/lock:")
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
