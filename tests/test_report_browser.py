"""The HTML report in a real browser, opened from disk with the network blocked: every chart draws, no request
leaves the page, no script error. Screenshots go to $FOLDLENS_SCREENSHOTS (or a temporary folder)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.report import build_report
from dashboard_fixtures import COMPLETE, runs_dir  # noqa: F401  (session fixture)

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing; .ci/run should have installed Debian's chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def open_offline(browser, report: Path, shots: Path, name: str) -> tuple[list[str], list[str], dict]:
    """Open the file with every non-file request aborted; (requests that tried to leave, script errors, counts)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    page = context.new_page()
    left, errors = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(("file://", "data:")):
            request_route.continue_()
        else:
            left.append(url)
            request_route.abort()
    page.route("**/*", route)
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(1000)  # plotly draws after the load event
    counts = page.evaluate("""() => ({
        charts: document.querySelectorAll('.plotly-graph-div').length,
        drawn: [...document.querySelectorAll('.plotly-graph-div')]
            .filter(d => d.querySelector('.cartesianlayer .trace, .cartesianlayer .hm')).length,
        images: document.images.length,
        broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
        points: document.querySelectorAll('#map-chart .scatterlayer .point').length})""")
    page.screenshot(path=str(shots / f"report-{name}.png"), full_page=True)
    context.close()
    return left, errors, counts


def test_the_report_renders_offline_without_requests(runs_dir, tmp_path,  # noqa: F811
                                                     tmp_path_factory: pytest.TempPathFactory):
    shots = Path(os.environ.get("FOLDLENS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    report = tmp_path / "report.html"
    report.write_text(build_report(runs_dir / COMPLETE, "http://dash.example:8501", cache_dir=str(tmp_path / "c")))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            left, errors, counts = open_offline(browser, report, shots, "synthetic")
        finally:
            browser.close()
    print(f"screenshots in {shots}: {counts}")
    assert left == [] and errors == []
    # headline folds, OOF + test confusion, curves, class gaps, counts, calibration, map
    assert counts["charts"] == counts["drawn"] == 8
    assert counts["images"] > 20 and counts["broken"] == 0
    assert counts["points"] == 240  # every image of the run on the map (fewer than the sampling limit)
