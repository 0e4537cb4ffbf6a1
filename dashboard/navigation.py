"""The dashboard's pages, listed once: the sidebar's menu, the URL of each page and the targets of page links.

Each page keeps the URL path and title it had when Streamlit found it in pages/ by its file name (`/Classes`),
and Home is the root URL, so links made before still open the same view. Page links name a page by its file.
"""
from __future__ import annotations

import streamlit as st

HOME = "Home"
# title (also the URL path) -> the page's file, relative to dashboard/. The folder is not called pages/: Streamlit
# would list a pages/ folder by itself (its older convention) for a deep link opened before Home.py first ran.
PAGES = {HOME: "app_pages/0_Overview.py", "Overfitting": "app_pages/1_Overfitting.py",
         "Classes": "app_pages/2_Classes.py",
         "Embeddings": "app_pages/3_Embeddings.py", "Misclassified": "app_pages/4_Misclassified.py",
         "Data": "app_pages/5_Data.py", "Compare": "app_pages/6_Compare.py", "Slices": "app_pages/7_Slices.py",
         "Experiments": "app_pages/8_Experiments.py", "Review": "app_pages/9_Review.py"}


def menu() -> st.Page:
    """The sidebar's page menu; returns the page the URL asks for (Home at the root), to run."""
    return st.navigation([st.Page(file, title=title, url_path=title, default=title == HOME)
                          for title, file in PAGES.items()])
