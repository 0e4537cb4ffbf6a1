"""The Overfitting page's Dynamics tab: the cartography map of a run that kept its training dynamics."""
import pytest
from dashboard_fixtures import open_page

from core.testing.synthetic import make_synthetic_run

DYNAMIC, OLDER = "20250106-120000-dynamics", "20250105-120000-older"


@pytest.fixture(scope="module")
def dynamics_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("dynamics") / "runs"
    make_synthetic_run(runs, DYNAMIC, 160, 3, 3, 16, seed=6, train_mode="head", dynamics=True)
    make_synthetic_run(runs, OLDER, 90, 3, 3, 16, seed=7, train_mode="head")   # trained before dynamics were kept
    return runs


@pytest.fixture
def env(dynamics_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(dynamics_runs))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))


def test_the_dynamics_tab_maps_every_trained_image_and_names_the_regions(env):
    app = open_page("Overfitting", run=DYNAMIC, tab="dynamics")
    assert not app.exception
    [caption] = [c.value for c in app.caption if "Each point is an image the folds trained on" in c.value]
    assert "easy" in caption and "hard to learn" in caption and "threshold samples" in caption
    app = open_page("Overfitting", run=DYNAMIC, tab="dynamics", **{"class": "class_b"})
    assert not app.exception and any(w.key == "class" and w.value == "class_b" for w in app.selectbox)


def test_a_run_without_kept_dynamics_says_why_the_map_is_missing(env):
    app = open_page("Overfitting", run=OLDER, tab="dynamics")
    assert not app.exception
    assert any("train again" in i.body for i in app.info)
