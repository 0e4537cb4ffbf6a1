"""What a person waits for: every dashboard page of a big synthetic run in headless Chromium.

    .venv/bin/python bench/bench_browser.py [--samples 100000] [--keep DIR]

Serves the dashboard on loopback, opens every page and prints the seconds from navigation until the page's
charts and images are drawn: "first" is the page's first visit since the server started (caches cold except
what earlier pages loaded), "cached" the best of two later visits in new browser sessions. Then it lassoes
points on the Embeddings map and prints the seconds until the selection's gallery is drawn.
Targets on the 2-core development machine: first <= 4 s, cached <= 2 s, selection <= 1 s.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from playwright.sync_api import sync_playwright  # noqa: E402

from bench_dashboard import build  # noqa: E402
from browser_harness import CHROMIUM, CHROMIUM_ARGS, serve_dashboard, wait_until_drawn  # noqa: E402

SELECTION_SIDE = 0.2  # of the map's width and height: about a thousand points of a 100,000-point map


def page_paths() -> list[tuple[str, str]]:
    """(name, URL path) of Home and every page file, as Streamlit names them (the file name after NN_)."""
    pages = sorted((REPO / "dashboard" / "pages").glob("*.py"))
    return [("Home", "")] + [(p.stem.split("_", 1)[1], p.stem.split("_", 1)[1]) for p in pages]


def visit(browser, url: str) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    wait_until_drawn(page)
    elapsed = time.perf_counter() - started
    context.close()
    return elapsed


def select_on_map(browser, url: str, side: float) -> tuple[float, str]:
    """Lasso a square (`side` of the plot's width and height) in the middle of the Embeddings map, as a person
    drags it; seconds from releasing the mouse until the selection's gallery is drawn."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.goto(url)
    wait_until_drawn(page)
    plot = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first.bounding_box()
    left, top = plot["x"] + plot["width"] * (0.5 - side / 2), plot["y"] + plot["height"] * (0.5 - side / 2)
    right, bottom = left + plot["width"] * side, top + plot["height"] * side
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in ((right, top), (right, bottom), (left, bottom), (left, top)):
        page.mouse.move(x, y, steps=6)
    started = time.perf_counter()
    page.mouse.up()
    page.wait_for_selector("text=selected images", timeout=60000)
    wait_until_drawn(page)
    elapsed = time.perf_counter() - started
    heading = page.locator("h3:has-text('selected images')").first.inner_text()
    context.close()
    return elapsed, heading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="runs folder to generate into and reuse")
    args = parser.parse_args()
    runs_dir = args.keep or Path(tempfile.mkdtemp()) / "runs"
    run_id = build(runs_dir, args.samples)
    with serve_dashboard(runs_dir, runs_dir.parent / "cache") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        print(f"{args.samples} samples; seconds from navigation until drawn   targets: first <= 4, cached <= 2")
        print(f"{'page':<14} {'first (s)':>10} {'cached (s)':>11}")
        for name, path in page_paths():
            url = f"{server}/{path}?run={run_id}"
            first = visit(browser, url)
            cached = min(visit(browser, url) for _ in range(2))
            flag = "" if first <= 4 and cached <= 2 else "   <- over target"
            print(f"{name:<14} {first:>10.2f} {cached:>11.2f}{flag}")
        seconds, heading = select_on_map(browser, f"{server}/Embeddings?run={run_id}", SELECTION_SIDE)
        print(f"lasso on the Embeddings map -> gallery drawn: {seconds:.2f} s ({heading}); target <= 1")
        browser.close()


if __name__ == "__main__":
    main()
