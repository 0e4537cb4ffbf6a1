"""Class activation maps beside a gallery's predictions: which class's map to show (a URL parameter), and the
overlay images, computed once per image from the fold model that made the prediction."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import links
import pandas as pd
import runs
import streamlit as st

from core.config import default_cache_dir
from core.views import images as explain_views


def choice(where: Any = st, default: str = "predicted") -> str:
    """The URL-bound choice of which class's activation map the gallery shows beside each image."""
    return links.choice("Class activation map", "cam", explain_views.CAM_CLASSES, default, kind="radio", where=where,
                        help="Where the fold model that made the prediction found evidence for the predicted or the "
                             "true class (Grad-CAM; exact CAM for a linear head). Red = strong evidence.")


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


def overlays(run: runs.Run, rows: pd.DataFrame, which: str) -> dict:
    """{row index: overlay PNG path} of the rows' predicted or true class maps, computing the missing ones (from
    the fold model that made each prediction) in one batch; empty when off or when the run has no checkpoints."""
    ready, missing = cached_overlays(run, rows, which)
    if missing and compute(run, missing):
        ready, _ = cached_overlays(run, rows, which)
    return ready


def cached_overlays(run: runs.Run, rows: pd.DataFrame, which: str) -> tuple[dict, list]:
    """({row index: overlay PNG path} of the maps already computed, [requests still to compute]); a file lookup,
    no torch. Rows whose fold model has no checkpoint have neither (a caption says why)."""
    requests = explain_views.map_requests(rows, which)
    if not requests:
        return {}, []
    cache = _overlay_cache(run.path, run.signature, str(default_cache_dir()))
    usable = {index: request for index, request in requests.items() if cache.available(request.model)}
    if len(usable) < len(requests):
        st.caption(":gray[Class activation maps need the fold checkpoints (folds/fold*/model.pt), which this run "
                   "does not have for every model.]")
    ready = {index: str(cache.path(request)) for index, request in usable.items() if cache.path(request).exists()}
    return ready, [request for index, request in usable.items() if index not in ready]


def compute(run: runs.Run, missing: list) -> bool:
    """Compute the missing maps in one batch (torch and the fold models load here, once per server); whether all
    of them are now in the cache (False, with a warning, when they cannot be had: a moved image, a broken
    checkpoint)."""
    cache_dir = str(default_cache_dir())
    try:
        with st.spinner(f"Adding {len(missing)} class activation maps (once; "
                        f"`python train_cli.py explain {run.run_id}` precomputes them)…"):
            _explainer(run.path, run.signature, cache_dir).overlays(missing)
    except Exception as exc:   # the gallery still shows the images
        st.warning(f"Class activation maps unavailable: {exc}", icon=":material/hide_image:")
        return False
    cache = _overlay_cache(run.path, run.signature, cache_dir)
    return all(cache.path(request).exists() for request in missing)
