"""Every page in a real browser: `streamlit run` on a free loopback port, headless Chromium via Playwright.

Fails on any Streamlit exception box; screenshots go to $FOLDLENS_SCREENSHOTS (or a temporary folder).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard_fixtures import COMPLETE, HOME, REPO, RUNNING, runs_dir  # noqa: F401  (session fixture)

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):  # CI installs Chromium (.ci/run): missing there is a failure, not a skip
        raise RuntimeError(f"{CHROMIUM} is missing; .ci/run should have installed Debian's chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
VIEWS = [("Home", ""), ("Overfitting", "Overfitting"), ("Classes", "Classes?true=class_c&pred=class_b"),
         ("Embeddings", "Embeddings"), ("Misclassified", "Misclassified"), ("Data", "Data?tab=duplicates"),
         ("LabelIssues", "Data?tab=label_issues"), ("Compare", "Compare"), ("Review", "Review?review=3d,5r1,9k"),
         ("Running", f"?run={RUNNING}"), ("BadRun", "Classes?run=../../etc")]


# Done: no "running" indicator, no loading skeletons, and every chart container has drawn its plot.
DRAWN = """() => !document.querySelector('[data-testid="stStatusWidget"]')
  && !document.querySelector('[data-testid="stSkeleton"]')
  && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector('.main-svg'))
  && [...document.images].every(i => i.complete)"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    port = _free_port()
    env = {**os.environ, "FOLDLENS_CACHE": str(tmp_path_factory.mktemp("cache"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", HOME, "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--", "--runs-dir", str(runs_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.25)
    else:
        process.kill()
        pytest.fail(f"streamlit did not start: {process.stdout.read().decode()[-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def test_every_page_renders(server: str, browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    shots = Path(os.environ.get("FOLDLENS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    failures = []
    for name, path in VIEWS:
        target = f"{server}/{path}"
        if "run=" not in target:
            target += ("&" if "?" in target else "?") + f"run={COMPLETE}"
        page.goto(target)
        page.wait_for_selector('[data-testid="stAppViewContainer"] h1', timeout=60000)  # the page's script ran
        page.wait_for_load_state("networkidle")  # lazily loaded element code (charts, images, tables)
        page.wait_for_function(DRAWN, timeout=60000)
        page.wait_for_timeout(1500)  # last chart and image paints
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        boxes = page.locator('[data-testid="stException"]')
        if boxes.count():
            failures.append(f"{name}: {boxes.first.inner_text()[:500]}")
    print(f"screenshots in {shots}")
    assert not failures, failures


def test_the_home_page_downloads_the_html_report(server: str, browser, tmp_path: Path) -> None:
    page = browser.new_page(accept_downloads=True)
    page.goto(f"{server}/?run={COMPLETE}")
    button = page.get_by_role("button", name="Download report")
    button.wait_for(timeout=60000)
    with page.expect_download(timeout=120000) as download:
        button.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    html = saved.read_text()
    assert saved.name == f"report-{COMPLETE}.html" and html.startswith("<!DOCTYPE html>")
    assert f"{server}/Classes?run={COMPLETE}" in html  # sections link back to this dashboard
