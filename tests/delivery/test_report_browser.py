"""The HTML report in a real browser, opened from disk with the network blocked: every chart draws, no request
leaves the page, no script error. Screenshots go to $FOLDLENS_SCREENSHOTS (or a temporary folder)."""
from __future__ import annotations

from pathlib import Path

from browser_fixtures import browser, runs_dir, screenshots  # noqa: F401  (fixtures; skip without chromium)
from dashboard_fixtures import COMPLETE

from core.delivery.report import build_report


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


def test_the_report_renders_offline_without_requests(runs_dir, browser, tmp_path,  # noqa: F811
                                                     screenshots: Path):  # noqa: F811
    report = tmp_path / "report.html"
    report.write_text(build_report(runs_dir / COMPLETE, "http://dash.example:8501", cache_dir=str(tmp_path / "c")))
    left, errors, counts = open_offline(browser, report, screenshots, "synthetic")
    print(f"screenshots in {screenshots}: {counts}")
    assert left == [] and errors == []
    # headline folds, OOF + test confusion, curves, class gaps, counts, scores against training images,
    # calibration (OOF; test before and after temperature scaling), map
    assert counts["charts"] == counts["drawn"] == 10
    assert counts["images"] > 20 and counts["broken"] == 0
    assert counts["points"] == 240  # every image of the run on the map (fewer than the sampling limit)
