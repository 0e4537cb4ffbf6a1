"""A runs folder with one run of every kind, shared by the dashboard tests (built once per test session)."""
from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.store import run_store
from core.testing.synthetic import make_synthetic_run
from dashboard import navigation

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "dashboard"
if str(DASHBOARD) not in sys.path:  # the dashboard's modules import each other by name, as under `streamlit run`
    sys.path.insert(0, str(DASHBOARD))
HOME = str(DASHBOARD / "Home.py")
# The pages about one run besides Home (Experiments has its tests in tests/experiments), by title: file.
PAGES = {title: file for title, file in navigation.PAGES.items() if title not in (navigation.HOME, "Experiments")}
COMPLETE, OTHER, RUNNING, FAILED, DAMAGED = ("20250103-120000-complete", "20250102-120000-other",
                                             "20250104-120000-running", "20250101-120000-failed",
                                             "20250105-120000-damaged")
SPARSE = "20241231-120000-sparse"
SPARSE_IMAGE_SIZE = 160


def build_runs(runs_dir: Path) -> Path:
    """Newest first: damaged, running, complete (with diagnostics), other (3 classes), failed, sparse (no test
    split, 160 px input, and with this seed class_e is in only one fold: absent from the others' validation
    parts and from that fold's train part)."""
    start = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)
    make_synthetic_run(runs_dir, COMPLETE, 240, 4, 3, 32, seed=1, created=start + timedelta(days=2))
    make_synthetic_run(runs_dir, OTHER, 160, 4, 3, 16, seed=2, train_mode="head", created=start + timedelta(days=1),
                       diagnostics=False)
    make_synthetic_run(runs_dir, RUNNING, 120, 3, 4, 16, seed=3, status="running", created=start + timedelta(days=3))
    make_synthetic_run(runs_dir, FAILED, 90, 3, 3, 16, seed=4, status="failed", created=start)
    sparse = make_synthetic_run(runs_dir, SPARSE, 60, 6, 3, 16, test_size=0, seed=10,
                                created=start - timedelta(days=1))
    config = run_store.read_json(sparse / run_store.RUN_JSON)["config"]
    run_store.update_run_json(sparse, config={**config, "image_size": SPARSE_IMAGE_SIZE})
    (runs_dir / DAMAGED).mkdir()
    (runs_dir / DAMAGED / "run.json").write_text("{ not json")
    return runs_dir


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_runs(tmp_path_factory.mktemp("dashboard") / "runs")


@pytest.fixture()
def dashboard_env(runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the dashboard at the fixture runs and keep thumbnails out of the user's cache."""
    return point_dashboard_at(runs_dir, tmp_path / "cache", monkeypatch)


def point_dashboard_at(runs_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dashboard reads `runs_dir` and keeps its caches (thumbnails, maps) in `cache`, not the user's."""
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("FOLDLENS_CACHE", str(cache))
    return runs_dir


def open_page(page: str | None = None, timeout: float = 60, **params: str):
    """Run Home (or one of PAGES) in AppTest with the given URL query parameters."""
    from streamlit.testing.v1 import AppTest
    app = AppTest.from_file(HOME, default_timeout=timeout)
    for key, value in params.items():
        app.query_params[key] = value
    if page:
        app.switch_page(PAGES[page])
    return app.run()


def share_link_url(app) -> str:
    """The address the sidebar's "Link to this view" points at."""
    [link] = [m.value for m in app.sidebar.markdown if "Link to this view" in m.value]
    return re.fullmatch(r":material/link: \[Link to this view\]\((.*)\)", link).group(1)
