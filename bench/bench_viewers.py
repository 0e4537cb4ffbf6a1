"""Many people on one dashboard: concurrent headless-Chromium viewers reading the pages of a big run.

    .venv/bin/python bench/bench_viewers.py [--images 50000] [--viewers 20] [--loads 200] [--think 30] [--keep DIR]
                                            [--clients browser|protocol] [--browsers 2]

Builds (or reuses, with --keep) a synthetic run of --images images with its diagnostics, serves the dashboard
on loopback with `streamlit run` (one server, one Python process), then:
  single   one viewer opens every page of the menu once (not timed: the pages' first build of the views shared by
           all sessions), then twice in turn, alone (one second between pages): its page times are the
           baseline, measured in the same run, on the same server, just before the many;
  many     --viewers viewers, each its own browser profile or protocol client, read the pages of the menu in a
           round (viewer k starts at page k, so every page is being read at once). A viewer reads each page for a
           think time before opening the next: a stakeholder sent a link looks at a page for some seconds (drawn
           uniformly between half and one and a half times --think, seeded). Viewers arrive spread over the
           first think time, as people opening a shared link do, not all in the same millisecond. The phase
           ends after --loads page loads (or after --minutes, whichever comes first).
Viewers are headless Chromium browsers (`--clients browser`, the default) or protocol clients (`--clients
protocol`, bench/protocol_viewer.py): a websocket client each, asking for the page as Streamlit's frontend does
and reading the server's messages, with no drawing. With protocol clients, `--browsers N` makes N of the many
viewers real browsers alongside them (their times are printed apart too).
A browser's page time is the seconds from opening a new tab on the page's URL until its charts and images are
drawn (the "drawn" of bench/browser_harness.py): the server's work and the browser's drawing. An error is a page
that did not draw within 60 s or that shows an exception or an error box. A protocol client's page time is the
seconds from its request to the server's `script_finished`: the server's work only (the page's images are then
fetched too, not timed). An error is an exception element or an error box among the page's elements, a page
with no element, an image that did not come, or no `script_finished` within 60 s.
The server's resident memory (psutil) is read after the 20th and after the last page load of the many phase;
the server's CPU seconds per page load are printed for each phase, so what dominates a slow page (the server or
the browsers) can be read off.
Targets: no errors; p95 many <= 2 x p95 single; memory after --loads loads within 300 MB of after 20.
All viewers run on the same machine as the server: on a small machine 20 browsers' drawing shares the CPU with
the server, and their page times measure both (a real viewer's browser runs on the viewer's own machine); 20
protocol clients cost little CPU, so their page times measure the server.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncContextManager, AsyncIterator, Awaitable, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from browser_harness import CHROMIUM, CHROMIUM_ARGS, DRAWN, serve_dashboard  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402
from protocol_viewer import PageLoad  # noqa: E402
from protocol_viewer import open_page as open_by_protocol  # noqa: E402

from core.testing.synthetic import make_synthetic_run  # noqa: E402
from dashboard import navigation  # noqa: E402

VIEWPORT = {"width": 1400, "height": 1600}
PAGE_TIMEOUT_MS = 60_000
FIRST_MEMORY_AT = 20    # page loads of the many phase after which the server's memory is read first
ERRORS_SHOWN = '[data-testid="stException"], [data-testid="stAlertContentError"]'


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


def server_process() -> psutil.Process:
    """The streamlit server this process started (its child)."""
    for child in psutil.Process().children(recursive=True):
        try:
            if "streamlit" in " ".join(child.cmdline()):
                return child
        except psutil.Error:  # a browser process that has just exited
            continue
    raise RuntimeError("the streamlit server is not running")


def rss_mb(server: psutil.Process) -> float:
    return server.memory_info().rss / 2**20


def cpu_s(server: psutil.Process) -> float:
    times = server.cpu_times()
    return times.user + times.system


Opener = Callable[[str], Awaitable[tuple[float, str | None]]]   # url -> (page seconds, error or None)


async def open_page(context, url: str) -> tuple[float, str | None]:
    """(seconds until drawn, error or None) for `url` in a new tab of `context`."""
    page = await context.new_page()
    started = time.perf_counter()
    try:
        await page.goto(url, timeout=PAGE_TIMEOUT_MS)
        await page.wait_for_selector('[data-testid="stAppViewContainer"] h1', timeout=PAGE_TIMEOUT_MS)
        await page.wait_for_function(DRAWN, timeout=PAGE_TIMEOUT_MS, polling=100)
        elapsed = time.perf_counter() - started
        shown = page.locator(ERRORS_SHOWN)
        if await shown.count():
            return elapsed, f"{url}: {(await shown.first.inner_text())[:200]!r}"
        return elapsed, None
    except Exception as error:  # noqa: BLE001 - any failure to draw is an error to count, not a crash
        return time.perf_counter() - started, f"{url}: {type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        await page.close()


@dataclass
class Phase:
    """Page times and errors of the many-viewer phase, and the server's memory after the load counts asked for."""
    server: psutil.Process
    loads: int
    times: list[float] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)   # browser or protocol, per load
    errors: list[str] = field(default_factory=list)
    load_errors: list[str | None] = field(default_factory=list)   # per load
    memory: dict[int, float] = field(default_factory=dict)
    started: int = 0   # page loads begun: the phase begins no more than `loads`

    def take(self) -> bool:
        """Whether a viewer may begin another page load."""
        self.started += 1
        return self.started <= self.loads

    def add(self, url: str, kind: str, seconds: float, error: str | None) -> None:
        self.times.append(seconds)
        self.pages.append(url)
        self.kinds.append(kind)
        self.load_errors.append(error)
        if error:
            self.errors.append(error)
        if len(self.times) in (FIRST_MEMORY_AT, self.loads):
            self.memory[len(self.times)] = rss_mb(self.server)


@asynccontextmanager
async def browser_viewer(browser) -> AsyncIterator[Opener]:
    """A viewer with its own browser profile; each page in a new tab."""
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        yield lambda url: open_page(context, url)
    finally:
        await context.close()


@asynccontextmanager
async def protocol_viewer(received: list[PageLoad]) -> AsyncIterator[Opener]:
    """A viewer that speaks Streamlit's protocol; each page a new session, as a new tab is. What each load
    received goes to `received`."""
    async def opener(url: str) -> tuple[float, str | None]:
        load = await open_by_protocol(url, PAGE_TIMEOUT_MS / 1000)
        received.append(load)
        return load.seconds, load.error
    yield opener


async def viewer(kind: str, opened: AsyncContextManager[Opener], urls: list[str], first: int, arrive_s: float,
                 think_s: float, deadline: float, phase: Phase, rng: random.Random) -> None:
    await asyncio.sleep(arrive_s)
    async with opened as open_url:
        k = first
        while time.monotonic() < deadline and phase.take():
            url = urls[k % len(urls)]
            phase.add(url, kind, *await open_url(url))
            k += 1
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)


def p95(times: list[float]) -> float:
    return float(np.percentile(times, 95))


def by_page(urls: list[str], pages: list[str], times: list[float]) -> str:
    """Median seconds of each page, in menu order."""
    return ", ".join(f"{title} {np.median([t for page, t in zip(pages, times) if page == url]):.1f}"
                     for title, url in zip(navigation.PAGES, urls) if url in pages)


def kinds_of(args: argparse.Namespace) -> list[str]:
    """Each many-phase viewer's kind: the first --browsers are browsers alongside protocol clients."""
    return ["browser" if args.clients == "browser" or k < args.browsers else "protocol" for k in range(args.viewers)]


async def measure(server_url: str, run_id: str, args: argparse.Namespace) -> None:
    urls = page_urls(server_url, run_id)
    server = server_process()
    kinds, received = kinds_of(args), []
    async with AsyncExitStack() as stack:
        browser = None
        if "browser" in kinds:
            playwright = await stack.enter_async_context(async_playwright())
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            stack.push_async_callback(browser.close)

        def opened(kind: str) -> AsyncContextManager[Opener]:
            return browser_viewer(browser) if kind == "browser" else protocol_viewer(received)

        async with opened(args.clients) as alone:
            for url in urls:  # the server's (and a browser's) first start, and each page's first build of its
                await alone(url)  # shared views: once per run version, not what a viewer waits for after
            single, cpu_before = [], cpu_s(server)
            for url in urls * 2:
                single.append(await alone(url))
                await asyncio.sleep(1.0)
            single_cpu = (cpu_s(server) - cpu_before) / len(single)
        single_times = [seconds for seconds, _ in single]
        single_errors = [error for _, error in single if error]
        print(f"single viewer ({args.clients}): {len(single)} page loads, median {np.median(single_times):.2f} s, "
              f"p95 {p95(single_times):.2f} s, errors {len(single_errors)}; server CPU {single_cpu:.2f} s per load; "
              f"server memory {rss_mb(server):.0f} MB")
        print(f"  median by page: {by_page(urls, urls * 2, single_times)}")
        for error in single_errors[:3]:
            print(f"  {error}")

        phase, rng = Phase(server, args.loads), random.Random(0)
        started, cpu_before = time.monotonic(), cpu_s(server)
        deadline = started + 60 * args.minutes
        await asyncio.gather(*(viewer(kind, opened(kind), urls, k, k / args.viewers * args.think, args.think,
                                      deadline, phase, random.Random(rng.random())) for k, kind in enumerate(kinds)))
        elapsed, many_cpu = time.monotonic() - started, cpu_s(server) - cpu_before
    times, loads = phase.times, len(phase.times)
    # The page-time target compares like with like: the loads of the single viewer's kind (browsers alongside
    # protocol clients also draw, and have no baseline here; their times are printed apart).
    alike = [t for t, kind in zip(times, phase.kinds) if kind == args.clients]
    ratio = p95(alike) / p95(single_times)
    # A load that timed out counts with the time it was given up at: then p95 only says "at least this".
    timed_out = sum("Timeout" in error for error in phase.errors + single_errors)
    verdict = "met" if ratio <= 2 and not timed_out else "missed" if ratio > 2 else f"not shown ({timed_out} timeouts)"
    mixed = len(set(phase.kinds)) > 1
    mix = f"{args.browsers} browsers and {args.viewers - args.browsers} protocol clients" if mixed \
        else f"{args.viewers} viewers ({args.clients})"
    print(f"{mix} (think {args.think:.0f} s) for {elapsed / 60:.1f} min: {loads} page loads "
          f"({loads / elapsed * 60:.0f}/min), median {np.median(alike):.2f} s, p95 {p95(alike):.2f} s "
          f"{f'of the {len(alike)} {args.clients} loads ' if mixed else ''}"
          f"= {ratio:.1f} x single (target <= 2: {verdict}), "
          f"errors {len(phase.errors)} (target 0: {'met' if not phase.errors else 'missed'})")
    for kind in sorted(set(phase.kinds)) if mixed else []:
        mine = [t for t, k in zip(times, phase.kinds) if k == kind]
        print(f"  {kind}: {len(mine)} page loads, median {np.median(mine):.2f} s, p95 {p95(mine):.2f} s, "
              f"errors {sum(e is not None for e, k in zip(phase.load_errors, phase.kinds) if k == kind)}")
    print(f"  server CPU {many_cpu / max(1, loads):.2f} s per load, {many_cpu / elapsed:.2f} of a core on average; "
          f"load average at the end {' '.join(f'{x:.1f}' for x in psutil.getloadavg())} "
          f"on {psutil.cpu_count()} CPUs")
    print(f"  median by page: {by_page(urls, phase.pages, times)}")
    if received:
        print(f"  protocol loads of both phases: {len(received)}, "
              f"{np.mean([r.elements for r in received]):.0f} elements and "
              f"{np.mean([r.images for r in received]):.1f} images per load on average, "
              f"fewest elements {min(r.elements for r in received)}")
    for error in phase.errors[:5]:
        print(f"  {error}")
    memory = ", ".join(f"after {n} loads {mb:.0f} MB" for n, mb in sorted(phase.memory.items()))
    print(f"server memory: {memory}, at the end {rss_mb(server):.0f} MB")
    if len(phase.memory) == 2:
        grew = phase.memory[args.loads] - phase.memory[FIRST_MEMORY_AT]
        print(f"  grew {grew:.0f} MB from load {FIRST_MEMORY_AT} to {args.loads} "
              f"(target <= 300: {'met' if grew <= 300 else 'missed'})")
    else:
        print(f"  fewer than {args.loads} page loads in {args.minutes} min: give more --minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50_000, help="images in the synthetic run")
    parser.add_argument("--viewers", type=int, default=20, help="concurrent viewers in the many phase")
    parser.add_argument("--loads", type=int, default=200,
                        help="page loads of the many phase; the server's memory is read after 20 and after these")
    parser.add_argument("--think", type=float, default=30.0, help="mean seconds a viewer reads a page")
    parser.add_argument("--minutes", type=float, default=30.0, help="at most this long for the many phase")
    parser.add_argument("--keep", type=Path, help="runs folder to generate into and reuse")
    parser.add_argument("--clients", choices=("browser", "protocol"), default="browser",
                        help="viewers are headless Chromium browsers, or clients of Streamlit's protocol (no drawing)")
    parser.add_argument("--browsers", type=int, default=0,
                        help="with --clients protocol: this many of the viewers are browsers alongside them")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)   # each phase's numbers as it ends, also into a log file
    if args.loads <= FIRST_MEMORY_AT:
        parser.error(f"--loads must be more than {FIRST_MEMORY_AT}")
    if args.browsers and (args.clients != "protocol" or args.browsers > args.viewers):
        parser.error("--browsers needs --clients protocol and at most --viewers")
    runs_dir = args.keep or Path(tempfile.mkdtemp()) / "runs"
    run_id = build(runs_dir, args.images)
    print(f"{args.images} images, {len(navigation.PAGES)} pages, {psutil.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in psutil.getloadavg())} before the server starts")
    with serve_dashboard(runs_dir, runs_dir.parent / "cache") as server_url:
        asyncio.run(measure(server_url, run_id, args))


if __name__ == "__main__":
    main()
