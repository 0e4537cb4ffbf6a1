"""Many people on one dashboard: concurrent headless-Chromium viewers opening the pages of a big run.

    .venv/bin/python bench/bench_viewers.py [--viewers 20] [--minutes 5] [--images 50000] [--keep DIR]

Builds (or reuses, with --keep) a synthetic run of N images with its diagnostics, serves the dashboard on
loopback, then:
  single   one viewer opens every page of the menu twice in turn, alone: its page times are the baseline;
  many     --viewers viewers, each its own browser profile, open the pages one after another (each starting at
           a different page) for --minutes, all on the one server.
A page time is the seconds from navigating a new tab until the page's charts and images are drawn (the
"drawn" of bench/browser_harness.py). An error is a page that did not draw within 60 s or showed a Streamlit
exception. The server's resident memory is read after the 20th and the 200th page load of the many-viewer
phase (the single phase runs first, so both are after every page has been read once) and at the end.
Targets: no errors; p95 many <= 2 x p95 single; memory after 200 loads within 300 MB of after 20.
All viewers run in one Chromium, on the same machine as the server: on a small machine the browsers' own
work shares the CPU with the server, and the page times measure both.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from browser_harness import CHROMIUM, CHROMIUM_ARGS, DRAWN, serve_dashboard  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from core.testing.synthetic import make_synthetic_run  # noqa: E402
from dashboard import navigation  # noqa: E402

VIEWPORT = {"width": 1400, "height": 1600}
PAGE_TIMEOUT_MS = 60_000
MEMORY_AT = (20, 200)  # page loads of the many-viewer phase after which the server's memory is read


def build(runs_dir: Path, n_images: int) -> str:
    """A finished 12-class, 5-fold fine-tune run of `n_images` with every diagnostic, generated once."""
    run_id = f"20250101-000000-viewers{n_images}"
    if not (runs_dir / run_id / "diagnostics.json").exists():
        started = time.perf_counter()
        make_synthetic_run(runs_dir, run_id, n_images, n_classes=12, n_folds=5, dim=256)
        print(f"generated {n_images} images with their diagnostics in {time.perf_counter() - started:.0f} s")
    return run_id


def page_urls(server: str, run_id: str) -> list[str]:
    return [f"{server}/{'' if title == navigation.HOME else title}?run={run_id}" for title in navigation.PAGES]


def server_rss_mb() -> float:
    """Resident memory of the streamlit server this process started (its child)."""
    for child in psutil.Process().children(recursive=True):
        try:
            if "streamlit" in " ".join(child.cmdline()):
                return child.memory_info().rss / 2**20
        except psutil.Error:  # a browser process that has just exited
            continue
    raise RuntimeError("the streamlit server is not running")


async def open_page(context, url: str) -> tuple[float, str | None]:
    """(seconds until drawn, error or None) for `url` in a new tab of `context`."""
    page = await context.new_page()
    started = time.perf_counter()
    try:
        await page.goto(url, timeout=PAGE_TIMEOUT_MS)
        await page.wait_for_selector('[data-testid="stAppViewContainer"] h1', timeout=PAGE_TIMEOUT_MS)
        await page.wait_for_function(DRAWN, timeout=PAGE_TIMEOUT_MS, polling=100)
        elapsed = time.perf_counter() - started
        exceptions = await page.locator('[data-testid="stException"]').count()
        return elapsed, f"{url}: {exceptions} exception(s) shown" if exceptions else None
    except Exception as error:  # noqa: BLE001 - any failure to draw is an error to count, not a crash
        return time.perf_counter() - started, f"{url}: {type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        await page.close()


class Tally:
    """Page times and errors of the many-viewer phase, and the server's memory at the load counts asked for."""

    def __init__(self):
        self.times: list[float] = []
        self.errors: list[str] = []
        self.memory: dict[int, float] = {}

    def add(self, seconds: float, error: str | None) -> None:
        self.times.append(seconds)
        if error:
            self.errors.append(error)
        if len(self.times) in MEMORY_AT:
            self.memory[len(self.times)] = server_rss_mb()


async def viewer(browser, urls: list[str], first: int, deadline: float, tally: Tally) -> None:
    context = await browser.new_context(viewport=VIEWPORT)
    k = first
    while time.monotonic() < deadline:
        tally.add(*await open_page(context, urls[k % len(urls)]))
        k += 1
    await context.close()


def p95(times: list[float]) -> float:
    return float(np.percentile(times, 95))


async def measure(server: str, run_id: str, viewers: int, minutes: float) -> None:
    urls = page_urls(server, run_id)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        alone = await browser.new_context(viewport=VIEWPORT)
        await open_page(alone, urls[0])  # the server's and the browser's first start, not a page time
        single = [await open_page(alone, url) for url in urls * 2]
        await alone.close()
        single_times = [seconds for seconds, _ in single]
        print(f"single viewer: {len(single)} page loads, median {np.median(single_times):.2f} s, "
              f"p95 {p95(single_times):.2f} s, errors {sum(1 for _, e in single if e)}; "
              f"server memory {server_rss_mb():.0f} MB")
        tally = Tally()
        started = time.monotonic()
        deadline = started + 60 * minutes
        await asyncio.gather(*(viewer(browser, urls, k, deadline, tally) for k in range(viewers)))
        elapsed = time.monotonic() - started
        await browser.close()
    times = tally.times
    print(f"{viewers} viewers for {elapsed / 60:.1f} min: {len(times)} page loads "
          f"({len(times) / elapsed * 60:.0f}/min), median {np.median(times):.2f} s, p95 {p95(times):.2f} s "
          f"= {p95(times) / p95(single_times):.1f} x single (target <= 2), errors {len(tally.errors)} (target 0)")
    for error in tally.errors[:5]:
        print(f"  {error}")
    memory = ", ".join(f"after {n} loads {mb:.0f} MB" for n, mb in sorted(tally.memory.items()))
    print(f"server memory: {memory}, at the end {server_rss_mb():.0f} MB")
    if len(tally.memory) == 2:
        grew = tally.memory[MEMORY_AT[1]] - tally.memory[MEMORY_AT[0]]
        print(f"  grew {grew:.0f} MB from load {MEMORY_AT[0]} to {MEMORY_AT[1]} (target <= 300)")
    else:
        print(f"  fewer than {MEMORY_AT[1]} page loads: run longer to read the memory after {MEMORY_AT[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="runs folder to generate into and reuse")
    args = parser.parse_args()
    runs_dir = args.keep or Path(tempfile.mkdtemp()) / "runs"
    run_id = build(runs_dir, args.images)
    print(f"{args.images} images, {len(navigation.PAGES)} pages, {psutil.cpu_count()} CPUs")
    with serve_dashboard(runs_dir, runs_dir.parent / "cache") as server:
        asyncio.run(measure(server, run_id, args.viewers, args.minutes))


if __name__ == "__main__":
    main()
