"""Fixtures of the real-browser tests: headless Chromium (skipped where it is missing, except in CI), the
dashboard served on loopback over the session's synthetic runs, and a folder for screenshots."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from dashboard_fixtures import runs_dir  # noqa: F401  (session fixture)

from bench.browser_harness import CHROMIUM, CHROMIUM_ARGS, serve_dashboard

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):  # CI installs Chromium (.ci/run): missing there is a failure, not a skip
        raise RuntimeError(f"{CHROMIUM} is missing; .ci/run should have installed Debian's chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    with serve_dashboard(runs_dir, tmp_path_factory.mktemp("cache")) as url:
        yield url


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shots = Path(os.environ.get("FOLDLENS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    return shots
