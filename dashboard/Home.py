"""foldlens dashboard: `streamlit run dashboard/Home.py [-- --runs-dir DIR]`.

This script only routes: it runs the page the URL names (navigation.PAGES lists them; Home is app_pages/0_Overview.py).
"""
import navigation
import runs  # noqa: F401  (puts the repository on the import path)
import streamlit as st
from formatting import literal

from core.errors import UserError

try:
    navigation.menu().run()
except UserError as exc:  # a full cache disk, a run damaged while the page read it: one line, not a traceback
    st.error(f"**This page stopped**: {literal(str(exc))}", icon=":material/error:")
