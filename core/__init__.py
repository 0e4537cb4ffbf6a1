"""foldlens core: everything that computes. No Streamlit imports here."""
