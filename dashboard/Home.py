"""foldlens dashboard: `streamlit run dashboard/Home.py [-- --runs-dir DIR]`.

This script only routes: it runs the page the URL names (navigation.PAGES lists them; Home is app_pages/0_Overview.py).
"""
import navigation

navigation.menu().run()
