"""The review loop in a real browser: add images from three pages (a gallery, the Embeddings selection, the Data
label-issue table), open the Review page, download the cleaned manifest, and check the run folder is untouched.

Screenshots go to $FOLDLENS_SCREENSHOTS (or a temporary folder), as in test_browser.py.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
from browser_fixtures import browser, runs_dir, screenshots, server  # noqa: F401  (fixtures; skip without chromium)
from dashboard_fixtures import COMPLETE

from bench.browser_harness import wait_until_drawn
from core.store import run_store


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def settle(page) -> None:
    page.wait_for_load_state("networkidle")
    wait_until_drawn(page, timeout_ms=120000)
    page.wait_for_timeout(800)


def go_to(page, name: str) -> None:
    """Navigate with the sidebar (same session, so the review list comes along)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=name, exact=True).click()
    page.wait_for_selector(f'h1:has-text("{name}")', timeout=120000)
    settle(page)


def add_from_popover(page, popover_text: str, button_text: str, action: str) -> None:
    page.get_by_role("button", name=popover_text).first.click()
    page.get_by_text(action, exact=True).first.click()
    page.get_by_role("button", name=button_text).first.click()
    page.get_by_text("on the review list").first.wait_for(timeout=30000)
    page.keyboard.press("Escape")
    settle(page)


def select_middle(page, shots: Path) -> None:
    """Box-select the middle of the embedding map (the selection event is the lasso's; a lasso drawn with
    synthetic mouse events is not picked up by Plotly, a box is). A drag on a busy machine can land before
    Plotly listens, so it is tried a few times."""
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.scroll_into_view_if_needed()
    for _ in range(3):
        chart.hover()
        page.locator('.modebar-btn[data-title="Box Select"]').first.click(force=True)
        area = page.locator(".nsewdrag").first.bounding_box()
        cx, cy = area["x"] + area["width"] / 2, area["y"] + area["height"] / 2
        page.mouse.move(cx - area["width"] / 5, cy - area["height"] / 5, steps=4)
        page.mouse.down()
        page.mouse.move(cx + area["width"] / 5, cy + area["height"] / 5, steps=12)
        page.mouse.up()
        try:
            page.wait_for_selector('h3:has-text("selected images")', timeout=30000)
            break
        except Exception:  # noqa: BLE001  (playwright's TimeoutError): try the drag again
            page.screenshot(path=str(shots / "Embeddings-no-selection.png"), full_page=True)
    page.wait_for_selector('h3:has-text("selected images")', timeout=1000)
    settle(page)


def test_review_loop_in_the_browser(server: str, browser, runs_dir: Path,  # noqa: F811
                                    screenshots: Path) -> None:  # noqa: F811
    run = runs_dir / COMPLETE
    before = file_hashes(run)
    review_loop(server, browser, run, screenshots)
    assert file_hashes(run) == before  # the dashboard never writes into a run


def review_loop(server: str, browser, run: Path, shots: Path) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
    page.goto(f"{server}/Misclassified?run={COMPLETE}")
    page.wait_for_selector('h1:has-text("Misclassified")', timeout=120000)
    settle(page)
    add_from_popover(page, "Add to review list", "Add all", "drop")  # 1. a gallery: every mistake, drop

    go_to(page, "Embeddings")                                          # 2. a map selection: keep
    select_middle(page, shots)
    page.get_by_role("button", name="Add to review list").first.click()
    page.get_by_text("keep (reviewed, fine)").first.click()
    page.get_by_role("button", name="Add all").first.click()
    page.get_by_text("on the review list").first.wait_for(timeout=30000)
    page.keyboard.press("Escape")
    page.screenshot(path=str(shots / "Embeddings-selection.png"), full_page=True)

    go_to(page, "Data")                                                # 3. the label-issue table: suggested class
    page.get_by_role("tab", name="Label issues").click()
    settle(page)
    page.get_by_role("button", name="Add to review list").first.click()
    page.get_by_text("relabel to the suggested class").first.click()
    page.get_by_role("button", name="Add the").first.click()
    page.get_by_text("on the review list").first.wait_for(timeout=30000)
    page.keyboard.press("Escape")

    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Review list").click()
    page.wait_for_selector('h1:has-text("Review")', timeout=120000)
    settle(page)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shots / "Review.png"), full_page=True)
    assert not page.locator('[data-testid="stException"]').count()
    assert "review=" in page.url

    with page.expect_download() as download:
        page.get_by_role("button", name="Download cleaned.csv").click()
    cleaned = pd.read_csv(io.BytesIO(Path(download.value.path()).read_bytes()), dtype=str, keep_default_na=False)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download review.json").click()
    review = json.loads(Path(download.value.path()).read_text())
    samples = run_store.read_table(run, "samples")
    counts = review["counts"]
    assert review["source_run"] == COMPLETE and counts["drop"] > 0 and counts["keep"] > 0 and counts["relabel"] > 0
    assert len(cleaned) == len(samples) - counts["drop"]
    root = Path(run_store.read_json(run / "run.json")["dataset"]["root"])
    by_id = {c["sample_id"]: c for c in review["changes"]}
    expected = samples[~samples.sample_id.isin([i for i, c in by_id.items() if c["action"] == "drop"])]
    assert cleaned.path.to_list() == [(root / p).as_posix() for p in expected.path]
    relabelled = {i: c["new_label"] for i, c in by_id.items() if c["action"] == "relabel"}
    assert cleaned.label.to_list() == [relabelled.get(i, label) for i, label in zip(expected.sample_id, expected.label)]
