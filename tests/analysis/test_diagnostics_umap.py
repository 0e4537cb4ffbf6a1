"""UMAP maps: seeded, and reused from the content-addressed cache when their inputs did not change."""
import importlib

import numpy as np
import pytest

from core.analysis.diagnostics.neighbours import prepare
from core.analysis.diagnostics.thresholds import Thresholds

# the package exports a function of that name
umap_module = importlib.import_module("core.analysis.diagnostics.umap_maps")


@pytest.fixture(scope="module")
def spaces():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64))
    embedding = (centres[rng.integers(0, 3, 120)] + 0.3 * rng.normal(size=(120, 64))).astype(np.float32)
    th = Thresholds()
    return [prepare("backbone", embedding, th), prepare("fold0", embedding[:, ::-1].copy(), th)]


def test_a_second_diagnose_reuses_the_maps_without_running_umap(spaces, tmp_path, monkeypatch):
    first = umap_module.umap_maps(spaces, Thresholds(), tmp_path)

    def umap_must_not_run(*args):
        raise AssertionError("UMAP ran although its inputs were cached")
    monkeypatch.setattr(umap_module, "_embed", umap_must_not_run)
    again = umap_module.umap_maps(spaces, Thresholds(), tmp_path)
    assert again.equals(first) and set(first.space) == {"backbone", "fold0"}


def test_changed_inputs_or_settings_compute_a_new_map(spaces, tmp_path):
    umap_module.umap_maps(spaces[:1], Thresholds(), tmp_path)
    umap_module.umap_maps(spaces[:1], Thresholds(umap_min_dist=0.5), tmp_path)
    umap_module.umap_maps(spaces[1:], Thresholds(), tmp_path)
    assert len(list((tmp_path / "umap").glob("*.npy"))) == 3
