"""Every page in a real browser: `streamlit run` on a free loopback port, headless Chromium via Playwright.

Fails on any Streamlit exception box; screenshots go to $FOLDLENS_SCREENSHOTS (or a temporary folder).
"""
from __future__ import annotations

import time
from pathlib import Path

from browser_fixtures import browser, runs_dir, screenshots, server  # noqa: F401  (fixtures; skip without chromium)
from dashboard_fixtures import COMPLETE, RUNNING

from bench.browser_harness import wait_until_drawn
from dashboard import navigation

VIEWS = [("Home", ""), ("Overfitting", "Overfitting"), ("Classes", "Classes?true=class_c&pred=class_b"),
         ("Embeddings", "Embeddings"), ("Misclassified", "Misclassified"), ("Data", "Data?tab=duplicates"),
         ("LabelIssues", "Data?tab=label_issues"), ("Compare", "Compare"), ("Review", "Review?review=3d,5r1,9k"),
         ("Running", f"?run={RUNNING}"), ("BadRun", "Classes?run=../../etc"), ("Slices", "Slices"),
         ("Properties", "Data?tab=properties&by=outcome"), ("Experiments", "Experiments")]


def test_every_page_renders(server: str, browser, screenshots: Path) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    failures = []
    for name, path in VIEWS:
        target = f"{server}/{path}"
        if "run=" not in target:
            target += ("&" if "?" in target else "?") + f"run={COMPLETE}"
        page.goto(target)
        page.wait_for_load_state("networkidle")  # lazily loaded element code (charts, images, tables)
        wait_until_drawn(page)
        page.wait_for_timeout(1500)  # last chart and image paints
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
        boxes = page.locator('[data-testid="stException"]')
        if boxes.count():
            failures.append(f"{name}: {boxes.first.inner_text()[:500]}")
    print(f"screenshots in {screenshots}")
    assert not failures, failures


def test_the_home_page_downloads_the_html_report(server: str, browser, tmp_path: Path) -> None:  # noqa: F811
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


def test_a_sidebar_link_keeps_the_run_being_looked_at(server: str, browser) -> None:  # noqa: F811
    """Streamlit's page links drop the URL's parameters; the next page must still show the same run."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{server}/?run={RUNNING}")
    wait_until_drawn(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Classes", exact=True).click()
    page.wait_for_selector('h1:has-text("Classes")', timeout=60000)
    wait_until_drawn(page)
    page.wait_for_function(f"() => location.search.includes('run={RUNNING}')", timeout=30000)
    assert "Pick a run in the sidebar" not in page.inner_text("body")


def drawn_without_exception(page, what: str) -> None:
    page.wait_for_load_state("networkidle")   # the rerun's images and element code
    wait_until_drawn(page)
    boxes = page.locator('[data-testid="stException"]')
    assert not boxes.count(), f"{what}: {boxes.first.inner_text()[:500]}"


def pick(page, selectbox, option: str) -> None:
    selectbox.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_every_page_opened_by_its_bare_url_survives_its_controls(server: str, browser,  # noqa: F811
                                                                 screenshots: Path) -> None:  # noqa: F811
    """A typed or bookmarked link has no `?run=`: the newest run shows; picking another run, then changing one of
    the page's own controls must work (the first control change used to fail), and so must a reload."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    timings = {}
    for title in navigation.PAGES:
        started = time.perf_counter()
        page.goto(f"{server}/{'' if title == navigation.HOME else title}")
        drawn_without_exception(page, f"{title} opened bare")
        if title != "Experiments":   # Experiments is not about one run (and the fixture runs have no experiments)
            pick(page, page.get_by_role("combobox", name="Run"), COMPLETE)
            page.wait_for_function(f"() => location.search.includes('run={COMPLETE}')", timeout=30000)
            drawn_without_exception(page, f"{title} after picking a run")
            own = page.locator('[data-testid="stMain"] [data-testid="stRadio"] label:not(:has(input:checked))')
            if own.count():   # one of the page's own controls: a radio option not chosen yet
                own.first.click()
                drawn_without_exception(page, f"{title} after changing a control")
            if title == "Classes":   # the link the issue was reported with: a reload keeps the run picked
                page.reload()
                drawn_without_exception(page, f"{title} reloaded")
                assert page.get_by_role("combobox", name="Run").input_value() == COMPLETE
        page.screenshot(path=str(screenshots / f"bare-{title}.png"))
        timings[title] = round(time.perf_counter() - started, 1)
    print(f"seconds per page: {timings}; screenshots in {screenshots}")
