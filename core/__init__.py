"""foldlens core: everything that computes, in layers (docs/architecture.md). No Streamlit imports here."""
