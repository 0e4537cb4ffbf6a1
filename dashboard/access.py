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
