"""Data shaped for the dashboard and the report, and the figures both draw (no Streamlit here)."""
